package io.distserve.processors.proxy;

import io.distserve.processors.openai.InferenceRequest;
import io.distserve.processors.openai.OpenAiRequestParser;
import io.distserve.processors.openai.RequestKind;
import io.vertx.core.buffer.Buffer;
import java.util.concurrent.ThreadLocalRandom;
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
        // platform-http on Vert.x gives the body as a Vert.x Buffer; Camel's own conversion to byte[] goes through an
        // InputStream copy, on every request
        Object raw = exchange.getIn().getBody();
        byte[] body = raw instanceof Buffer buffer ? buffer.getBytes() : exchange.getIn().getBody(byte[].class);
        InferenceRequest request = parser.parse(kind, body == null ? new byte[0] : body);
        ProxyCall call = new ProxyCall(request, kind.idPrefix() + randomId(), System.currentTimeMillis() / 1000);
        call.rawBody = body;
        exchange.setProperty(ProxyCall.PROPERTY, call);
        exchange.setProperty("stream", request.stream());
    }

    /**
     * 32 random hex digits, like a UUID without dashes; ThreadLocalRandom, because UUID.randomUUID's SecureRandom
     * is shared by all request threads (a request id needs to be unique, not secret).
     */
    static String randomId() {
        ThreadLocalRandom r = ThreadLocalRandom.current();
        String hi = Long.toHexString(r.nextLong());
        String lo = Long.toHexString(r.nextLong());
        return "0".repeat(16 - hi.length()) + hi + "0".repeat(16 - lo.length()) + lo;
    }
}
