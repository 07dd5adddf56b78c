package io.distserve.processors.http;

import org.apache.camel.Processor;
import org.apache.camel.component.platform.http.PlatformHttpConstants;
import org.apache.camel.component.platform.http.PlatformHttpEndpoint;
import org.apache.camel.component.platform.http.spi.PlatformHttpConsumer;
import org.apache.camel.component.platform.http.vertx.VertxPlatformHttpEngine;
import org.apache.camel.component.platform.http.vertx.VertxPlatformHttpRouter;

/**
 * The platform-http engine whose consumers run their routes on the Vert.x event loop ({@link EventLoopHttpConsumer})
 * instead of handing every exchange to a worker thread. Camel's platform-http component takes the engine bound in
 * the registry under {@value PlatformHttpConstants#PLATFORM_HTTP_ENGINE_NAME} before its own factory's, so binding
 * this one there switches every platform-http route of the context.
 *
 * <p>The proxy binds it when {@code distserve.proxy.eventLoop} is true (the default); the engine nodes never do
 * (their routes block on the engine). The rule that comes with it: <b>a processor on the event loop must not
 * block</b>. Parsing, routing decisions and callbacks of non-blocking I/O may run there; anything that waits on a
 * socket, a file or a lock held across I/O goes behind a {@code threads} step in the route (proxy.camel.yaml shows
 * where).
 */
public class EventLoopHttpEngine extends VertxPlatformHttpEngine {

    @Override
    public PlatformHttpConsumer createConsumer(PlatformHttpEndpoint endpoint, Processor processor) {
        return new EventLoopHttpConsumer(endpoint, processor, getHandlers(),
                VertxPlatformHttpRouter.getRouterNameFromPort(getServerPort()));
    }
}
