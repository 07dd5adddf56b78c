package io.distserve.processors.proxy;

import org.apache.camel.Exchange;
import org.apache.camel.Processor;

/**
 * Route step "connect": the chosen decode engine is connected to the prefill engine (once per pair), over the
 * transport the pair migrates with ({@link MigrationProtocolChoice}).
 */
public final class ConnectPair implements Processor {

    private final PairConnections pairs;

    public ConnectPair(PairConnections pairs) {
        this.pairs = pairs;
    }

    @Override
    public void process(Exchange exchange) throws Exception {
        ProxyCall call = ProxyCall.of(exchange);
        try {
            call.migrationProtocol = pairs.ensure(call.prefill.url(), call.decode.url(),
                    call.prefillAnswer.path("distserve").path("engine_id").asText(null)).protocol();
        } catch (NodeFailure e) {
            call.decode.fail(e.getMessage());
            throw e;
        }
    }
}
