package io.distserve.processors.disagg;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.engine.kv.BlockManager;
import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.kv.transfer.ByteBufferRegion;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransferFuture;
import io.distserve.processors.openai.OpenAiException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An engine's side of KV migration. Every engine serves its KV pool through the transfer layer (the prefill side
 * of a pull); a decode engine also keeps connections to prefill engines ({@code p2p_connect}) and pulls a
 * migrated prompt's blocks into blocks of its own.
 *
 * <p>Connections live here, in the engines, not in the proxy: a proxy restart does not drop them, and
 * {@code engine_info} tells a new proxy which pairs are connected.
 */
public final class MigrationService implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(MigrationService.class);

    /** Timeouts and limits. */
    public record Settings(Duration connectTimeout, Duration pullTimeout, Duration admissionTimeout,
                           int maxWaitingMigrations, Duration ackTimeout) {
        public static Settings defaults() {
            return new Settings(Duration.ofSeconds(10), Duration.ofSeconds(60), Duration.ofSeconds(30), 256,
                    Duration.ofSeconds(5));
        }
    }

    private final String engineId;
    private final KvCacheLayout layout;
    private final BlockManager blocks;
    private final KvTransport transport;
    private final int vocabSize;
    private final int contextLength;
    private final Settings settings;
    private final String apiKey;
    private final ObjectMapper json;
    private final HttpClient http;
    private final Map<String, CompletableFuture<KvPeer>> peers = new ConcurrentHashMap<>();
    private final Semaphore waitingMigrations;
    private final Object blocksFreed = new Object();

    /**
     * @param hostKvChunks the KV pool (block b at absolute byte b * bytesPerBlock)
     * @param apiKey       the key this engine presents to peers (the cluster shares keys), or null
     */
    public MigrationService(String engineId, KvCacheLayout layout, BlockManager blocks, List<ByteBuffer> hostKvChunks,
                            KvTransport transport, int vocabSize, int contextLength, Settings settings, String apiKey,
                            ObjectMapper json) throws TransferException {
        if (hostKvChunks.isEmpty()) {
            throw new IllegalStateException("this backend's KV pool is not in host memory; the " + transport.name()
                    + " transport cannot serve it");
        }
        this.engineId = engineId;
        this.layout = layout;
        this.blocks = blocks;
        this.transport = transport;
        this.vocabSize = vocabSize;
        this.contextLength = contextLength;
        this.settings = settings;
        this.apiKey = apiKey;
        this.json = json;
        this.http = HttpClient.newBuilder().connectTimeout(settings.ackTimeout()).build();
        this.waitingMigrations = new Semaphore(settings.maxWaitingMigrations(), true);
        transport.register(new ByteBufferRegion(hostKvChunks));
        transport.start();
        LOG.info("KV transfer: {} serving {} blocks of {} bytes on {}", transport.name(), layout.numBlocks(),
                layout.bytesPerBlock(), transport.localEndpoint().address());
    }

    public String engineId() {
        return engineId;
    }

    public KvCacheLayout layout() {
        return layout;
    }

    public String transportName() {
        return transport.name();
    }

    /** Engine ids of the prefill engines this engine is connected to. */
    public List<String> connectedPeers() {
        List<String> out = new ArrayList<>();
        peers.forEach((id, f) -> {
            if (f.isDone() && !f.isCompletedExceptionally()) {
                out.add(id);
            }
        });
        out.sort(null);
        return out;
    }

    /** {@code GET /distserve/engine_info}'s layout, transports and peers (no secrets). */
    public void describe(ObjectNode into) {
        KvLayouts.write(layout, into);
        into.putArray("transports").add(transport.name());
        ArrayNode list = into.putArray("peers");
        connectedPeers().forEach(list::add);
    }

    /** {@code p2p_initialize}: this engine's endpoint (with the token a peer needs) and layout. */
    public ObjectNode initialize(String remoteEngineId) {
        ObjectNode out = json.createObjectNode();
        out.put("engine_id", engineId);
        Endpoints.write(transport.localEndpoint(), out.putObject("endpoint"));
        KvLayouts.write(layout, out.putObject("kv_layout"));
        LOG.debug("p2p_initialize from {}", remoteEngineId);
        return out;
    }

    /**
     * {@code p2p_connect}: connects to a prefill engine's endpoint. Idempotent; concurrent callers for the same peer
     * wait on one attempt; a peer whose endpoint changed (it restarted) is reconnected.
     */
    public void connect(String remoteEngineId, URI remoteUrl, EndpointInfo endpoint, KvCacheLayout remoteLayout) {
        if (!remoteLayout.compatibleWith(layout)) {
            throw OpenAiException.badRequest("kv_layout", "KV layouts differ: ours " + describe(layout)
                    + ", engine " + remoteEngineId + " has " + describe(remoteLayout));
        }
        if (!transport.name().equalsIgnoreCase(endpoint.transport())) {
            throw OpenAiException.badRequest("endpoint.transport", "engine " + remoteEngineId + " offers "
                    + endpoint.transport() + "; this engine migrates over " + transport.name());
        }
        while (true) {
            CompletableFuture<KvPeer> mine = new CompletableFuture<>();
            CompletableFuture<KvPeer> existing = peers.putIfAbsent(remoteEngineId, mine);
            if (existing == null) {
                try {
                    Connection c = transport.connect(endpoint, settings.connectTimeout());
                    mine.complete(new KvPeer(remoteEngineId, remoteUrl, remoteLayout, endpoint, c));
                    LOG.info("connected to engine {} at {}", remoteEngineId, endpoint.address());
                    return;
                } catch (Exception e) {
                    peers.remove(remoteEngineId, mine);
                    mine.completeExceptionally(e);
                    throw OpenAiException.unavailable("Could not connect to engine " + remoteEngineId + " at "
                            + endpoint.address() + ": " + e.getMessage());
                }
            }
            KvPeer peer;
            try {
                peer = existing.join();
            } catch (CompletionException e) {
                continue; // that attempt failed and was removed: try ours
            }
            if (peer.endpoint().equals(endpoint)) {
                return;
            }
            drop(remoteEngineId); // restarted peer: new endpoint, new connection
        }
    }

    /** {@code p2p_drop_connect}; false when not connected. */
    public boolean drop(String remoteEngineId) {
        CompletableFuture<KvPeer> f = peers.remove(remoteEngineId);
        if (f == null) {
            return false;
        }
        f.thenAccept(p -> p.connection().close());
        return true;
    }

    private Optional<KvPeer> peer(String remoteEngineId) {
        CompletableFuture<KvPeer> f = peers.get(remoteEngineId);
        if (f == null || !f.isDone() || f.isCompletedExceptionally()) {
            return Optional.empty();
        }
        return Optional.of(f.join());
    }

    /**
     * Validates a migration request against the peer and the model, allocates local blocks (waiting, in arrival
     * order, while the pool is full), pulls the remote blocks in as few transfers as their layout allows, and tells
     * the prefill engine to free its lease. The returned blocks belong to the caller.
     */
    public MigratedKv pull(MigrationRequest req) throws InterruptedException {
        if (!req.protocol().equalsIgnoreCase(transport.name())) {
            throw MigrationRequest.bad("protocol", "is '" + req.protocol() + "' but this engine migrates over "
                    + transport.name());
        }
        KvPeer peer = peer(req.remoteEngineId()).orElseThrow(() -> MigrationRequest.bad("remote_engine_id",
                "names engine '" + req.remoteEngineId() + "', which this engine is not connected to "
                        + "(connected: " + new TreeSet<>(connectedPeers()) + "); call /distserve/p2p_connect first"));
        int promptLength = req.promptTokenIds().length;
        if (promptLength + 1 > contextLength) {
            throw MigrationRequest.bad("prompt_token_ids", "has " + promptLength + " tokens; the context holds "
                    + contextLength);
        }
        for (int id : req.promptTokenIds()) {
            if (id >= vocabSize) {
                throw MigrationRequest.bad("prompt_token_ids", "has token " + id + " outside the vocabulary ("
                        + vocabSize + ")");
            }
        }
        if (req.remoteTokenId() >= vocabSize) {
            throw MigrationRequest.bad("remote_token_id", "is " + req.remoteTokenId() + ", outside the vocabulary ("
                    + vocabSize + ")");
        }
        int needed = layout.blocksFor(promptLength);
        if (req.remoteBlockIds().length != needed) {
            throw MigrationRequest.bad("remote_block_ids", "has " + req.remoteBlockIds().length + " blocks; a "
                    + promptLength + "-token prompt in blocks of " + layout.blockSize() + " needs " + needed);
        }
        for (int b : req.remoteBlockIds()) {
            if (b >= peer.layout().numBlocks()) {
                throw MigrationRequest.bad("remote_block_ids", "has block " + b + "; engine " + peer.engineId()
                        + " has " + peer.layout().numBlocks());
            }
        }
        if (needed > blocks.totalBlocks()) {
            throw MigrationRequest.bad("remote_block_ids", "needs " + needed + " blocks; this engine has "
                    + blocks.totalBlocks());
        }
        int[] local = admit(needed);
        long t0 = System.nanoTime();
        TransferFuture transfer = null;
        try {
            long bpb = layout.bytesPerBlock();
            List<ReadOp> ops = new ArrayList<>(needed);
            for (int i = 0; i < needed; i++) {
                ops.add(new ReadOp(req.remoteBlockIds()[i] * bpb, local[i] * bpb, bpb));
            }
            transfer = peer.connection().read(ops);
            transfer.await(settings.pullTimeout());
        } catch (InterruptedException e) {
            releaseWhenSettled(transfer, local);
            throw e;
        } catch (Exception e) {
            releaseWhenSettled(transfer, local);
            throw new OpenAiException(503, "service_unavailable", "migration_request", "migration_failed",
                    "Pulling the KV cache from engine " + peer.engineId() + " failed: " + e.getMessage());
        }
        try {
            acknowledge(peer, req.remoteSessionId(), req.remoteBlockIds());
        } catch (RuntimeException | InterruptedException e) {
            release(local);
            throw e;
        }
        LOG.debug("pulled {} blocks of session {} from {} in {} us", needed, req.remoteSessionId(),
                peer.engineId(), (System.nanoTime() - t0) / 1000);
        return new MigratedKv(local, req.remoteTokenId(), peer.engineId(), req.remoteSessionId());
    }

    /** Blocks for a migration: at once when free, else waiting in arrival order (flow control), bounded in time. */
    private int[] admit(int needed) throws InterruptedException {
        if (!waitingMigrations.tryAcquire()) {
            throw OpenAiException.overloaded("Too many migrations are waiting for KV blocks; retry later.");
        }
        try {
            long deadline = System.nanoTime() + settings.admissionTimeout().toNanos();
            synchronized (this) { // one waiter at a time takes blocks: first come, first served
                while (true) {
                    Optional<int[]> got = blocks.allocate(needed);
                    if (got.isPresent()) {
                        return got.get();
                    }
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        throw OpenAiException.unavailable("No KV blocks came free for a " + needed
                                + "-block migration within " + settings.admissionTimeout().toSeconds() + " s.");
                    }
                    // Blocks are freed by the engine loop, which does not signal us: re-check every few ms.
                    synchronized (blocksFreed) {
                        blocksFreed.wait(Math.max(1, Math.min(5, TimeUnit.NANOSECONDS.toMillis(left))));
                    }
                }
            }
        } finally {
            waitingMigrations.release();
        }
    }

    /**
     * Returns the blocks of a failed or interrupted pull, but never while bytes of its batch may still land in them
     * (they could already belong to another sequence): a batch still in flight is cut off first (await's timeout
     * aborts it), and if its streams have not let go yet the blocks go back when the batch completes.
     */
    private void releaseWhenSettled(TransferFuture transfer, int[] local) {
        if (transfer != null && !transfer.isDone()) {
            try {
                transfer.await(Duration.ofMillis(1));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (TransferException e) {
                // expected: the abort
            }
        }
        if (transfer == null || transfer.isDone()) {
            release(local);
        } else {
            transfer.completion().whenComplete((r, e) -> release(local));
        }
    }

    /** Returns blocks taken for a migration that will not run. */
    public void release(int[] localBlocks) {
        blocks.free(localBlocks);
    }

    /**
     * Ends the prefill engine's lease, and with it proves the pull: the blocks were still leased (not freed and
     * reused) while they were read only if {@code free_cache} answers {@code freed: true}. A lease that had already
     * ended (expired, or freed by another decode attempt) means the pulled bytes may be someone else's.
     */
    private void acknowledge(KvPeer peer, String sessionId, int[] blockIds) throws InterruptedException {
        ObjectNode body = json.createObjectNode();
        body.put("remote_engine_id", peer.engineId());
        body.put("remote_session_id", sessionId);
        ArrayNode ids = body.putArray("block_ids");
        for (int b : blockIds) {
            ids.add(b); // the lease must hold exactly these: proves we pulled this session's blocks
        }
        HttpRequest.Builder req = HttpRequest.newBuilder(peer.url().resolve("/distserve/free_cache"))
                .timeout(settings.ackTimeout())
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body.toString()));
        if (apiKey != null) {
            req.header("Authorization", "Bearer " + apiKey);
        }
        HttpResponse<String> resp;
        try {
            resp = http.send(req.build(), HttpResponse.BodyHandlers.ofString());
        } catch (java.io.IOException e) {
            throw new OpenAiException(503, "service_unavailable", "migration_request", "migration_failed",
                    "Engine " + peer.engineId() + " did not confirm the KV lease of session " + sessionId + ": " + e);
        }
        boolean freed;
        try {
            freed = resp.statusCode() == 200 && json.readTree(resp.body()).path("freed").asBoolean(false);
        } catch (java.io.IOException e) {
            freed = false;
        }
        if (!freed) {
            // expired, or freed by someone else: its blocks may have been reused while we copied them
            throw new OpenAiException(503, "service_unavailable", "migration_request.remote_session_id",
                    "kv_lease_gone", "Engine " + peer.engineId() + " holds no KV lease for session '" + sessionId
                    + "' with these blocks (expired, already freed, or other blocks named: HTTP "
                    + resp.statusCode() + " " + resp.body() + "); the pulled KV cannot be used. Prefill again.");
        }
    }

    private static String describe(KvCacheLayout l) {
        return String.format(Locale.ROOT, "%d layers x %d kv heads x %d dims, blocks of %d, %s", l.numLayers(),
                l.numKvHeads(), l.headDim(), l.blockSize(), l.dtype());
    }

    @Override
    public void close() {
        for (String id : List.copyOf(peers.keySet())) {
            drop(id);
        }
        transport.close();
    }
}
