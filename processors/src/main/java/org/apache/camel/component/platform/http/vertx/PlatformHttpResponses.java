package org.apache.camel.component.platform.http.vertx;

import io.vertx.core.Future;
import io.vertx.ext.web.RoutingContext;
import org.apache.camel.Exchange;
import org.apache.camel.spi.HeaderFilterStrategy;

/**
 * A public door to platform-http-vertx's package-private {@code VertxPlatformHttpSupport.writeResponse}, for
 * {@link io.distserve.processors.http.EventLoopHttpConsumer}: that consumer must write the answer exactly as
 * Camel's own consumer does (status, filtered headers, body types), and Camel 4.17 keeps the method package-private.
 * It lives in Camel's package for that reason only (the fat jar is on the class path; the package is not sealed).
 * Nothing else here: when Camel makes the method public, delete this class.
 */
public final class PlatformHttpResponses {

    private PlatformHttpResponses() {
    }

    public static Future<Void> writeResponse(RoutingContext ctx, Exchange exchange,
                                             HeaderFilterStrategy headerFilterStrategy, boolean muteExceptions) {
        return VertxPlatformHttpSupport.writeResponse(ctx, exchange, headerFilterStrategy, muteExceptions);
    }
}
