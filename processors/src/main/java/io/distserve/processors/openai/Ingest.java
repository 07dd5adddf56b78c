package io.distserve.processors.openai;

import org.apache.camel.Exchange;

/**
 * Route step "ingest": parses and validates the OpenAI body of a completions or chat request into an
 * {@link InferenceRequest}. Bound twice, once per endpoint: {@code ingestCompletion} and {@code ingestChat}.
 */
public final class Ingest implements org.apache.camel.Processor {

    /** Exchange property: whether the client asked for SSE. */
    public static final String STREAM = "stream";

    private final RequestKind kind;
    private final OpenAiRequestParser parser;

    public Ingest(RequestKind kind, OpenAiRequestParser parser) {
        this.kind = kind;
        this.parser = parser;
    }

    @Override
    public void process(Exchange exchange) {
        byte[] body = exchange.getIn().getBody(byte[].class);
        InferenceRequest request = parser.parse(kind, body == null ? new byte[0] : body);
        exchange.setProperty(STREAM, request.stream());
        exchange.getIn().setBody(request);
    }
}
