package io.distserve.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code distserve bench ...}: benchmarks that print a table. */
@Command(name = "bench", mixinStandardHelpOptions = true, description = "Benchmarks that print a table.",
        subcommands = {BenchEngineCommand.class, BenchServingCommand.class, CommandLine.HelpCommand.class})
final class BenchCommand implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }
}
