package io.distserve.cli;

import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.core.config.Configurator;
import picocli.CommandLine.Option;

/** {@code --log-level}, shared by every command that runs something. */
final class LoggingOptions {

    enum LogLevel { DEBUG, INFO, WARNING, ERROR, CRITICAL }

    @Option(names = "--log-level", defaultValue = "INFO", paramLabel = "LEVEL",
            description = "DEBUG, INFO, WARNING, ERROR or CRITICAL (default: ${DEFAULT-VALUE}).")
    LogLevel logLevel;

    void apply() {
        Level level = switch (logLevel) {
            case DEBUG -> Level.DEBUG;
            case INFO -> Level.INFO;
            case WARNING -> Level.WARN;
            case ERROR -> Level.ERROR;
            case CRITICAL -> Level.FATAL;
        };
        Configurator.setRootLevel(level);
        Configurator.setLevel("io.distserve", level);
    }
}
