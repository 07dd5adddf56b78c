package io.distserve.cli;

import java.io.PrintWriter;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * {@code distserve}: the one entry point of the runnable jar. Every failure a user can cause ends in one line on
 * stderr and a non-zero exit code; stack traces go to the log at DEBUG.
 */
@Command(name = "distserve",
        mixinStandardHelpOptions = true,
        versionProvider = VersionProvider.class,
        description = "Serve LLMs with prefill/decode disaggregation on Apache Camel.",
        subcommands = {ServeCommand.class, GenerateCommand.class, ModelCommand.class, BenchCommand.class, CommandLine.HelpCommand.class})
public final class DistServeCli implements Runnable {

    private static final Logger LOG = LoggerFactory.getLogger(DistServeCli.class);

    @Spec
    CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    public static void main(String[] args) {
        System.exit(execute(args));
    }

    /** Runs the CLI and returns the exit code: 0 success, 1 failure while running, 2 bad usage. */
    public static int execute(String... args) {
        return newCommandLine().execute(args);
    }

    static CommandLine newCommandLine() {
        CommandLine cl = new CommandLine(new DistServeCli());
        // LMDeploy's commands write enum values in several cases (NVLINK, NVLink; DistServe; pytorch): all accepted
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        cl.setParameterExceptionHandler((ex, args) -> {
            PrintWriter err = ex.getCommandLine().getErr();
            err.println("distserve: " + ex.getMessage() + " (try '"
                    + ex.getCommandLine().getCommandSpec().qualifiedName() + " --help')");
            err.flush();
            return 2;
        });
        cl.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            LOG.debug("command failed", ex);
            PrintWriter err = commandLine.getErr();
            err.println("distserve: " + oneLine(ex));
            err.flush();
            return 1;
        });
        return cl;
    }

    /** The user-facing message of a failure: the innermost message that says something, on one line. */
    static String oneLine(Throwable ex) {
        String message = null;
        for (Throwable t = ex; t != null; t = t.getCause()) {
            if (t.getMessage() != null && !t.getMessage().isBlank()) {
                message = t.getMessage();
                if (!(t instanceof java.util.concurrent.ExecutionException)) {
                    break;
                }
            }
        }
        if (message == null) {
            message = ex.getClass().getSimpleName();
        }
        return message.replace('\n', ' ').strip();
    }
}
