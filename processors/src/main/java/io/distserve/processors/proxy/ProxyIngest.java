package io.distserve.processors.proxy;

import io.distserve.processors.openai.InferenceRequest;
import io.distserve.processors.openai.OpenAiRequestParser;
import io.distserve.processors.openai.RequestKind;
import java.util.UUID;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;

/**
 * Route step "ingest" at the proxy: the same validation as the engines', so that a bad request is a 400 here and
 * no node ever sees it.
 */
public final class ProxyIngest implements Processor {

    private final RequestKind kind;
    private final OpenAiRequestParser parser;

    public ProxyIngest(RequestKind kind, OpenAiRequestParser parser) {
        this.kind = kind;
        this.parser = parser;
    }

    @Override
    public void process(Exchange exchange) {
        byte[] body = exchange.getIn().getBody(byte[].class);
        InferenceRequest request = parser.parse(kind, body == null ? new byte[0] : body);
        String id = kind.idPrefix() + UUID.randomUUID().toString().replace("-", "");
        exchange.setProperty(ProxyCall.PROPERTY, new ProxyCall(request, id, System.currentTimeMillis() / 1000));
        exchange.setProperty("stream", request.stream());
    }
}
