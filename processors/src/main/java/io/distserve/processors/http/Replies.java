package io.distserve.processors.http;

import org.apache.camel.Exchange;

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
}
