package io.distserve.processors.http;

import org.apache.camel.Exchange;
import org.apache.camel.component.platform.http.vertx.HttpMessage;

/** Runs an action when the HTTP client of a (non-streamed) request disconnects before the answer. */
public final class ClientDisconnect {

    private ClientDisconnect() {
    }

    public static void onClose(Exchange exchange, Runnable action) {
        HttpMessage message = exchange.getIn(HttpMessage.class);
        if (message != null && message.getResponse() != null) {
            message.getResponse().closeHandler(v -> action.run());
            if (message.getResponse().closed()) {
                action.run(); // gone before the handler was set: it will never fire
            }
        }
    }

    /**
     * Marks the response of a client that is gone as ended (the write fails quietly), so that Camel, finding it
     * open, does not try to send its reply on the closed connection.
     */
    public static void endQuietly(Exchange exchange) {
        HttpMessage message = exchange.getIn(HttpMessage.class);
        if (message != null && message.getResponse() != null && !message.getResponse().ended()) {
            try {
                message.getResponse().end();
            } catch (IllegalStateException alreadyEnded) {
                // ended elsewhere: nothing left to do
            }
        }
    }
}
