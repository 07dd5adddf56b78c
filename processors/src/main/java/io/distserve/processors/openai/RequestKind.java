package io.distserve.processors.openai;

/** The two OpenAI endpoints we serve. */
public enum RequestKind {
    COMPLETION("/v1/completions", "text_completion", "cmpl-"),
    CHAT("/v1/chat/completions", "chat.completion", "chatcmpl-");

    private final String path;
    private final String objectName;
    private final String idPrefix;

    RequestKind(String path, String objectName, String idPrefix) {
        this.path = path;
        this.objectName = objectName;
        this.idPrefix = idPrefix;
    }

    public String path() {
        return path;
    }

    /** The {@code object} field of a non-streamed response. */
    public String objectName() {
        return objectName;
    }

    /** The {@code object} field of a stream chunk. */
    public String chunkObjectName() {
        return this == CHAT ? "chat.completion.chunk" : "text_completion";
    }

    public String idPrefix() {
        return idPrefix;
    }
}
