package io.distserve.processors.http;

import io.vertx.core.Handler;
import io.vertx.core.http.HttpHeaders;
import io.vertx.core.http.HttpMethod;
import io.vertx.ext.web.RoutingContext;
import org.apache.camel.CamelContext;
import org.apache.camel.component.platform.http.vertx.VertxPlatformHttpRouter;

/**
 * Reads a POST body sent as {@code application/x-www-form-urlencoded} (curl's {@code -d} default) as the JSON it
 * is, as OpenAI-compatible servers do. Without this, platform-http parses such a body as a form: the route gets no
 * body (and a URL-decoded form of it would corrupt '+', '%' and '&' in prompts). Installed as the first handler of
 * the platform-http router, before the body is read: it relabels the request as {@code application/json}.
 */
public final class LenientJsonBody implements Handler<RoutingContext> {

    private static final String FORM = "application/x-www-form-urlencoded";

    /** Puts the handler in front of every route of the server on {@code port}; false when there is no router. */
    public static boolean install(CamelContext context, int port) {
        VertxPlatformHttpRouter router = VertxPlatformHttpRouter.lookup(context,
                VertxPlatformHttpRouter.getRouterNameFromPort(port));
        if (router == null) {
            return false;
        }
        router.route().order(Integer.MIN_VALUE).handler(new LenientJsonBody());
        return true;
    }

    @Override
    public void handle(RoutingContext ctx) {
        if (ctx.request().method() == HttpMethod.POST) {
            String type = ctx.request().getHeader(HttpHeaders.CONTENT_TYPE);
            if (type != null && type.regionMatches(true, 0, FORM, 0, FORM.length())) {
                ctx.request().headers().set(HttpHeaders.CONTENT_TYPE, "application/json");
            }
        }
        ctx.next();
    }
}
