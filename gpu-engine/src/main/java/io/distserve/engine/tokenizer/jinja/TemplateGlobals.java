package io.distserve.engine.tokenizer.jinja;

import java.time.ZonedDateTime;

/** The functions Hugging Face puts in a chat template's globals; Jinjava calls them as static methods. */
final class TemplateGlobals {

    private TemplateGlobals() {
    }

    /** {@code raise_exception(message)}: the template rejects its input (e.g. "roles must alternate"). */
    public static Object raiseException(Object message) {
        throw new TemplateRaisedException(String.valueOf(message));
    }

    /** {@code strftime_now(format)}: the local time now, as Python's {@code datetime.now().strftime(format)}. */
    public static String strftimeNow(Object format) {
        if (!(format instanceof String pattern)) {
            throw new IllegalArgumentException("strftime_now expects a format string");
        }
        return PythonStrftime.format(pattern, ZonedDateTime.now());
    }

    /** Thrown by {@code raise_exception}; {@link HfJinjaEnvironment} reports its message as the failure. */
    static final class TemplateRaisedException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        TemplateRaisedException(String message) {
            super(message);
        }
    }
}
