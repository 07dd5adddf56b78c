package io.distserve.engine.tokenizer.jinja;

/** A template that cannot be parsed or rendered, or that called {@code raise_exception}. */
public class JinjaTemplateException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    private final boolean raisedByTemplate;

    JinjaTemplateException(String message, boolean raisedByTemplate, Throwable cause) {
        super(message, cause);
        this.raisedByTemplate = raisedByTemplate;
    }

    /** True when the template itself rejected its input through {@code raise_exception}. */
    public boolean raisedByTemplate() {
        return raisedByTemplate;
    }
}
