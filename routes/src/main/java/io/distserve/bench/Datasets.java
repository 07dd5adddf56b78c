package io.distserve.bench;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.engine.tokenizer.TextTokenizer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.Set;

/**
 * The benchmark's workloads, built with the served model's tokenizer so that lengths are real token counts:
 * <ul>
 *   <li>{@code random}: prompt and output lengths drawn uniformly around the asked ones ({@code range-ratio}: within
 *       L x (1 - r) .. L x (1 + r), as vLLM); prompts of random ordinary token ids, sent as ids to /v1/completions
 *       (the server counts exactly them) and as their text to /v1/chat/completions;</li>
 *   <li>{@code sharegpt}: the public ShareGPT JSON (a list of {"conversations": [{"from", "value"}...]}): the first
 *       human turn is the prompt, the reply's token count the output length; pairs shorter than 4 tokens, prompts
 *       over 1,024 tokens and prompt + output over 2,048 are skipped (vLLM's filter);</li>
 *   <li>{@code prefix-repeat}: K shared prefixes (system prompts) of P tokens, each request one of them (in turn)
 *       followed by a unique random suffix: the workload of prefix caching and cache-aware routing.</li>
 * </ul>
 */
public final class Datasets {

    private Datasets() {
    }

    /** Lengths of [L(1-r), L(1+r)], at least 1. */
    static int draw(Random rnd, int length, double rangeRatio) {
        int lo = Math.max(1, (int) Math.floor(length * (1 - rangeRatio)));
        int hi = Math.max(lo, (int) Math.floor(length * (1 + rangeRatio)));
        return lo + rnd.nextInt(hi - lo + 1);
    }

    /** Ordinary (non-special) token ids of the vocabulary. */
    static int[] ordinaryIds(TextTokenizer tokenizer) {
        Set<Integer> special = tokenizer.specialTokenIds();
        int[] ids = new int[tokenizer.vocabSize()];
        int n = 0;
        for (int i = 0; i < ids.length; i++) {
            if (!special.contains(i)) {
                ids[n++] = i;
            }
        }
        return java.util.Arrays.copyOf(ids, n);
    }

    private static int[] randomIds(Random rnd, int[] vocab, int n) {
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = vocab[rnd.nextInt(vocab.length)];
        }
        return out;
    }

    public static List<BenchRequest> random(TextTokenizer tokenizer, int n, int inputLen, int outputLen,
                                            double rangeRatio, long seed, boolean asIds) {
        Random rnd = new Random(seed);
        int[] vocab = ordinaryIds(tokenizer);
        List<BenchRequest> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            int[] ids = randomIds(rnd, vocab, draw(rnd, inputLen, rangeRatio));
            int output = draw(rnd, outputLen, rangeRatio);
            out.add(asIds ? new BenchRequest(ids, null, null, ids.length, output)
                    : new BenchRequest(null, tokenizer.decode(ids, true), null, ids.length, output));
        }
        return out;
    }

    public static List<BenchRequest> prefixRepeat(TextTokenizer tokenizer, int n, int prefixes, int prefixLen,
                                                  int suffixLen, int outputLen, double rangeRatio, long seed,
                                                  boolean asIds) {
        Random rnd = new Random(seed);
        int[] vocab = ordinaryIds(tokenizer);
        int[][] shared = new int[prefixes][];
        for (int k = 0; k < prefixes; k++) {
            shared[k] = randomIds(rnd, vocab, prefixLen);
        }
        List<BenchRequest> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            int[] prefix = shared[i % prefixes];
            int[] suffix = randomIds(rnd, vocab, draw(rnd, suffixLen, rangeRatio));
            int output = draw(rnd, outputLen, rangeRatio);
            if (asIds) {
                int[] ids = java.util.Arrays.copyOf(prefix, prefix.length + suffix.length);
                System.arraycopy(suffix, 0, ids, prefix.length, suffix.length);
                out.add(new BenchRequest(ids, null, null, ids.length, output));
            } else {
                out.add(new BenchRequest(null, tokenizer.decode(suffix, true), tokenizer.decode(prefix, true),
                        prefix.length + suffix.length, output));
            }
        }
        return out;
    }

    private static boolean isTurn(JsonNode turn, String from) {
        return from.equals(turn.path("from").asText()) && turn.path("value").isTextual();
    }

    /**
     * @param outputLen a fixed output length, or null: the reply's token count
     * @throws IllegalArgumentException one line, when the file is not ShareGPT JSON or yields no usable pair
     */
    public static List<BenchRequest> shareGpt(Path file, TextTokenizer tokenizer, int n, Integer outputLen,
                                              long seed, ObjectMapper json) throws IOException {
        List<String[]> pairs = new ArrayList<>();
        try (JsonParser p = json.getFactory().createParser(file.toFile())) {
            if (p.nextToken() != JsonToken.START_ARRAY) {
                throw new IllegalArgumentException(file + " is not ShareGPT JSON (a list of conversations)");
            }
            p.nextToken();
            MappingIterator<JsonNode> it = json.readerFor(JsonNode.class).readValues(p);
            while (it.hasNextValue()) {
                JsonNode c = it.nextValue().path("conversations");
                if (c.isArray() && c.size() >= 2 && isTurn(c.get(0), "human") && isTurn(c.get(1), "gpt")) {
                    pairs.add(new String[] {c.get(0).path("value").asText(), c.get(1).path("value").asText()});
                }
            }
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException(file + " is not valid JSON: " + e.getOriginalMessage());
        }
        Collections.shuffle(pairs, new Random(seed));
        List<BenchRequest> out = new ArrayList<>(n);
        for (String[] pair : pairs) {
            if (out.size() == n) {
                break;
            }
            int prompt = tokenizer.encode(pair[0]).length;
            int output = outputLen != null ? outputLen : tokenizer.encode(pair[1]).length;
            if (prompt < 4 || output < 4 || prompt > 1024 || prompt + output > 2048) {
                continue;
            }
            out.add(new BenchRequest(null, pair[0], null, prompt, output));
        }
        if (out.isEmpty()) {
            throw new IllegalArgumentException(file + " has no conversation with a usable first exchange ("
                    + pairs.size() + " pairs read)");
        }
        return out;
    }
}
