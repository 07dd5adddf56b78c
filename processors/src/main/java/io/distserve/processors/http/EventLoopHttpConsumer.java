package io.distserve.processors.http;

import io.vertx.core.Context;
import io.vertx.core.Handler;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpHeaders;
import io.vertx.ext.web.RoutingContext;
import java.util.List;
import java.util.Locale;
import org.apache.camel.Exchange;
import org.apache.camel.ExchangePattern;
import org.apache.camel.Processor;
import org.apache.camel.component.platform.http.PlatformHttpEndpoint;
import org.apache.camel.component.platform.http.vertx.PlatformHttpResponses;
import org.apache.camel.component.platform.http.vertx.VertxPlatformHttpConsumer;

/**
 * A platform-http consumer that runs the route on the Vert.x event loop that received the request, with Camel's
 * asynchronous routing engine, and writes the answer there.
 *
 * <p>Why: Camel 4.17's {@link VertxPlatformHttpConsumer#handleRequest} always hands the exchange to a Vert.x worker
 * ({@code executeBlocking}) and the answer back to the event loop. For the proxy, whose Hybrid path is a few
 * microseconds of parsing around one upstream call made with Vert.x's own non-blocking client, those two thread
 * hand-offs (and the worker blocked on the upstream socket) were most of its added latency (it/BENCHMARKS.md).
 *
 * <p>The rule that comes with it: <b>no processor of such a route may block</b>. A step that must (a blocking HTTP
 * call, a file write) starts with Camel's {@code threads} EIP; the route then continues on that pool, and the answer
 * comes back to the request's event loop here. What is reused from Camel's consumer: the request's translation into
 * the exchange ({@code processHttpRequest}), the answer's ({@code writeResponse}, through
 * {@link PlatformHttpResponses}), the unit of work and exchange release. Requests this consumer does not handle
 * (form and multipart bodies, proxy-mode endpoints, which Camel reads with private helpers) go to Camel's own path.
 */
public class EventLoopHttpConsumer extends VertxPlatformHttpConsumer {

    public EventLoopHttpConsumer(PlatformHttpEndpoint endpoint, Processor processor,
                                 List<Handler<RoutingContext>> handlers, String routerName) {
        super(endpoint, processor, handlers, routerName);
    }

    @Override
    protected void handleRequest(RoutingContext ctx) {
        Context context = Vertx.currentContext();
        if (context == null || !Context.isOnEventLoopThread() || needsCamelsOwnPath(ctx)) {
            super.handleRequest(ctx);
            return;
        }
        if (isSuspended()) {
            // as VertxPlatformHttpConsumer.handleSuspend (private)
            ctx.response().setStatusCode(503);
            ctx.end();
            return;
        }
        Thread loop = Thread.currentThread();
        Exchange exchange = createExchange(false);
        exchange.setPattern(ExchangePattern.InOut);
        processHttpRequest(exchange, ctx).onComplete(read -> {
            if (read.failed()) {
                handleFailure(exchange, ctx, read.cause());
                return;
            }
            try {
                createUoW(exchange);
            } catch (Exception e) {
                handleFailure(exchange, ctx, e);
                return;
            }
            try {
                getAsyncProcessor().process(exchange, doneSync -> {
                    if (Thread.currentThread() == loop) {
                        respond(exchange, ctx);
                    } else {
                        // the route went to another thread (a threads step): the answer is written on the loop
                        context.runOnContext(v -> respond(exchange, ctx));
                    }
                });
            } catch (Throwable t) {
                // Camel's processors report failures on the exchange; this is a failure of the engine itself
                handleFailure(exchange, ctx, t);
            }
        });
    }

    /** Form and multipart bodies, and proxy-mode endpoints, need parts of Camel's consumer that are private. */
    private boolean needsCamelsOwnPath(RoutingContext ctx) {
        if (getEndpoint().isHttpProxy()) {
            return true;
        }
        String type = ctx.request().getHeader(HttpHeaders.CONTENT_TYPE);
        if (type == null) {
            return false;
        }
        String t = type.toLowerCase(Locale.ROOT);
        return t.startsWith("multipart/form-data") || t.startsWith("application/x-www-form-urlencoded");
    }

    private void respond(Exchange exchange, RoutingContext ctx) {
        PlatformHttpResponses.writeResponse(ctx, exchange, getEndpoint().getHeaderFilterStrategy(),
                getEndpoint().isMuteException()).onComplete(written -> {
                    if (written.succeeded()) {
                        complete(exchange);
                    } else {
                        handleFailure(exchange, ctx, written.cause());
                    }
                });
    }

    /** As VertxPlatformHttpConsumer.handleExchangeComplete (private). */
    private void complete(Exchange exchange) {
        doneUoW(exchange);
        releaseExchange(exchange, false);
    }

    /** As VertxPlatformHttpConsumer.handleFailure (private). */
    private void handleFailure(Exchange exchange, RoutingContext ctx, Throwable failure) {
        getExceptionHandler().handleException("Failed handling platform-http endpoint " + getEndpoint().getPath(),
                failure);
        ctx.fail(failure);
        if (getEndpoint().isHandleWriteResponseError() && failure != null) {
            Exception existing = exchange.getException();
            if (existing != null) {
                failure.addSuppressed(existing);
            }
            exchange.setProperty(Exchange.EXCEPTION_CAUGHT, failure);
            exchange.setException(failure);
        }
        complete(exchange);
    }
}
