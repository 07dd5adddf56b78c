package io.distserve.app;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LogEvent;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.appender.AbstractAppender;
import org.apache.logging.log4j.core.config.Property;

/** Collects the log events of this JVM (through the root logger) while attached. */
final class LogCapture extends AbstractAppender implements AutoCloseable {

    private final List<LogEvent> events = new CopyOnWriteArrayList<>();

    private LogCapture() {
        super("test-capture-" + System.nanoTime(), null, null, true, Property.EMPTY_ARRAY);
    }

    static LogCapture attach() {
        return attach(Level.WARN);
    }

    /** Captures events at {@code level} and above (of loggers that let them through). */
    static LogCapture attach(Level level) {
        LogCapture capture = new LogCapture();
        capture.start();
        LoggerContext context = (LoggerContext) LogManager.getContext(false);
        context.getConfiguration().getRootLogger().addAppender(capture, level, null);
        context.updateLoggers();
        return capture;
    }

    @Override
    public void append(LogEvent event) {
        events.add(event.toImmutable());
    }

    List<LogEvent> events() {
        return List.copyOf(events);
    }

    /** Events at {@code level} or more severe. */
    List<LogEvent> atLeast(Level level) {
        return events.stream().filter(e -> e.getLevel().isMoreSpecificThan(level)).toList();
    }

    static String describe(List<LogEvent> events) {
        StringBuilder sb = new StringBuilder();
        for (LogEvent e : events) {
            sb.append(e.getLevel()).append(' ').append(e.getLoggerName()).append(": ")
                    .append(e.getMessage().getFormattedMessage());
            if (e.getThrown() != null) {
                sb.append(" [").append(e.getThrown()).append(']');
            }
            sb.append('\n');
        }
        return sb.toString();
    }

    @Override
    public void close() {
        LoggerContext context = (LoggerContext) LogManager.getContext(false);
        context.getConfiguration().getRootLogger().removeAppender(getName());
        context.updateLoggers();
        stop();
    }
}
