import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import io.vertx.core.http.HttpClient;
import io.vertx.core.http.HttpClientOptions;
import io.vertx.core.http.PoolOptions;
import io.vertx.core.http.RequestOptions;

/**
 * The floor for a JVM proxy, for it/bench/proxy_overhead.sh: a reverse proxy on bare Vert.x (the same Vert.x, Netty
 * and JVM as distserve's proxy; no Camel, no parsing, no routing, no log line, no metrics; the same transport, native epoll on Linux). Each request's body is
 * read, sent to the upstream on a kept-alive connection, and its answer written back, all on one event loop.
 *
 * <p>{@code java -cp routes/target/distserve.jar:CLASSES BareVertxProxy LISTEN_PORT UPSTREAM_PORT}
 */
public final class BareVertxProxy {

    private BareVertxProxy() {
    }

    public static void main(String[] args) {
        int port = Integer.parseInt(args[0]);
        int upstream = Integer.parseInt(args[1]);
        // the same transport as distserve's servers (CamelServers): native epoll where it loads
        Vertx vertx = Vertx.vertx(new VertxOptions().setPreferNativeTransport(true));
        HttpClient client = vertx.createHttpClient(new HttpClientOptions().setKeepAlive(true),
                new PoolOptions().setHttp1MaxSize(64));
        vertx.createHttpServer().requestHandler(req -> req.body().onSuccess(body -> client.request(new RequestOptions()
                        .setMethod(req.method()).setHost("127.0.0.1").setPort(upstream).setURI(req.uri())
                        .putHeader("Content-Type", "application/json"))
                .compose(r -> r.send(body))
                .compose(resp -> resp.body().map(answer -> {
                    req.response().setStatusCode(resp.statusCode()).putHeader("Content-Type", "application/json")
                            .end(answer);
                    return answer;
                }))
                .onFailure(t -> req.response().setStatusCode(502).end())))
                .listen(port, "127.0.0.1");
    }
}
