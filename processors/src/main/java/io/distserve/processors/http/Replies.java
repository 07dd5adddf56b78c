package io.distserve.processors.http;

import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpHeaders;
import io.vertx.core.http.HttpServerResponse;
import org.apache.camel.Exchange;
import org.apache.camel.component.platform.http.vertx.HttpMessage;

/**
 * Sets the HTTP reply on an exchange. The reply starts with no headers: platform-http copies message headers into
 * the response, and request headers (or form fields of a body sent as urlencoded) must never be echoed back.
 */
public final class Replies {

    private Replies() {
    }

    public static void reply(Exchange exchange, int status, String contentType, String body) {
        var message = exchange.getMessage();
        message.removeHeaders("*");
        message.setHeader(Exchange.HTTP_RESPONSE_CODE, status);
        message.setHeader(Exchange.CONTENT_TYPE, contentType);
        message.setBody(body);
    }

    public static void json(Exchange exchange, int status, String body) {
        reply(exchange, status, "application/json", body);
    }

    /**
     * Writes the reply to the client now, from the step that has it, instead of leaving it on the exchange for
     * platform-http to write once the route has ended: the route's later steps (its finally step, the request's log
     * line, metrics) then run while the answer is already on its way, not before it leaves. platform-http finds the
     * response ended and writes nothing more. The exchange's message still says what was sent (status, type, no
     * body), for those later steps.
     *
     * @return false when the exchange has no Vert.x response to write to (not from platform-http on Vert.x): the
     *     caller sets the reply on the exchange instead
     */
    public static boolean sendNow(Exchange exchange, int status, String contentType, Buffer body) {
        HttpMessage http = exchange.getIn(HttpMessage.class);
        HttpServerResponse response = http == null ? null : http.getResponse();
        if (response == null) {
            return false;
        }
        reply(exchange, status, contentType, null);
        if (!response.ended()) {
            try {
                response.setStatusCode(status).putHeader(HttpHeaders.CONTENT_TYPE, contentType).end(body);
            } catch (IllegalStateException alreadyEnded) {
                // ended by a disconnect handler in between: nothing left to write
            }
        }
        return true;
    }
}
