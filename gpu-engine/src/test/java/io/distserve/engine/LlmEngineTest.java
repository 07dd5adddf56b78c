package io.distserve.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.engine.SequenceSlice.LogitsMode;
import io.distserve.engine.kv.BlockManager;
import io.distserve.engine.sampling.SamplingParams;
import io.distserve.engine.sched.FinishReason;
import io.distserve.engine.tokenizer.TextTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class LlmEngineTest {

    static final int VOCAB = 97;
    static final int EOS = 96;
    static final TextTokenizer TOK = FakeTokenizers.chars(VOCAB, EOS);

    private final List<LlmEngine> engines = new ArrayList<>();
    private final List<BlockManager> pools = new ArrayList<>();
    private final List<RecordingListener> listeners = new ArrayList<>();
    private FakeBackend backend;
    private BlockManager blocks;
    private LlmEngine engine;

    private LlmEngine engine(int blockSize, int numBlocks, EngineConfig config) {
        backend = new FakeBackend(VOCAB, blockSize, numBlocks, 4096, EOS);
        blocks = new BlockManager(numBlocks);
        engine = new LlmEngine(backend, blocks, TOK, List.of(EOS), config);
        engine.start();
        engines.add(engine);
        pools.add(blocks);
        return engine;
    }

    private LlmEngine engine() {
        return engine(4, 64, EngineConfig.defaults());
    }

    @AfterEach
    void everyBlockIsBackAndEveryListenerWasServedByTheRules() {
        engines.forEach(LlmEngine::close);
        for (BlockManager pool : pools) {
            assertThat(pool.freeCount()).as("free blocks after the test").isEqualTo(pool.totalBlocks());
        }
        for (RecordingListener l : listeners) {
            assertThat(l.violations).isEmpty();
        }
    }

    private RecordingListener listener() {
        RecordingListener l = new RecordingListener();
        listeners.add(l);
        return l;
    }

    static int[] prompt(int length, int salt) {
        int[] p = new int[length];
        for (int i = 0; i < length; i++) {
            p[i] = (i * 13 + salt * 7 + 1) % (VOCAB - 1);
        }
        return p;
    }

    static SamplingParams greedy(int maxTokens, boolean ignoreEos) {
        return new SamplingParams(0, 1, 0, 0, 1, null, maxTokens, List.of(), List.of(), ignoreEos, true);
    }

    static String textOf(int[] ids) {
        StringBuilder sb = new StringBuilder();
        for (int id : ids) {
            if (id != EOS) {
                sb.append(FakeTokenizers.charOf(id));
            }
        }
        return sb.toString();
    }

    @Test
    void greedyOutputMatchesTheUnpagedReferenceAndStreamsTheSameText() throws Exception {
        engine();
        for (int salt = 0; salt < 6; salt++) {
            int[] prompt = prompt(3 + salt * 5, salt);
            RecordingListener l = listener();
            engine.submit(new GenerationRequest("r" + salt, prompt, greedy(20, false)), l);
            FinishEvent f = l.awaitFinish();
            int[] expected = FakeBackend.reference(prompt, 20, VOCAB, EOS, false);
            assertThat(f.tokenIds()).containsExactly(expected);
            assertThat(l.streamedIds()).containsExactly(expected);
            assertThat(f.text()).isEqualTo(textOf(expected)).isEqualTo(l.streamedText());
            assertThat(f.reason()).isEqualTo(expected[expected.length - 1] == EOS ? FinishReason.STOP
                    : FinishReason.LENGTH);
            assertThat(f.promptTokens()).isEqualTo(prompt.length);
            assertThat(f.completionTokens()).isEqualTo(expected.length);
            assertThat(f.timing().timeToFirstTokenNanos()).isPositive();
            assertThat(f.timing().interTokenNanos()).hasSize(expected.length - 1);
            assertThat(f.keptBlocks()).isEmpty();
        }
        EngineStats stats = engine.stats();
        assertThat(stats.requestsFinished()).isEqualTo(6);
        assertThat(stats.running()).isZero();
        assertThat(stats.blocksUsed()).isZero();
    }

    @Test
    void eosEndsWithStopAndAddsNoTextUnlessIgnored() throws Exception {
        engine();
        // Find a prompt whose greedy continuation meets EOS early.
        int[] prompt = null;
        int[] expected = null;
        for (int salt = 0; prompt == null; salt++) {
            int[] p = prompt(4 + salt % 7, salt);
            int[] r = FakeBackend.reference(p, 40, VOCAB, EOS, false);
            if (r[r.length - 1] == EOS && r.length > 2) {
                prompt = p;
                expected = r;
            }
        }
        FinishEvent f = engine.generate(new GenerationRequest("eos", prompt, greedy(40, false)));
        assertThat(f.reason()).isEqualTo(FinishReason.STOP);
        assertThat(f.tokenIds()).containsExactly(expected);
        assertThat(f.text()).isEqualTo(textOf(expected)).doesNotContain("<eos>");

        FinishEvent ignoring = engine.generate(new GenerationRequest("ign", prompt, greedy(40, true)));
        assertThat(ignoring.reason()).isEqualTo(FinishReason.LENGTH);
        assertThat(ignoring.completionTokens()).isEqualTo(40);

        // A stop token id ends it too, without text.
        int[] free = FakeBackend.reference(prompt, 10, VOCAB, EOS, true);
        SamplingParams stopAtThird = new SamplingParams(0, 1, 0, 0, 1, null, 10, List.of(), List.of(free[2]), true,
                true);
        FinishEvent byId = engine.generate(new GenerationRequest("id", prompt, stopAtThird));
        int firstHit = 0;
        while (free[firstHit] != free[2]) {
            firstHit++;
        }
        assertThat(byId.reason()).isEqualTo(FinishReason.STOP);
        assertThat(byId.completionTokens()).isEqualTo(firstHit + 1);
        assertThat(byId.text()).isEqualTo(textOf(java.util.Arrays.copyOf(free, firstHit)));
    }

    @Test
    void stopStringsCutTheOutputAcrossTokenBoundariesAndAreNeverStreamed() throws Exception {
        engine();
        int[] prompt = prompt(9, 3);
        int[] free = FakeBackend.reference(prompt, 30, VOCAB, EOS, true);
        String full = textOf(free);
        String stop = full.substring(6, 9); // spans three tokens
        int cut = full.indexOf(stop);
        RecordingListener l = listener();
        SamplingParams p = new SamplingParams(0, 1, 0, 0, 1, null, 30, List.of(stop, "never-there"), List.of(),
                true, true);
        engine.submit(new GenerationRequest("s", prompt, p), l);
        FinishEvent f = l.awaitFinish();
        assertThat(f.reason()).isEqualTo(FinishReason.STOP);
        assertThat(f.text()).isEqualTo(full.substring(0, cut)).isEqualTo(l.streamedText());
        assertThat(l.tokens).noneMatch(t -> t.textDelta().contains(stop));
        assertThat(f.completionTokens()).isEqualTo(cut + stop.length());
    }

    @Test
    void preemptionUnderATinyPoolGivesTheSameTokensAsWithoutPressure() throws Exception {
        engine(4, 10, new EngineConfig(64, 16, 100)); // each request needs up to 8 of the 10 blocks
        // the first step waits until all six are queued: otherwise a fast loop can finish the first ones before the
        // last arrive, and nothing is ever preempted
        Gate gate = new Gate();
        backend.failWhen(b -> gate.pass());
        Map<String, RecordingListener> byId = new ConcurrentHashMap<>();
        Map<String, int[]> prompts = new ConcurrentHashMap<>();
        for (int i = 0; i < 6; i++) {
            int[] prompt = prompt(5 + i, i);
            RecordingListener l = listener();
            prompts.put("p" + i, prompt);
            byId.put("p" + i, l);
            engine.submit(new GenerationRequest("p" + i, prompt, greedy(20, true)), l);
        }
        gate.awaitEntered();
        gate.release.countDown();
        for (Map.Entry<String, RecordingListener> e : byId.entrySet()) {
            FinishEvent f = e.getValue().awaitFinish();
            assertThat(f.tokenIds()).as(e.getKey())
                    .containsExactly(FakeBackend.reference(prompts.get(e.getKey()), 20, VOCAB, EOS, true));
            assertThat(e.getValue().streamedIds()).containsExactly(f.tokenIds());
        }
        assertThat(engine.stats().preemptions()).isPositive();
        assertThat(byId.values().stream().mapToInt(l -> l.finish.preemptions()).sum()).isPositive();
    }

    @Test
    void longPromptsArePrefilledInChunksBesideRunningDecodes() throws Exception {
        engine(4, 64, new EngineConfig(8, 16, 100));
        RecordingListener shortOne = listener();
        engine.submit(new GenerationRequest("short", prompt(3, 1), greedy(30, true)), shortOne);
        shortOne.awaitFirstToken();
        RecordingListener longOne = listener();
        int[] longPrompt = prompt(50, 2);
        engine.submit(new GenerationRequest("long", longPrompt, greedy(5, true)), longOne);
        assertThat(longOne.awaitFinish().tokenIds())
                .containsExactly(FakeBackend.reference(longPrompt, 5, VOCAB, EOS, true));
        assertThat(shortOne.awaitFinish().tokenIds())
                .containsExactly(FakeBackend.reference(prompt(3, 1), 30, VOCAB, EOS, true));
        int partialChunks = 0;
        for (List<SequenceSlice> batch : backend.history()) {
            assertThat(batch.stream().mapToInt(SequenceSlice::length).sum()).isLessThanOrEqualTo(8);
            for (SequenceSlice s : batch) {
                if (s.logits() == LogitsMode.NONE) {
                    partialChunks++;
                    assertThat(s.length()).isGreaterThan(0);
                }
            }
        }
        assertThat(partialChunks).isGreaterThanOrEqualTo(6); // 50 tokens in chunks of at most 7 beside a decode
    }

    @Test
    void aSequencesTokensDoNotDependOnTheRestOfTheBatch() throws Exception {
        engine(4, 256, new EngineConfig(32, 64, 100));
        List<GenerationRequest> requests = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            SamplingParams p = i % 2 == 0 ? greedy(12, true)
                    : new SamplingParams(0.9, 0.95, 20, 0.01, 1.1, 1000L + i, 12, List.of(), List.of(), true, true);
            requests.add(new GenerationRequest("b" + i, prompt(2 + i * 3, i), p));
        }
        Map<String, int[]> alone = new ConcurrentHashMap<>();
        for (GenerationRequest r : requests) {
            alone.put(r.requestId(), engine.generate(r).tokenIds());
        }
        List<RecordingListener> together = new ArrayList<>();
        for (GenerationRequest r : requests) {
            RecordingListener l = listener();
            together.add(l);
            engine.submit(r, l);
        }
        for (int i = 0; i < requests.size(); i++) {
            assertThat(together.get(i).awaitFinish().tokenIds()).as(requests.get(i).requestId())
                    .containsExactly(alone.get(requests.get(i).requestId()));
        }
        assertThat(alone.get("b0")).containsExactly(FakeBackend.reference(prompt(2, 0), 12, VOCAB, EOS, true));
        // The batch really held several sequences at once.
        assertThat(backend.history().stream().mapToInt(List::size).max().orElse(0)).isGreaterThan(4);
    }

    @Test
    void concurrentSubmissionsFromManyThreadsAllComplete() throws Exception {
        engine(4, 128, new EngineConfig(64, 8, 100));
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<FinishEvent>> results = new ArrayList<>();
            for (int i = 0; i < 24; i++) {
                int salt = i;
                results.add(pool.submit(() -> engine.generate(
                        new GenerationRequest("c" + salt, prompt(4 + salt % 9, salt), greedy(15, true)))));
            }
            for (int i = 0; i < results.size(); i++) {
                FinishEvent f = results.get(i).get(30, TimeUnit.SECONDS);
                assertThat(f.tokenIds()).containsExactly(
                        FakeBackend.reference(prompt(4 + i % 9, i), 15, VOCAB, EOS, true));
            }
        } finally {
            pool.shutdownNow();
        }
        assertThat(engine.stats().requestsFinished()).isEqualTo(24);
        assertThat(engine.stats().tokensGenerated()).isEqualTo(24 * 15);
    }

    /** Makes forward block until released, and tells when it is blocked. */
    private static final class Gate {
        final CountDownLatch entered = new CountDownLatch(1);
        final CountDownLatch release = new CountDownLatch(1);

        boolean pass() {
            entered.countDown();
            try {
                release.await(20, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return false;
        }

        void awaitEntered() throws InterruptedException {
            assertThat(entered.await(20, TimeUnit.SECONDS)).isTrue();
        }
    }

    @Test
    void aFullWaitingQueueRejectsWithQueueFull() throws Exception {
        engine(4, 64, new EngineConfig(64, 1, 2));
        Gate gate = new Gate();
        backend.failWhen(b -> gate.pass());
        RecordingListener running = listener();
        engine.submit(new GenerationRequest("a", prompt(4, 1), greedy(3, true)), running);
        gate.awaitEntered(); // "a" is running, blocked in forward
        RecordingListener b = listener();
        RecordingListener c = listener();
        engine.submit(new GenerationRequest("b", prompt(4, 2), greedy(3, true)), b);
        engine.submit(new GenerationRequest("c", prompt(4, 3), greedy(3, true)), c);
        assertThatThrownBy(() -> engine.submit(new GenerationRequest("d", prompt(4, 4), greedy(3, true)),
                listener())).isInstanceOf(QueueFullException.class).hasMessageContaining("queue is full")
                .extracting(e -> ((RequestRejectedException) e).reason())
                .isEqualTo(RequestRejectedException.Reason.QUEUE_FULL);
        assertThat(engine.stats().waiting()).isEqualTo(2);
        gate.release.countDown();
        running.awaitFinish();
        b.awaitFinish();
        c.awaitFinish();
        // Room again.
        assertThat(engine.generate(new GenerationRequest("e", prompt(4, 5), greedy(3, true))).completionTokens())
                .isEqualTo(3);
    }

    @Test
    void requestsThatCanNeverFitOrAreMalformedAreRejectedAtSubmit() {
        engine(4, 8, EngineConfig.defaults()); // 32 tokens of cache
        assertThatThrownBy(() -> engine.submit(new GenerationRequest("big", prompt(20, 1), greedy(13, false)),
                GenerationListener.none())).isInstanceOf(RequestRejectedException.class)
                .hasMessageContaining("needs 9 KV blocks").hasMessageContaining("holds only 8")
                .extracting(e -> ((RequestRejectedException) e).reason())
                .isEqualTo(RequestRejectedException.Reason.TOO_LONG);
        assertThatThrownBy(() -> engine.submit(new GenerationRequest("ctx", prompt(20, 1), greedy(5000, false)),
                GenerationListener.none())).hasMessageContaining("context length");
        assertThatThrownBy(() -> engine.submit(new GenerationRequest("tok", new int[] {1, VOCAB}, greedy(2, false)),
                GenerationListener.none())).hasMessageContaining("outside the vocabulary");
        assertThatThrownBy(() -> engine.submit(new GenerationRequest("empty", new int[0], greedy(2, false)),
                GenerationListener.none())).hasMessageContaining("empty");
        assertThat(engine.stats().waiting()).isZero();
        // The largest request that fits does run.
        assertThat(engine.submit(new GenerationRequest("fits", prompt(20, 1), greedy(12, true)),
                GenerationListener.none()).completion().join().completionTokens()).isEqualTo(12);
    }

    @Test
    void duplicateLiveRequestIdsAreRejected() throws Exception {
        engine();
        Gate gate = new Gate();
        backend.failWhen(b -> gate.pass());
        RecordingListener first = listener();
        engine.submit(new GenerationRequest("same", prompt(4, 1), greedy(2, true)), first);
        assertThatThrownBy(() -> engine.submit(new GenerationRequest("same", prompt(4, 2), greedy(2, true)),
                GenerationListener.none())).isInstanceOf(RequestRejectedException.class)
                .hasMessageContaining("already in use");
        gate.release.countDown();
        first.awaitFinish();
        // Once ended, the id may be reused.
        assertThat(engine.generate(new GenerationRequest("same", prompt(4, 2), greedy(2, true))).completionTokens())
                .isEqualTo(2);
    }

    @Test
    void abortWorksWhileWaitingRunningAndMidPrefill() throws Exception {
        engine(4, 64, new EngineConfig(4, 2, 100));
        Gate first = new Gate();
        Gate midPrefill = new Gate();
        backend.delayMillis(2); // 200 tokens take longer than the test needs to abort after the first
        backend.failWhen(b -> first.entered.getCount() > 0 ? first.pass()
                : b.stream().anyMatch(s -> s.logits() == LogitsMode.NONE) && midPrefill.entered.getCount() > 0
                        && midPrefill.pass());
        RecordingListener running = listener();
        engine.submit(new GenerationRequest("run", prompt(3, 1), greedy(200, true)), running);
        first.awaitEntered();
        // With a 4-token budget the 40-token prompt is prefilled over many steps.
        RecordingListener prefilling = listener();
        engine.submit(new GenerationRequest("pre", prompt(40, 2), greedy(200, true)), prefilling);
        RecordingListener waiting = listener();
        engine.submit(new GenerationRequest("wait", prompt(3, 3), greedy(5, true)), waiting); // maxRunning 2
        // Still blocked in the first step: "wait" cannot have been admitted.
        assertThat(engine.abort("wait")).isTrue();
        first.release.countDown();
        FinishEvent w = waiting.awaitFinish();
        assertThat(w.reason()).isEqualTo(FinishReason.ABORT);
        assertThat(w.completionTokens()).isZero();
        assertThat(w.timing().timeToFirstTokenNanos()).isEqualTo(-1);

        // Blocked in a step that holds a non-final prefill chunk: the abort lands between chunks.
        midPrefill.awaitEntered();
        assertThat(engine.abort("pre")).isTrue();
        midPrefill.release.countDown();
        FinishEvent p = prefilling.awaitFinish();
        assertThat(p.reason()).isEqualTo(FinishReason.ABORT);
        assertThat(p.completionTokens()).isZero();

        running.awaitFirstToken();
        assertThat(engine.abort("run")).isTrue();
        FinishEvent r = running.awaitFinish();
        assertThat(r.reason()).isEqualTo(FinishReason.ABORT);
        assertThat(r.completionTokens()).isLessThan(200).isEqualTo(running.tokens.size());
        assertThat(engine.abort("run")).isFalse();
        assertThat(engine.abort("unknown")).isFalse();
        assertThat(engine.stats().requestsAborted()).isEqualTo(3);
        assertThat(blocks.usedCount()).isZero();
    }

    @Test
    void theLoopSurvivesABackendFailureAndOnlyTheStepsSequencesFail() throws Exception {
        engine();
        int poison = 95;
        backend.failWhen(batch -> batch.stream().anyMatch(s -> s.startPosition() == 0 && s.tokens()[0] == poison));
        RecordingListener bad = listener();
        int[] badPrompt = prompt(6, 1);
        badPrompt[0] = poison;
        engine.submit(new GenerationRequest("bad", badPrompt, greedy(5, true)), bad);
        Throwable error = bad.awaitError();
        assertThat(error).isInstanceOf(GenerationFailedException.class).hasMessageContaining("bad")
                .hasRootCauseMessage("injected backend failure");
        assertThat(((GenerationFailedException) error).partial().reason()).isEqualTo(FinishReason.ERROR);
        assertThatThrownBy(() -> engine.generate(new GenerationRequest("bad2", badPrompt, greedy(5, true))))
                .isInstanceOf(GenerationFailedException.class);
        assertThat(blocks.usedCount()).isZero();
        // Next requests are served normally.
        assertThat(engine.generate(new GenerationRequest("good", prompt(6, 2), greedy(5, true))).tokenIds())
                .containsExactly(FakeBackend.reference(prompt(6, 2), 5, VOCAB, EOS, true));
        assertThat(engine.stats().requestsFailed()).isEqualTo(2);
    }

    @Test
    void aListenerThatThrowsFailsOnlyItsOwnRequest() throws Exception {
        engine();
        RecordingListener healthy = listener();
        engine.submit(new GenerationRequest("ok", prompt(5, 1), greedy(10, true)), healthy);
        CountDownLatch failed = new CountDownLatch(1);
        engine.submit(new GenerationRequest("throws", prompt(5, 2), greedy(10, true)), new GenerationListener() {
            @Override
            public void onToken(TokenEvent event) {
                throw new IllegalStateException("client went away");
            }

            @Override
            public void onFinish(FinishEvent event) {
            }

            @Override
            public void onError(Throwable e) {
                failed.countDown();
            }
        });
        assertThat(failed.await(20, TimeUnit.SECONDS)).isTrue();
        assertThat(healthy.awaitFinish().completionTokens()).isEqualTo(10);
    }

    @Test
    void plainlyGreedyStepsAskTheBackendForIdsAndAnyOtherStepForLogits() throws Exception {
        engine();
        int[] prompt = prompt(6, 3);
        int[] expected = FakeBackend.reference(prompt, 12, VOCAB, EOS, true);
        assertThat(engine.generate(new GenerationRequest("g", prompt, greedy(12, true))).tokenIds())
                .containsExactly(expected);
        assertThat(backend.greedyCalls()).isEqualTo(12);  // one prefill step + 11 decodes, all greedy
        // a repetition penalty needs the sequence's tokens: not a plain greedy step, the backend penalises and
        // takes the argmax (temperature 0)
        int before = backend.greedyCalls();
        SamplingParams penalised = new SamplingParams(0, 1, 0, 0, 1.3, null, 5, List.of(), List.of(), true, true);
        engine.generate(new GenerationRequest("p", prompt(6, 4), penalised));
        assertThat(backend.greedyCalls()).isEqualTo(before);
        assertThat(backend.penalisedCalls()).isEqualTo(5);
        // greedy beside a sampled request in the same steps: logits for everyone, the greedy tokens unchanged
        RecordingListener g = listener();
        RecordingListener t = listener();
        SamplingParams hot = new SamplingParams(1.0, 0.9, 0, 0, 1, 7L, 12, List.of(), List.of(), true, true);
        engine.submit(new GenerationRequest("t", prompt(6, 5), hot), t);
        engine.submit(new GenerationRequest("g2", prompt, greedy(12, true)), g);
        assertThat(g.awaitFinish().tokenIds()).containsExactly(expected);
        t.awaitFinish();
    }

    @Test
    void everySamplingSettingSamplesInTheBackendRepetitionPenaltyIncluded() throws Exception {
        engine();
        int[] prompt = prompt(6, 3);
        int[] expected = FakeBackend.reference(prompt, 12, VOCAB, EOS, true);
        SamplingParams hot = new SamplingParams(0.8, 0.9, 20, 0.05, 1, 7L, 12, List.of(), List.of(), true, true);
        engine.generate(new GenerationRequest("t", prompt(6, 5), hot));
        assertThat(backend.sampledCalls()).isEqualTo(12);  // one prefill step + 11 decodes
        assertThat(backend.greedyCalls()).isZero();
        // a repetition penalty goes to the backend too, with the sequence's tokens (only ids come back)
        int sampled = backend.sampledCalls();
        SamplingParams penalised = new SamplingParams(0.8, 1, 0, 0, 1.3, 7L, 5, List.of(), List.of(), true, true);
        engine.generate(new GenerationRequest("p", prompt(6, 4), penalised));
        assertThat(backend.sampledCalls()).isEqualTo(sampled + 5);
        assertThat(backend.penalisedCalls()).isEqualTo(5);
        sampled = backend.sampledCalls();
        // greedy beside a sampled request in the same steps: both sampled in the backend, greedy tokens unchanged
        RecordingListener g = listener();
        RecordingListener t = listener();
        engine.submit(new GenerationRequest("t2", prompt(6, 5), hot), t);
        engine.submit(new GenerationRequest("g", prompt, greedy(12, true)), g);
        assertThat(g.awaitFinish().tokenIds()).containsExactly(expected);
        t.awaitFinish();
        assertThat(backend.sampledCalls()).isGreaterThan(sampled);
    }

    @Test
    void seededSamplingIsReproducible() throws Exception {
        engine();
        SamplingParams p = new SamplingParams(1.0, 0.9, 0, 0, 1, 7L, 25, List.of(), List.of(), true, true);
        int[] a = engine.generate(new GenerationRequest("s1", prompt(5, 1), p)).tokenIds();
        int[] b = engine.generate(new GenerationRequest("s2", prompt(5, 1), p)).tokenIds();
        int[] other = engine.generate(new GenerationRequest("s3", prompt(5, 1),
                new SamplingParams(1.0, 0.9, 0, 0, 1, 8L, 25, List.of(), List.of(), true, true))).tokenIds();
        assertThat(a).containsExactly(b);
        assertThat(a).isNotEqualTo(other);
    }

    @Test
    void prefillKeepsItsBlocksAndADecodeEngineContinuesFromMigratedBlocks() throws Exception {
        // Prefill engine: stops after the first token and hands over its blocks (the lease).
        LlmEngine prefill = engine(4, 32, EngineConfig.defaults());
        FakeBackend prefillBackend = backend;
        BlockManager prefillBlocks = blocks;
        int[] prompt = prompt(10, 4);
        RecordingListener p = listener();
        prefill.submitKeepingBlocks(new GenerationRequest("pd", prompt, greedy(1, true)), p);
        FinishEvent pf = p.awaitFinish();
        assertThat(pf.keptBlocks()).hasSize(3);
        assertThat(prefillBlocks.usedCount()).isEqualTo(3);
        int first = pf.tokenIds()[0];

        // Decode engine: allocate, pull the blocks, release the lease, continue.
        LlmEngine decode = engine(4, 32, EngineConfig.defaults());
        int[] local = blocks.allocate(pf.keptBlocks().length).orElseThrow();
        for (int i = 0; i < local.length; i++) {
            prefillBackend.copyBlockTo(pf.keptBlocks()[i], backend, local[i]);
        }
        prefillBlocks.free(pf.keptBlocks());
        RecordingListener d = listener();
        decode.submitPrefilled(new GenerationRequest("pd", prompt, greedy(12, true)), local, first, d);
        FinishEvent df = d.awaitFinish();
        int[] expected = FakeBackend.reference(prompt, 12, VOCAB, EOS, true);
        assertThat(df.tokenIds()).containsExactly(expected);
        assertThat(d.tokens.get(0).tokenId()).isEqualTo(first);
        assertThat(df.text()).isEqualTo(textOf(expected)).isEqualTo(d.streamedText());
        // The decode engine never recomputed the prompt: its first forward starts at the prompt's end.
        assertThat(backend.history().get(0)).singleElement()
                .satisfies(s -> assertThat(s.startPosition()).isEqualTo(prompt.length));
    }

    @Test
    void aBrokenAnswerResumesThroughAPrefillAndAMigrationToTheUninterruptedTokens() throws Exception {
        // a DistServe stream that broke after k tokens: prefilled again with them (resume), migrated, decoded
        int[] prompt = prompt(10, 4);
        int[] expected = FakeBackend.reference(prompt, 12, VOCAB, EOS, true);
        for (int k : new int[] {1, 2, 5}) {
            int[] resumed = java.util.Arrays.copyOf(expected, k);
            LlmEngine prefill = engine(4, 32, EngineConfig.defaults());
            FakeBackend prefillBackend = backend;
            BlockManager prefillBlocks = blocks;
            RecordingListener p = listener();
            p.resumed = k;
            prefill.submitKeepingBlocks(new GenerationRequest("pr", prompt, greedy(k + 1, true), resumed), p);
            FinishEvent pf = p.awaitFinish();
            // the lease holds the K/V of the prompt and of the resumed tokens; the sampled one comes after them
            assertThat(pf.keptBlocks()).as("k=%d", k).hasSize((prompt.length + k + 3) / 4);
            assertThat(pf.tokenIds()).containsExactly(expected[k]);
            assertThat(pf.completionTokens()).isEqualTo(k + 1);

            LlmEngine decode = engine(4, 32, EngineConfig.defaults());
            int[] local = blocks.allocate(pf.keptBlocks().length).orElseThrow();
            for (int i = 0; i < local.length; i++) {
                prefillBackend.copyBlockTo(pf.keptBlocks()[i], backend, local[i]);
            }
            prefillBlocks.free(pf.keptBlocks());
            RecordingListener d = listener();
            d.resumed = k;
            decode.submitPrefilled(new GenerationRequest("dr", prompt, greedy(12, true), resumed), local,
                    pf.tokenIds()[0], d);
            FinishEvent df = d.awaitFinish();
            assertThat(df.tokenIds()).as("k=%d", k)
                    .containsExactly(java.util.Arrays.copyOfRange(expected, k, expected.length));
            assertThat(df.completionTokens()).isEqualTo(12);
            assertThat(textOf(resumed) + df.text()).isEqualTo(textOf(expected));
            // the decode engine computed neither the prompt nor the resumed tokens again
            assertThat(backend.history().get(0)).singleElement()
                    .satisfies(s -> assertThat(s.startPosition()).isEqualTo(prompt.length + k));
            assertThat(blocks.usedCount()).isZero();
            assertThatThrownBy(() -> decode.submitPrefilled(new GenerationRequest("bad", prompt, greedy(12, true),
                    resumed), new int[] {0}, 3, GenerationListener.none()))
                    .isInstanceOf(RequestRejectedException.class).hasMessageContaining("KV blocks");
            prefill.close();
            decode.close();
        }
    }

    @Test
    void keptBlocksAreFreedWhenTheRequestIsAbortedAndPrefilledInputIsValidated() throws Exception {
        engine();
        Gate gate = new Gate();
        backend.failWhen(b -> gate.pass());
        RecordingListener l = listener();
        engine.submitKeepingBlocks(new GenerationRequest("k", prompt(10, 1), greedy(50, true)), l);
        gate.awaitEntered();
        engine.abort("k");
        gate.release.countDown();
        assertThat(l.awaitFinish().keptBlocks()).isEmpty();
        assertThat(blocks.usedCount()).isZero();

        int[] two = blocks.allocate(2).orElseThrow();
        GenerationRequest req = new GenerationRequest("m", prompt(10, 1), greedy(5, true));
        assertThatThrownBy(() -> engine.submitPrefilled(req, two, 3, GenerationListener.none()))
                .isInstanceOf(RequestRejectedException.class).hasMessageContaining("needs 3 KV blocks");
        int[] notAllocated = {two[0], two[1], 60};
        assertThatThrownBy(() -> engine.submitPrefilled(req, notAllocated, 3, GenerationListener.none()))
                .hasMessageContaining("KV block 60");
        assertThatThrownBy(() -> engine.submitPrefilled(req, new int[] {two[0], two[1], 500}, 3,
                GenerationListener.none())).hasMessageContaining("KV block 500");
        int[] third = blocks.allocate(1).orElseThrow();
        int[] all = {two[0], two[1], third[0]};
        assertThatThrownBy(() -> engine.submitPrefilled(req, all, VOCAB, GenerationListener.none()))
                .hasMessageContaining("first token");
        // Rejected: the caller still owns them.
        assertThat(blocks.usedCount()).isEqualTo(3);
        blocks.free(all);
        // A prefilled request whose first token already ends it finishes at once and frees its blocks.
        int[] again = blocks.allocate(3).orElseThrow();
        FinishEvent f = engine.submitPrefilled(new GenerationRequest("m1", prompt(10, 1), greedy(1, true)), again,
                5, GenerationListener.none()).completion().get(20, TimeUnit.SECONDS);
        assertThat(f.tokenIds()).containsExactly(5);
        assertThat(f.reason()).isEqualTo(FinishReason.LENGTH);
    }

    @Test
    void drainStopsAcceptingAndCompletesWhenInFlightRequestsEnd() throws Exception {
        engine();
        RecordingListener l = listener();
        engine.submit(new GenerationRequest("d", prompt(5, 1), greedy(30, true)), l);
        var drained = engine.drain();
        assertThatThrownBy(() -> engine.submit(new GenerationRequest("late", prompt(5, 1), greedy(3, true)),
                GenerationListener.none())).isInstanceOf(RequestRejectedException.class)
                .extracting(e -> ((RequestRejectedException) e).reason())
                .isEqualTo(RequestRejectedException.Reason.NOT_ACCEPTING);
        drained.get(20, TimeUnit.SECONDS);
        assertThat(l.awaitFinish().completionTokens()).isEqualTo(30);
    }

    @Test
    void closeAbortsWhatRemainsJoinsTheLoopAndTheIdleLoopSleeps() throws Exception {
        engine();
        engine.generate(new GenerationRequest("warm", prompt(5, 1), greedy(3, true)));
        Thread loop = Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().equals("llm-engine-fake")).findFirst().orElseThrow();
        int calls = backend.forwardCalls();
        Thread.sleep(100);
        assertThat(backend.forwardCalls()).isEqualTo(calls);
        assertThat(loop.getState()).isEqualTo(Thread.State.WAITING); // parked on its queue, not spinning

        Gate gate = new Gate();
        backend.failWhen(b -> gate.pass());
        backend.delayMillis(5); // 100 steps outlast the close
        RecordingListener running = listener();
        engine.submit(new GenerationRequest("r", prompt(5, 2), greedy(100, true)), running);
        RecordingListener queued = listener();
        engine.submit(new GenerationRequest("q", prompt(5, 3), greedy(100, true)), queued);
        gate.awaitEntered();
        Thread closer = new Thread(engine::close);
        closer.start();
        gate.release.countDown();
        closer.join(20_000);
        assertThat(closer.isAlive()).isFalse();
        assertThat(loop.isAlive()).isFalse();
        assertThat(running.awaitFinish().reason()).isEqualTo(FinishReason.ABORT);
        assertThat(queued.awaitFinish().reason()).isEqualTo(FinishReason.ABORT);
        assertThatThrownBy(() -> engine.submit(new GenerationRequest("x", prompt(5, 2), greedy(3, true)),
                GenerationListener.none())).isInstanceOf(RequestRejectedException.class);
    }
}
