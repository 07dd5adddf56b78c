package io.distserve.processors.routing.kv;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.distserve.engine.kv.PrefixHasher;
import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import io.distserve.engine.tokenizer.ModelTokenizer;
import io.distserve.processors.disagg.ControlEndpoints;
import io.distserve.processors.openai.OpenAiRequestParser;
import io.distserve.processors.openai.RequestKind;
import io.distserve.processors.routing.PromptPrefix;
import io.distserve.registry.NodeRole;
import io.distserve.registry.NodeView;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class KvAwareStrategyTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int BS = 16;
    private static final PrefixHasher HASHER = new PrefixHasher(0x1234_5678_9ABCL, BS);
    private static final OpenAiRequestParser PARSER = new OpenAiRequestParser(JSON);

    @TempDir
    static Path dir;
    static ModelTokenizer tokenizer;

    @BeforeAll
    static void tokenizer() {
        Path model = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 1, null).withThreads(1).writeTo(model);
        tokenizer = ModelTokenizer.load(model);
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    private final SimpleMeterRegistry meters = new SimpleMeterRegistry();
    private final PrefixIndex index = new PrefixIndex();

    /** Without expectations: what the feeds say decides (expectations have their own test). */
    private KvAwareStrategy strategy(long seed) {
        return new KvAwareStrategy(index, model -> Optional.of(tokenizer), KvAwareStrategy.Weights.DEFAULTS,
                java.time.Duration.ZERO, new Random(seed), meters);
    }

    private static int[] ids(int n, int salt) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = 3 + (i * 31 + salt * 101) % 400;
        }
        return t;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    private static PromptPrefix prompt(int[] ids) {
        ObjectNode body = JSON.createObjectNode();
        var arr = body.putArray("prompt");
        for (int t : ids) {
            arr.add(t);
        }
        body.put("max_tokens", 4);
        return new PromptPrefix(PARSER.parse(RequestKind.COMPLETION, body.toString().getBytes(StandardCharsets.UTF_8)));
    }

    /** A node's feed answer holding the full blocks of {@code cached} (a snapshot). */
    private void feed(String url, String epoch, int blocksUsed, int[]... cached) {
        ObjectNode f = JSON.createObjectNode();
        f.put("epoch", epoch);
        f.put("enabled", true);
        f.put("block_size", BS);
        f.put("hash_salt", ControlEndpoints.hex(HASHER.salt()));
        f.put("blocks_used", blocksUsed);
        f.put("blocks_total", 1000);
        f.put("next", 1);
        f.put("reset", true);
        var stored = f.putArray("stored");
        for (int[] c : cached) {
            for (long k : HASHER.keys(c)) {
                stored.add(ControlEndpoints.hex(k));
            }
        }
        f.putArray("removed");
        index.updating(url).apply(f, System.nanoTime());
    }

    private static NodeView node(String url, int inFlight) {
        return NodeView.of(url, NodeRole.Hybrid, null, inFlight, null, 0, 0);
    }

    private double decisions(String reason) {
        var c = meters.find("distserve.proxy.routing.decisions").tag("reason", reason).counter();
        return c == null ? 0 : c.count();
    }

    private final int[] system = ids(1024, 1);

    @Test
    void aRequestGoesToTheNodeHoldingItsPrefix() {
        feed("http://a", "ea", 0, system);
        feed("http://b", "eb", 0);
        List<NodeView> nodes = List.of(node("http://a", 0), node("http://b", 0));
        for (int seed = 0; seed < 20; seed++) {
            NodeView chosen = strategy(seed).select(nodes, prompt(concat(system, ids(30, seed + 2)))).orElseThrow();
            assertThat(chosen.url()).isEqualTo("http://a");
        }
        assertThat(decisions("prefix")).isEqualTo(20);
    }

    @Test
    void theLongerOverlapWins() {
        int[] shorter = Arrays.copyOf(system, 256);
        feed("http://a", "ea", 0, shorter);
        feed("http://b", "eb", 0, system);
        List<NodeView> nodes = List.of(node("http://a", 0), node("http://b", 0));
        assertThat(strategy(1).select(nodes, prompt(concat(system, ids(5, 9)))).orElseThrow().url())
                .isEqualTo("http://b");
    }

    @Test
    void unrelatedRequestsSpreadOverEqualNodes() {
        feed("http://a", "ea", 0, system);
        feed("http://b", "eb", 0);
        List<NodeView> nodes = List.of(node("http://a", 0), node("http://b", 0));
        KvAwareStrategy s = strategy(3);
        Map<String, Integer> counts = new HashMap<>();
        for (int i = 0; i < 200; i++) {
            counts.merge(s.select(nodes, prompt(ids(200, 1000 + i))).orElseThrow().url(), 1, Integer::sum);
        }
        assertThat(counts.get("http://a")).isBetween(70, 130);
        assertThat(decisions("load")).isEqualTo(200);
    }

    @Test
    void aBusyHolderLosesWhenItsLoadOutweighsThePrefillItSaves() {
        feed("http://a", "ea", 0, system);
        feed("http://b", "eb", 0);
        // 1,024 cached tokens against 256 per request in flight: 4 more in flight is a tie, 5 more loses
        NodeView chosen = strategy(1).select(List.of(node("http://a", 5), node("http://b", 0)),
                prompt(concat(system, ids(8, 4)))).orElseThrow();
        assertThat(chosen.url()).isEqualTo("http://b");
        assertThat(decisions("load_over_prefix")).isEqualTo(1);
        chosen = strategy(1).select(List.of(node("http://a", 3), node("http://b", 0)),
                prompt(concat(system, ids(8, 4)))).orElseThrow();
        assertThat(chosen.url()).isEqualTo("http://a");
    }

    @Test
    void kvUsageCountsAgainstANode() {
        feed("http://a", "ea", 400); // 400 blocks of 16 referenced: 6,400 KV tokens * 0.05 = 320
        feed("http://b", "eb", 0);
        NodeView chosen = strategy(1).select(List.of(node("http://a", 0), node("http://b", 0)),
                prompt(ids(100, 5))).orElseThrow();
        assertThat(chosen.url()).isEqualTo("http://b");
    }

    @Test
    void kvUsageCountsInTokensAlsoOnANodeWithoutAPrefixCache() {
        ObjectNode f = JSON.createObjectNode();
        f.put("epoch", "ea");
        f.put("enabled", false);
        f.put("block_size", BS);
        f.put("blocks_used", 400); // 6,400 KV tokens * 0.05 = 320
        f.put("blocks_total", 1000);
        f.put("next", 0);
        f.put("reset", true);
        index.updating("http://a").apply(f, System.nanoTime());
        feed("http://b", "eb", 0);
        assertThat(index.node("http://a").orElseThrow().tokensUsed()).isEqualTo(6400);
        // 320 (a's KV) against 256 (b's one request in flight): counted in blocks, a would look idle and win
        assertThat(strategy(1).select(List.of(node("http://a", 0), node("http://b", 1)), prompt(ids(100, 5)))
                .orElseThrow().url()).isEqualTo("http://b");
    }

    @Test
    void aRestartedNodeIsNotPreferredOnWhatItHeldBefore() {
        List<NodeView> nodes = List.of(node("http://a", 0), node("http://b", 0));
        Map<String, Integer> counts = new HashMap<>();
        KvAwareStrategy s = strategy(5);
        for (int i = 0; i < 60; i++) {
            feed("http://a", "ea", 0, system);
            feed("http://b", "eb", 0);
            // the engine behind a restarted: a new epoch and an empty snapshot
            feed("http://a", "ea-" + i, 0);
            counts.merge(s.select(nodes, prompt(concat(system, ids(10, i)))).orElseThrow().url(), 1, Integer::sum);
        }
        assertThat(counts.get("http://a")).as(counts.toString()).isBetween(15, 45);
        // and a node whose feed failed is dropped: it holds nothing
        feed("http://b", "eb", 0, system);
        index.drop("http://b");
        assertThat(index.node("http://b")).isEmpty();
    }

    @Test
    void aBurstSharingAPrefixGoesToOneNodeBeforeAnyFeedSaysSo() {
        feed("http://a", "ea", 0);
        feed("http://b", "eb", 0);
        KvAwareStrategy s = new KvAwareStrategy(index, model -> Optional.of(tokenizer),
                KvAwareStrategy.Weights.DEFAULTS, java.time.Duration.ofSeconds(30), new Random(7), meters);
        // in flight counts as usual: the burst stays together while the saved prefill outweighs the load
        int[] inFlight = new int[2];
        String first = null;
        for (int i = 0; i < 4; i++) {
            List<NodeView> nodes = List.of(node("http://a", inFlight[0]), node("http://b", inFlight[1]));
            String chosen = s.select(nodes, prompt(concat(system, ids(10, i)))).orElseThrow().url();
            first = first == null ? chosen : first;
            assertThat(chosen).as("request %d", i).isEqualTo(first);
            inFlight[chosen.equals("http://a") ? 0 : 1]++;
        }
        // the expectation lapses: a node that never stored the blocks is not preferred for long
        KvAwareStrategy brief = new KvAwareStrategy(index, model -> Optional.of(tokenizer),
                KvAwareStrategy.Weights.DEFAULTS, java.time.Duration.ofNanos(1), new Random(1), meters);
        PrefixIndex fresh = index;
        fresh.drop("http://a");
        fresh.drop("http://b");
        feed("http://a", "ea", 0);
        feed("http://b", "eb", 0);
        brief.select(List.of(node("http://a", 0), node("http://b", 0)), prompt(concat(system, ids(10, 99))));
        assertThat(index.node("http://a").orElseThrow().overlapBlocks(HASHER.keys(system))).isZero();
        assertThat(index.node("http://b").orElseThrow().overlapBlocks(HASHER.keys(system))).isZero();
    }

    @Test
    void withoutTheModelsTokenizerLoadDecides() {
        feed("http://a", "ea", 0, system);
        feed("http://b", "eb", 0);
        KvAwareStrategy noTokenizer = new KvAwareStrategy(index, model -> Optional.empty(),
                KvAwareStrategy.Weights.DEFAULTS, new Random(1), meters);
        NodeView chosen = noTokenizer.select(List.of(node("http://a", 2), node("http://b", 0)),
                prompt(concat(system, ids(8, 4)))).orElseThrow();
        assertThat(chosen.url()).isEqualTo("http://b");
        assertThat(decisions("no_tokens")).isEqualTo(1);
    }

    @Test
    void theFeedsChangesApplyInOrderAndAnEpochChangeStartsOver() {
        NodePrefixIndex idx = index.updating("http://a");
        feed("http://a", "ea", 0, system);
        long[] keys = HASHER.keys(system);
        assertThat(idx.overlapBlocks(keys)).isEqualTo(64);
        ObjectNode delta = JSON.createObjectNode();
        delta.put("epoch", "ea");
        delta.put("enabled", true);
        delta.put("block_size", BS);
        delta.put("hash_salt", ControlEndpoints.hex(HASHER.salt()));
        delta.put("next", 5);
        delta.put("reset", false);
        delta.putArray("stored");
        delta.putArray("removed").add(ControlEndpoints.hex(keys[10]));
        idx.apply(delta, System.nanoTime());
        assertThat(idx.overlapBlocks(keys)).isEqualTo(10);
        assertThat(idx.cursor()).isEqualTo(5);
        delta.put("epoch", "other");
        delta.putArray("removed");
        idx.apply(delta, System.nanoTime());
        assertThat(idx.keyCount()).isZero();
    }
}
