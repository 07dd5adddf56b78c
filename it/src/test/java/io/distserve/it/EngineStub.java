package io.distserve.it;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;

/**
 * An engine node that answers at once (or after a fixed delay), for what measures the proxy rather than the
 * engine: routing distribution tests and the proxy-overhead benchmark. JDK only, so that it runs from the test
 * classes (or a plain {@code javac}) as a child process.
 *
 * <p>{@code java io.distserve.it.EngineStub PORT[:DELAY_MS] ...}: one HTTP server per port, each answering
 * {@code GET /health}, {@code GET /v1/models} (model "stub"), {@code POST /v1/completions} and
 * {@code POST /v1/chat/completions} (a fixed OpenAI body; SSE when the request says {@code "stream":true}), and
 * {@code GET /stats} ({@code {"requests":N}}: the POSTs it answered).
 */
public final class EngineStub {

    static final byte[] COMPLETION = ("{\"id\":\"cmpl-stub\",\"object\":\"text_completion\",\"created\":1795000000,"
            + "\"model\":\"stub\",\"choices\":[{\"index\":0,\"text\":\" stub\",\"logprobs\":null,"
            + "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1,"
            + "\"total_tokens\":5}}").getBytes(StandardCharsets.UTF_8);
    static final byte[] CHAT = ("{\"id\":\"chatcmpl-stub\",\"object\":\"chat.completion\",\"created\":1795000000,"
            + "\"model\":\"stub\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\" stub\"},"
            + "\"logprobs\":null,\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1,"
            + "\"total_tokens\":5}}").getBytes(StandardCharsets.UTF_8);
    static final byte[] STREAM = ("data: {\"id\":\"cmpl-stub\",\"object\":\"text_completion\",\"created\":1795000000,"
            + "\"model\":\"stub\",\"choices\":[{\"index\":0,\"text\":\" stub\",\"logprobs\":null,"
            + "\"finish_reason\":null}]}\n\n"
            + "data: {\"id\":\"cmpl-stub\",\"object\":\"text_completion\",\"created\":1795000000,"
            + "\"model\":\"stub\",\"choices\":[{\"index\":0,\"text\":\"\",\"logprobs\":null,"
            + "\"finish_reason\":\"length\"}]}\n\n"
            + "data: [DONE]\n\n").getBytes(StandardCharsets.UTF_8);
    static final byte[] MODELS = ("{\"object\":\"list\",\"data\":[{\"id\":\"stub\",\"object\":\"model\","
            + "\"created\":1795000000,\"owned_by\":\"distserve\"}]}").getBytes(StandardCharsets.UTF_8);

    private EngineStub() {
    }

    public static void main(String[] args) throws IOException {
        // answer at once: no Nagle delay on the small answers
        System.setProperty("sun.net.httpserver.nodelay", "true");
        if (args.length == 0) {
            System.err.println("usage: EngineStub PORT[:DELAY_MS] ...");
            System.exit(2);
        }
        ExecutorService workers = Executors.newFixedThreadPool(
                Integer.getInteger("stub.threads", 64), r -> {
                    Thread t = new Thread(r, "stub");
                    t.setDaemon(true);
                    return t;
                });
        for (String arg : args) {
            String[] parts = arg.split(":");
            int port = Integer.parseInt(parts[0]);
            long delay = parts.length > 1 ? Long.parseLong(parts[1]) : 0;
            AtomicLong requests = new AtomicLong();
            HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 1024);
            server.setExecutor(workers);
            server.createContext("/", exchange -> handle(exchange, delay, requests));
            server.start();
            System.out.println("stub on " + port + " delay " + delay + " ms");
        }
    }

    private static void handle(HttpExchange exchange, long delay, AtomicLong requests) throws IOException {
        try (exchange) {
            String path = exchange.getRequestURI().getPath();
            byte[] body;
            try (InputStream in = exchange.getRequestBody()) {
                body = in.readAllBytes();
            }
            String method = exchange.getRequestMethod();
            if (method.equals("GET") && path.equals("/health")) {
                reply(exchange, 200, "application/json", "{\"status\":\"ok\"}".getBytes(StandardCharsets.UTF_8));
            } else if (method.equals("GET") && path.equals("/v1/models")) {
                reply(exchange, 200, "application/json", MODELS);
            } else if (method.equals("GET") && path.equals("/stats")) {
                reply(exchange, 200, "application/json",
                        ("{\"requests\":" + requests.get() + "}").getBytes(StandardCharsets.UTF_8));
            } else if (method.equals("POST") && (path.equals("/v1/completions")
                    || path.equals("/v1/chat/completions"))) {
                requests.incrementAndGet();
                if (delay > 0) {
                    try {
                        Thread.sleep(delay);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
                String text = new String(body, StandardCharsets.UTF_8).replace(" ", "");
                if (text.contains("\"stream\":true")) {
                    reply(exchange, 200, "text/event-stream", STREAM);
                } else {
                    reply(exchange, 200, "application/json", path.contains("chat") ? CHAT : COMPLETION);
                }
            } else {
                reply(exchange, 404, "application/json",
                        "{\"error\":{\"message\":\"no such endpoint\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"not_found\"}}"
                                .getBytes(StandardCharsets.UTF_8));
            }
        }
    }

    private static void reply(HttpExchange exchange, int status, String type, byte[] body) throws IOException {
        exchange.getResponseHeaders().set("Content-Type", type);
        exchange.sendResponseHeaders(status, body.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
        }
    }
}
