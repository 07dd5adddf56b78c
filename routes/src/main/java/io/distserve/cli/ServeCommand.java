package io.distserve.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code distserve serve ...}: the servers, with LMDeploy's command shapes. */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = "Run a server: an engine node (api_server) or the proxy.",
        subcommands = {ApiServerCommand.class, ProxyCommand.class, CommandLine.HelpCommand.class})
final class ServeCommand implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }
}
