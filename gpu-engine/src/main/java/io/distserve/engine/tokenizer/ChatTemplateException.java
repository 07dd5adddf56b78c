package io.distserve.engine.tokenizer;

/**
 * A chat request the model's chat template cannot render: the template is malformed, rejects the conversation
 * through {@code raise_exception}, or the model has no template. The engine answers it with HTTP 400.
 */
public class ChatTemplateException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    public ChatTemplateException(String message) {
        super(message);
    }

    public ChatTemplateException(String message, Throwable cause) {
        super(message, cause);
    }
}
