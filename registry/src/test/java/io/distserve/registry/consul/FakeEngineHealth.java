package io.distserve.registry.consul;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

/** A loopback HTTP server whose {@code GET /health} answers a settable status, standing in for an engine. */
final class FakeEngineHealth implements AutoCloseable {

    final AtomicInteger status = new AtomicInteger(200);
    final AtomicInteger probes = new AtomicInteger();
    private final HttpServer server;
    private final ExecutorService executor = Executors.newFixedThreadPool(2, r -> {
        Thread t = new Thread(r, "fake-engine-health");
        t.setDaemon(true);
        return t;
    });

    FakeEngineHealth() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.setExecutor(executor);
        server.createContext("/health", exchange -> {
            probes.incrementAndGet();
            exchange.sendResponseHeaders(status.get(), -1);
            exchange.close();
        });
        server.start();
    }

    int port() {
        return server.getAddress().getPort();
    }

    String healthUrl() {
        return "http://127.0.0.1:" + port() + "/health";
    }

    @Override
    public void close() {
        server.stop(0);
        executor.shutdownNow();
    }
}
