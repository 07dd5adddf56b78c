package io.distserve.processors.routing.kv;

import io.distserve.engine.kv.PrefixHasher;
import io.distserve.engine.tokenizer.ModelTokenizer;
import io.distserve.processors.routing.EffectiveSpeeds;
import io.distserve.processors.routing.PromptPrefix;
import io.distserve.processors.routing.RandomChoice;
import io.distserve.processors.routing.RoutingStrategy;
import io.distserve.registry.NodeView;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;

/**
 * {@code kv_aware}: the node where the request is expected to cost least, counting the prefill work its prefix
 * cache saves against the load it already has, as NVIDIA Dynamo's KV router does. For each candidate, in tokens of
 * prefill work:
 * <pre>
 *   cost = prefillWeight * (prompt tokens - tokens of the prompt's leading blocks the node holds)
 *        + inFlightWeight * requests in flight there (this proxy's live count)
 *        + kvUsageWeight  * KV tokens referenced there (its last published count)
 * </pre>
 * divided by the node's speed (as {@code min_expected_latency} does); lowest wins, ties at random. What a node
 * holds comes from its prefix-cache feed ({@link NodePrefixIndex}); a node whose feed has not answered (new,
 * restarted, unreachable) counts as holding nothing. Without the prompt's tokens (the model's tokenizer not
 * fetched yet) only the load terms decide. In DistServe the same rule picks the prefill node (overlap saves prefill)
 * and the decode node (overlap saves transfer; its own cache), each from its own feed. The chosen node is expected
 * to hold the prompt's blocks from now on, for {@code expectFor} (see {@link NodePrefixIndex#expect}).
 */
public final class KvAwareStrategy implements RoutingStrategy {

    public static final String NAME = "kv_aware";

    /** The cost weights (distserve.proxy.kvAware.* in application.properties). */
    public record Weights(double prefillToken, double inFlight, double kvUsageToken) {
        public static final Weights DEFAULTS = new Weights(1.0, 256, 0.05);

        public Weights {
            if (!(prefillToken >= 0) || !(inFlight >= 0) || !(kvUsageToken >= 0)) {
                throw new IllegalArgumentException("kv_aware weights must be >= 0: " + prefillToken + ", " + inFlight
                        + ", " + kvUsageToken);
            }
        }
    }

    /** Why a node won, for the decisions metric. */
    enum Reason {
        /** it holds more of the prompt than some other candidate, and no candidate holds more */
        PREFIX,
        /** every candidate holds as much of the prompt (often nothing): load decided */
        LOAD,
        /** another candidate holds more of the prompt, but is busier by more than that is worth */
        LOAD_OVER_PREFIX,
        /** the prompt's tokens are unknown (no tokenizer for the model yet, or it does not tokenize) */
        NO_TOKENS
    }

    private static final double TIE = 1e-9;

    private final PrefixIndex index;
    private final Function<String, Optional<ModelTokenizer>> tokenizers;
    private final Weights weights;
    private final Random random;
    private final MeterRegistry meters;
    private final Map<String, Counter> decisions = new ConcurrentHashMap<>();
    private final long expectNanos;

    public KvAwareStrategy(PrefixIndex index, Function<String, Optional<ModelTokenizer>> tokenizers, Weights weights,
                           Random random, MeterRegistry meters) {
        this(index, tokenizers, weights, java.time.Duration.ofSeconds(2), random, meters);
    }

    /** @param expectFor how long a chosen node counts as holding the prompt before its feed says so */
    public KvAwareStrategy(PrefixIndex index, Function<String, Optional<ModelTokenizer>> tokenizers, Weights weights,
                           java.time.Duration expectFor, Random random, MeterRegistry meters) {
        this.expectNanos = expectFor.toNanos();
        this.index = Objects.requireNonNull(index, "index");
        this.tokenizers = Objects.requireNonNull(tokenizers, "tokenizers");
        this.weights = Objects.requireNonNull(weights, "weights");
        this.random = Objects.requireNonNull(random, "random");
        this.meters = meters;
    }

    @Override
    public String name() {
        return NAME;
    }

    /** Without a prompt: load alone. */
    @Override
    public Optional<NodeView> select(List<NodeView> candidates) {
        return choose(candidates, null);
    }

    @Override
    public Optional<NodeView> select(List<NodeView> candidates, PromptPrefix prompt) {
        return choose(candidates, prompt);
    }

    private Optional<NodeView> choose(List<NodeView> candidates, PromptPrefix prompt) {
        if (candidates.isEmpty()) {
            return Optional.empty();
        }
        int[] tokens = prompt == null ? null : prompt.tokens(tokenizers);
        long now = System.nanoTime();
        double[] speeds = EffectiveSpeeds.of(candidates);
        int[] overlap = new int[candidates.size()];
        double best = Double.POSITIVE_INFINITY;
        List<Integer> tied = new ArrayList<>();
        for (int i = 0; i < candidates.size(); i++) {
            NodeView node = candidates.get(i);
            Optional<NodePrefixIndex> idx = index.node(node.url());
            PrefixHasher hasher = idx.map(NodePrefixIndex::hasher).orElse(null);
            if (tokens != null && hasher != null) {
                overlap[i] = idx.get().overlapBlocks(prompt.keys(hasher), now) * hasher.blockSize();
            }
            double kvTokens = idx.map(NodePrefixIndex::tokensUsed).orElse(0L);
            double uncached = tokens == null ? 0 : tokens.length - overlap[i];
            double cost = (weights.prefillToken() * uncached + weights.inFlight() * node.inFlight()
                    + weights.kvUsageToken() * kvTokens) / speeds[i];
            if (cost < best * (1 - TIE)) {
                best = cost;
                tied.clear();
                tied.add(i);
            } else if (cost <= best * (1 + TIE)) {
                tied.add(i);
            }
        }
        int winner = RandomChoice.among(tied, random);
        if (tokens != null && expectNanos > 0) {
            index.node(candidates.get(winner).url()).filter(x -> x.hasher() != null)
                    .ifPresent(x -> x.expect(prompt.keys(x.hasher()), now + expectNanos));
        }
        count(candidates.get(winner), tokens == null ? Reason.NO_TOKENS : reason(overlap, winner));
        return Optional.of(candidates.get(winner));
    }

    private static Reason reason(int[] overlap, int winner) {
        int max = 0;
        int min = Integer.MAX_VALUE;
        for (int o : overlap) {
            max = Math.max(max, o);
            min = Math.min(min, o);
        }
        if (max == min) {
            return Reason.LOAD;
        }
        return overlap[winner] == max ? Reason.PREFIX : Reason.LOAD_OVER_PREFIX;
    }

    private void count(NodeView chosen, Reason reason) {
        if (meters == null) {
            return;
        }
        String role = chosen.role().name();
        decisions.computeIfAbsent(role + "/" + reason, k -> Counter.builder("distserve.proxy.routing.decisions")
                .description("Routing choices of the kv_aware strategy, by role and by what decided them")
                .tag("strategy", NAME).tag("role", role).tag("reason", reason.name().toLowerCase())
                .register(meters)).increment();
    }
}
