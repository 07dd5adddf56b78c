package io.distserve.processors.disagg;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.engine.kv.BlockManager;
import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.kv.rdma.RdmaEndpoint;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointRefusedException;
import io.distserve.kv.transfer.HostIdentity;
import io.distserve.kv.transfer.MemoryRegion;
import io.distserve.kv.transfer.EndpointInfo;
import io.distserve.kv.transfer.KvTransport;
import io.distserve.kv.transfer.ReadOp;
import io.distserve.kv.transfer.TransferException;
import io.distserve.kv.transfer.TransferFuture;
import io.distserve.processors.http.BlockingHttp;
import io.distserve.processors.metrics.MigrationMetrics;
import io.distserve.processors.openai.OpenAiException;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.TreeMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An engine's side of KV migration. Every engine serves its KV pool through each transport it offers (the prefill
 * side of a pull: host memory, or GPU memory for the CUDA backend); a decode engine also keeps connections to
 * prefill engines ({@code p2p_connect}), one per (peer, transport), and pulls a migrated prompt's blocks into blocks
 * of its own over the transport the proxy chose for the pair.
 *
 * <p>Connections live here, in the engines, not in the proxy: a proxy restart does not drop them, and
 * {@code engine_info} tells a new proxy which pairs are connected, and over what.
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
    private final MemoryRegion pool;
    private final Map<String, KvTransport> transports; // offered, in preference order
    private final int vocabSize;
    private final int contextLength;
    private final Settings settings;
    private final String apiKey;
    private final ObjectMapper json;
    private final MigrationMetrics metrics;
    private final String hostId = HostIdentity.local();
    private final BlockingHttp http;
    private final Map<PeerKey, CompletableFuture<KvPeer>> peers = new ConcurrentHashMap<>();
    private final Semaphore waitingMigrations;
    private final Object blocksFreed = new Object();

    /** A connection is per prefill engine and transport: a pair may be connected over nvlink and tcp at once. */
    private record PeerKey(String engineId, String transport) {
    }

    /**
     * Registers {@code pool} with every transport and starts them.
     *
     * @param pool       the KV pool (block b at absolute byte b * bytesPerBlock)
     * @param transports the transports to offer, unstarted, in preference order (see {@link MigrationTransports})
     * @param apiKey     the key this engine presents to peers (the cluster shares keys), or null
     */
    public MigrationService(String engineId, KvCacheLayout layout, BlockManager blocks, MemoryRegion pool,
                            List<KvTransport> transports, int vocabSize, int contextLength, Settings settings,
                            String apiKey, ObjectMapper json, MigrationMetrics metrics) throws TransferException {
        if (transports.isEmpty()) {
            throw new IllegalArgumentException("an engine offers at least one KV transport");
        }
        this.engineId = engineId;
        this.layout = layout;
        this.blocks = blocks;
        this.pool = pool;
        this.vocabSize = vocabSize;
        this.contextLength = contextLength;
        this.settings = settings;
        this.apiKey = apiKey;
        this.json = json;
        this.metrics = metrics;
        this.http = new BlockingHttp(settings.ackTimeout());
        this.waitingMigrations = new Semaphore(settings.maxWaitingMigrations(), true);
        Map<String, KvTransport> offered = new LinkedHashMap<>();
        try {
            for (KvTransport t : transports) {
                t.register(pool);
                t.start();
                offered.put(t.name().toLowerCase(Locale.ROOT), t);
                metrics.offer(t.name());
                LOG.info("KV transfer: {} serving {} blocks of {} bytes at {}", t.name(), layout.numBlocks(),
                        layout.bytesPerBlock(), t.localEndpoint().address());
            }
        } catch (TransferException | RuntimeException e) {
            transports.forEach(KvTransport::close);
            throw e;
        }
        this.transports = java.util.Collections.unmodifiableMap(offered);
    }

    public String engineId() {
        return engineId;
    }

    public KvCacheLayout layout() {
        return layout;
    }

    /** The transports this engine offers, in preference order. */
    public List<String> transportNames() {
        return List.copyOf(transports.keySet());
    }

    /** Engine ids of the prefill engines this engine is connected to (over any transport). */
    public List<String> connectedPeers() {
        return new ArrayList<>(connectedTransports().keySet());
    }

    /** Prefill engine id -> the transports this engine is connected to it over. */
    public Map<String, List<String>> connectedTransports() {
        Map<String, List<String>> out = new TreeMap<>();
        peers.forEach((key, f) -> {
            if (f.isDone() && !f.isCompletedExceptionally()) {
                out.computeIfAbsent(key.engineId(), k -> new ArrayList<>()).add(key.transport());
            }
        });
        out.values().forEach(l -> l.sort(null));
        return out;
    }

    /**
     * {@code GET /distserve/engine_info}'s layout, transports and peers (no secrets): {@code transports} in preference
     * order, {@code host_id} (nvlink pairs only engines of one host), {@code gpu} (the pool's GPU, if any),
     * {@code peers} (ids) and {@code peer_transports} (id -> transports).
     */
    public void describe(ObjectNode into) {
        KvLayouts.write(layout, into);
        ArrayNode offered = into.putArray("transports");
        transports.keySet().forEach(offered::add);
        into.put("host_id", hostId);
        if (pool instanceof io.distserve.kv.device.DeviceRegion d) {
            into.put("gpu", d.device().pciBusId());
        }
        Map<String, List<String>> connected = connectedTransports();
        ArrayNode list = into.putArray("peers");
        connected.keySet().forEach(list::add);
        ObjectNode byPeer = into.putObject("peer_transports");
        connected.forEach((id, ts) -> ts.forEach(byPeer.putArray(id)::add));
    }

    /**
     * {@code p2p_initialize}: this engine's endpoint for {@code protocol} (with the secret a peer needs: a tcp
     * token, an nvlink IPC handle) and its layout. No protocol: the engine's first (preferred) transport.
     */
    public ObjectNode initialize(String remoteEngineId, String protocol) {
        return initialize(remoteEngineId, protocol, null);
    }

    /**
     * As {@link #initialize(String, String)}, with the proxy's RDMA settings (null: none): for the rdma transport
     * the endpoint carries the link type asked for, and under --disable-gdr tells the decode engine to keep the NIC
     * off GPU memory on both sides (a GPUDirect pool is then read through its staging channel).
     */
    public ObjectNode initialize(String remoteEngineId, String protocol, RdmaSettings rdma) {
        KvTransport t = offeredTransport(protocol, "protocol");
        EndpointInfo endpoint = t.localEndpoint();
        if (rdma != null && t.name().equals("rdma")) {
            // under --disable-gdr a GPUDirect pool is offered through its staging channel only, and the decode
            // engine lands through pinned memory too
            endpoint = RdmaEndpoint.forPair(endpoint, rdma.linkType(), rdma.disableGdr());
        }
        ObjectNode out = json.createObjectNode();
        out.put("engine_id", engineId);
        out.put("protocol", t.name());
        Endpoints.write(endpoint, out.putObject("endpoint"));
        KvLayouts.write(layout, out.putObject("kv_layout"));
        LOG.debug("p2p_initialize from {} over {}", remoteEngineId, t.name());
        return out;
    }

    /** {@code p2p_initialize} for the preferred transport. */
    public ObjectNode initialize(String remoteEngineId) {
        return initialize(remoteEngineId, null);
    }

    private KvTransport offeredTransport(String protocol, String param) {
        if (protocol == null) {
            return transports.values().iterator().next();
        }
        KvTransport t = transports.get(protocol.toLowerCase(Locale.ROOT));
        if (t == null) {
            throw OpenAiException.badRequest(param, "This engine does not offer the '" + protocol
                    + "' KV transport; it offers " + transports.keySet() + ".");
        }
        return t;
    }

    /**
     * {@code p2p_connect}: connects to a prefill engine's endpoint over the endpoint's transport. Idempotent;
     * concurrent callers for the same (peer, transport) wait on one attempt; a peer whose endpoint changed (it
     * restarted) is reconnected. A malformed endpoint, or one this engine cannot use (an nvlink handle of another
     * host, or one the driver does not open), is a 400; the latter with code {@code endpoint_refused}, which a proxy
     * takes as "use another transport for this pair".
     */
    public void connect(String remoteEngineId, URI remoteUrl, EndpointInfo endpoint, KvCacheLayout remoteLayout) {
        if (!remoteLayout.compatibleWith(layout)) {
            throw OpenAiException.badRequest("kv_layout", "KV layouts differ: ours " + describe(layout)
                    + ", engine " + remoteEngineId + " has " + describe(remoteLayout));
        }
        KvTransport transport = transports.get(endpoint.transport().toLowerCase(Locale.ROOT));
        if (transport == null) {
            throw OpenAiException.badRequest("remote_endpoint.transport", "engine " + remoteEngineId + " offers "
                    + endpoint.transport() + "; this engine migrates over " + transports.keySet());
        }
        PeerKey key = new PeerKey(remoteEngineId, transport.name());
        while (true) {
            CompletableFuture<KvPeer> mine = new CompletableFuture<>();
            CompletableFuture<KvPeer> existing = peers.putIfAbsent(key, mine);
            if (existing == null) {
                try {
                    mine.complete(open(transport, remoteEngineId, remoteUrl, endpoint, remoteLayout));
                    return;
                } catch (RuntimeException e) {
                    peers.remove(key, mine);
                    mine.completeExceptionally(e);
                    throw e;
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
            // Another endpoint for a connected peer: it restarted, or the call is bad. Connect first and replace the
            // old connection only once the new one works, so that a bad p2p_connect cannot break a good pair.
            KvPeer fresh = open(transport, remoteEngineId, remoteUrl, endpoint, remoteLayout);
            if (peers.replace(key, existing, CompletableFuture.completedFuture(fresh))) {
                peer.connection().close();
                return;
            }
            fresh.connection().close(); // someone else replaced or dropped it meanwhile: look again
        }
    }

    private KvPeer open(KvTransport transport, String remoteEngineId, URI remoteUrl, EndpointInfo endpoint,
                        KvCacheLayout remoteLayout) {
        try {
            Connection c = transport.connect(endpoint, settings.connectTimeout());
            LOG.info("connected to engine {} over {} at {}", remoteEngineId, transport.name(), endpoint.address());
            return new KvPeer(remoteEngineId, remoteUrl, remoteLayout, endpoint, c);
        } catch (Exception e) {
            throw connectFailure(remoteEngineId, endpoint, e);
        }
    }

    private static OpenAiException connectFailure(String remoteEngineId, EndpointInfo endpoint, Exception e) {
        if (e instanceof EndpointRefusedException) {
            return new OpenAiException(400, "invalid_request_error", "remote_endpoint", "endpoint_refused",
                    "This engine cannot use engine " + remoteEngineId + "'s " + endpoint.transport() + " endpoint: "
                            + e.getMessage());
        }
        if (e instanceof IllegalArgumentException) {
            return OpenAiException.badRequest("remote_endpoint", "Engine " + remoteEngineId + "'s "
                    + endpoint.transport() + " endpoint is not valid: " + e.getMessage());
        }
        return OpenAiException.unavailable("Could not connect to engine " + remoteEngineId + " at "
                + endpoint.address() + ": " + e.getMessage());
    }

    /** {@code p2p_drop_connect}: every connection to that engine; false when there was none. */
    public boolean drop(String remoteEngineId) {
        boolean any = false;
        for (PeerKey k : List.copyOf(peers.keySet())) {
            if (k.engineId().equals(remoteEngineId)) {
                any |= drop(k);
            }
        }
        return any;
    }

    private boolean drop(PeerKey key) {
        CompletableFuture<KvPeer> f = peers.remove(key);
        if (f == null) {
            return false;
        }
        f.thenAccept(p -> p.connection().close());
        return true;
    }

    private Optional<KvPeer> peer(String remoteEngineId, String transport) {
        CompletableFuture<KvPeer> f = peers.get(new PeerKey(remoteEngineId, transport));
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
        String protocol = req.protocol().toLowerCase(Locale.ROOT);
        KvTransport transport = transports.get(protocol);
        if (transport == null) {
            throw MigrationRequest.bad("protocol", "is '" + req.protocol() + "' but this engine migrates over "
                    + transports.keySet());
        }
        KvPeer peer = peer(req.remoteEngineId(), transport.name()).orElseThrow(() -> MigrationRequest.bad(
                "remote_engine_id", "names engine '" + req.remoteEngineId() + "', which this engine is not "
                        + "connected to over " + transport.name() + " (connected: " + connectedTransports()
                        + "); call /distserve/p2p_connect first"));
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
        // The prompt's leading full blocks this engine's prefix cache holds (a conversation's earlier turns, a
        // shared system prompt) are not pulled: only the tail is.
        BlockManager.PrefixHit cached = cachedPrefix(req.promptTokenIds());
        int reused = cached.blocks().length;
        int[] local;
        try {
            local = concat(cached.blocks(), admit(needed - reused));
        } catch (RuntimeException | InterruptedException e) {
            blocks.free(cached.blocks());
            throw e;
        }
        long t0 = System.nanoTime();
        TransferFuture transfer = null;
        try {
            long bpb = layout.bytesPerBlock();
            List<ReadOp> ops = new ArrayList<>(needed - reused);
            for (int i = reused; i < needed; i++) {
                ops.add(new ReadOp(req.remoteBlockIds()[i] * bpb, local[i] * bpb, bpb));
            }
            if (!ops.isEmpty()) {
                transfer = peer.connection().read(ops);
                transfer.await(settings.pullTimeout());
            }
        } catch (InterruptedException e) {
            metrics.failed(transport.name());
            releaseWhenSettled(transfer, local);
            throw e;
        } catch (Exception e) {
            metrics.failed(transport.name());
            releaseWhenSettled(transfer, local);
            throw new OpenAiException(503, "service_unavailable", "migration_request", "migration_failed",
                    "Pulling the KV cache from engine " + peer.engineId() + " over " + transport.name()
                            + " failed: " + e.getMessage());
        }
        long pulledNanos = System.nanoTime() - t0;
        try {
            acknowledge(peer, req.remoteSessionId(), req.remoteBlockIds());
        } catch (RuntimeException | InterruptedException e) {
            metrics.failed(transport.name());
            release(local);
            throw e;
        }
        long bytes = (long) (needed - reused) * layout.bytesPerBlock();
        metrics.migrated(transport.name(), bytes, pulledNanos, reused);
        LOG.debug("migration of session {} from {}: {} bytes, {} blocks over {} ({} more from the prefix cache) in "
                        + "{} us (pull), {} us (with the acknowledgement)", req.remoteSessionId(), peer.engineId(),
                bytes, needed - reused, transport.name(), reused, pulledNanos / 1000,
                (System.nanoTime() - t0) / 1000);
        return new MigratedKv(local, req.remoteTokenId(), peer.engineId(), req.remoteSessionId());
    }

    /** The leading full blocks of the prompt in this engine's prefix cache, each with a reference for the caller. */
    private BlockManager.PrefixHit cachedPrefix(int[] prompt) {
        return blocks.prefixHasher()
                .map(h -> blocks.acquirePrefix(h.keys(prompt), prompt, prompt.length / h.blockSize()))
                .orElse(BlockManager.PrefixHit.NONE);
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
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
        Map<String, String> headers = apiKey == null ? Map.of("Content-Type", "application/json")
                : Map.of("Content-Type", "application/json", "Authorization", "Bearer " + apiKey);
        int status;
        String answer;
        try {
            // kept-alive sockets, written and read by this thread: java.net.http's hand-off to its selector thread
            // cost ~6 ms per acknowledgement, longer than the pull itself
            BlockingHttp.Response resp = http.send(peer.url().resolve("/distserve/free_cache"), "POST", headers,
                    body.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8), settings.ackTimeout());
            status = resp.status();
            answer = new String(BlockingHttp.readAll(resp.body()), java.nio.charset.StandardCharsets.UTF_8);
        } catch (java.io.IOException e) {
            throw new OpenAiException(503, "service_unavailable", "migration_request", "migration_failed",
                    "Engine " + peer.engineId() + " did not confirm the KV lease of session " + sessionId + ": " + e);
        }
        boolean freed;
        try {
            freed = status == 200 && json.readTree(answer).path("freed").asBoolean(false);
        } catch (java.io.IOException e) {
            freed = false;
        }
        if (!freed) {
            // expired, or freed by someone else: its blocks may have been reused while we copied them
            throw new OpenAiException(503, "service_unavailable", "migration_request.remote_session_id",
                    "kv_lease_gone", "Engine " + peer.engineId() + " holds no KV lease for session '" + sessionId
                    + "' with these blocks (expired, already freed, or other blocks named: HTTP "
                    + status + " " + answer + "); the pulled KV cannot be used. Prefill again.");
        }
    }

    private static String describe(KvCacheLayout l) {
        return String.format(Locale.ROOT, "%d layers x %d kv heads x %d dims, blocks of %d, %s", l.numLayers(),
                l.numKvHeads(), l.headDim(), l.blockSize(), l.dtype());
    }

    @Override
    public void close() {
        for (PeerKey k : List.copyOf(peers.keySet())) {
            drop(k);
        }
        transports.values().forEach(KvTransport::close);
    }
}
