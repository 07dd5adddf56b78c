import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;

/**
 * An OpenAI-style streaming server that answers at once, for it/bench/bench_client_overhead.sh: every POST gets
 * TOKENS text chunks, a usage chunk and [DONE] in one write, so whatever a benchmark client measures against it is
 * the client (and loopback), not a model. GET /v1/models lists "instant".
 *
 * <p>{@code java -cp routes/target/distserve.jar it/bench/InstantSseServer.java PORT TOKENS}
 */
public final class InstantSseServer {

    private InstantSseServer() {
    }

    public static void main(String[] args) {
        int port = Integer.parseInt(args[0]);
        int tokens = Integer.parseInt(args[1]);
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < tokens; i++) {
            b.append("data: {\"choices\":[{\"index\":0,\"text\":\" t").append(i).append("\"}]}\n\n");
        }
        b.append("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":").append(tokens)
                .append("}}\n\ndata: [DONE]\n\n");
        String stream = b.toString();
        Vertx vertx = Vertx.vertx(new VertxOptions().setPreferNativeTransport(true).setEventLoopPoolSize(1));
        vertx.createHttpServer().requestHandler(req -> {
            if (req.path().equals("/v1/models")) {
                req.response().putHeader("Content-Type", "application/json")
                        .end("{\"object\":\"list\",\"data\":[{\"id\":\"instant\",\"object\":\"model\"}]}");
                return;
            }
            req.body().onSuccess(x -> req.response().putHeader("Content-Type", "text/event-stream").end(stream));
        }).listen(port, "127.0.0.1").onSuccess(s -> System.out.println("listening on " + s.actualPort()));
    }
}
