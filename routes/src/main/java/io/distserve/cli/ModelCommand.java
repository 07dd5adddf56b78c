package io.distserve.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code distserve model ...}: checkpoint tools. */
@Command(name = "model", mixinStandardHelpOptions = true,
        description = "Checkpoint tools: generate a random-weight checkpoint, dump logits.",
        subcommands = {ModelGenerateCommand.class, ModelLogitsCommand.class, CommandLine.HelpCommand.class})
final class ModelCommand implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }
}
