package io.distserve.engine.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small byte-level BPE tokenizer in Hugging Face format, for checkpoints generated without a real tokenizer.
 * Like GPT-2 and Qwen it maps every byte to a printable symbol ({@code bytes_to_unicode}), so any UTF-8 text
 * round-trips; its 256 byte tokens have GPT-2's ids. A fixed list of frequent English merges (the head of GPT-2's
 * merge list, minus pairs whose parts it lacks) makes ordinary text shorter than one token per byte. The special
 * tokens {@code <|endoftext|>}, {@code <|im_start|>} and {@code <|im_end|>} follow, and a ChatML template.
 */
public final class BuiltInTokenizer {

    public static final String END_OF_TEXT = "<|endoftext|>";
    public static final String IM_START = "<|im_start|>";
    public static final String IM_END = "<|im_end|>";

    static final String CHAT_TEMPLATE = "{% for m in messages %}<|im_start|>{{m.role}}\n{{m.content}}<|im_end|>\n"
            + "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    /** Merges in priority order, separated by two spaces; each pair's parts are byte symbols or earlier merges. */
    private static final String MERGES = """
            Ġ t  Ġ a  h e  i n  r e  o n  Ġt he  e r  Ġ s  a t
            Ġ w  Ġ o  e n  Ġ c  i t  i s  a n  o r  e s  Ġ b
            e d  Ġ f  in g  Ġ p  o u  Ġa n  a l  a r  Ġt o  Ġ m
            Ġo f  Ġ in  Ġ d  Ġ h  Ġan d  i c  a s  l e  Ġt h  i on
            o m  l l  en t  Ġ n  Ġ l  s t  Ġ re  v e  Ġ e  r o
            l y  Ġb e  Ġ g  Ġ T  c t  Ġ S  i d  o t  Ġ I  u t
            e t  Ġ A  Ġo n  i m  a m  o w  a y  a d  s e  Ġth at
            Ġ C  i g  Ġf or  a c  Ġ y  v er  u r  Ġ u  l d  Ġs t
            Ġ M  ' s  Ġ he  at ion  it h  i r  c e  Ġy ou  i l  Ġ B
            Ġw h  o l  Ġ P  Ġw ith  Ġ 1  t er  c h  Ġa s  Ġw e  Ġ (
            n d  i ll  Ġ D  i f  Ġ 2  a g  er s  k e  Ġ \"  Ġ H
            e m  Ġc on  Ġ W  Ġ R  he r  Ġw as  Ġ r  o d  Ġ F  u l
            at e  Ġa t  r i  p p  o re  ĠT he  Ġs e  u s  Ġp ro  Ġh a
            u m  Ġa re  Ġd e  a in  an d  Ġo r  es t  is t  a b  r om
            Ġ N  t h  Ġc om  Ġ G  u n  o p  0 0  Ġ L  Ġn ot  es s
            Ġe x  Ġ v  r es  Ġ E  e w  it y  an t  Ġb y  e l  o s
            or t  o c  q u  Ġf rom  Ġs u  i ve  ou ld  Ġs h  Ġth is  n t
            r a  p e  ar t  m ent  Ġa l  u st  en d  - -  al l  Ġ O
            Ġc h  Ġ le  i es  r ed  ar d
            """;

    private static final ObjectMapper JSON = new ObjectMapper();

    private final Map<String, Integer> vocab;
    private final List<String> merges;

    public BuiltInTokenizer() {
        vocab = new LinkedHashMap<>();
        for (int codePoint : byteSymbols()) {
            vocab.put(new String(Character.toChars(codePoint)), vocab.size());
        }
        merges = new ArrayList<>();
        for (String merge : MERGES.strip().split("\\s{2,}|\\n")) {
            String pair = merge.strip();
            if (pair.isEmpty()) {
                continue;
            }
            String[] parts = pair.split(" ");
            if (parts.length != 2 || !vocab.containsKey(parts[0]) || !vocab.containsKey(parts[1])) {
                throw new IllegalStateException("built-in merge '" + pair + "' does not join two known tokens");
            }
            merges.add(pair);
            vocab.putIfAbsent(parts[0] + parts[1], vocab.size());
        }
    }

    /**
     * GPT-2's {@code bytes_to_unicode}: printable Latin-1 bytes stand for themselves, the other 68 bytes take the
     * code points from 256 on. Index = token id, value = code point; byte {@code b} is the symbol at the position
     * where the byte lands.
     */
    static int[] byteSymbols() {
        List<Integer> bytes = new ArrayList<>();
        for (int b = '!'; b <= '~'; b++) {
            bytes.add(b);
        }
        for (int b = 0xA1; b <= 0xAC; b++) {
            bytes.add(b);
        }
        for (int b = 0xAE; b <= 0xFF; b++) {
            bytes.add(b);
        }
        List<Integer> symbols = new ArrayList<>(bytes);
        int extra = 0;
        for (int b = 0; b < 256; b++) {
            if (!bytes.contains(b)) {
                symbols.add(256 + extra++);
            }
        }
        return symbols.stream().mapToInt(Integer::intValue).toArray();
    }

    public int endOfTextId() {
        return vocab.size();
    }

    public int imStartId() {
        return vocab.size() + 1;
    }

    public int imEndId() {
        return vocab.size() + 2;
    }

    /** Ids in use: byte symbols, merges and the three special tokens. */
    public int size() {
        return vocab.size() + 3;
    }

    /** Writes {@code tokenizer.json} and {@code tokenizer_config.json} into {@code folder}. */
    public void writeTo(Path folder, int modelMaxLength) throws IOException {
        Files.writeString(folder.resolve("tokenizer.json"), JSON.writerWithDefaultPrettyPrinter()
                .writeValueAsString(tokenizerJson()));
        Files.writeString(folder.resolve("tokenizer_config.json"), JSON.writerWithDefaultPrettyPrinter()
                .writeValueAsString(tokenizerConfigJson(modelMaxLength)));
    }

    private ObjectNode tokenizerJson() {
        ObjectNode root = JSON.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode added = root.putArray("added_tokens");
        specials().forEach((id, content) -> {
            ObjectNode token = added.addObject();
            token.put("id", id);
            token.put("content", content);
            token.put("single_word", false);
            token.put("lstrip", false);
            token.put("rstrip", false);
            token.put("normalized", false);
            token.put("special", true);
        });
        // No normalizer: text must come back byte for byte.
        root.putNull("normalizer");
        root.set("pre_tokenizer", byteLevel(false, true));
        root.set("post_processor", byteLevel(false, false));
        root.set("decoder", byteLevel(false, false));
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE");
        model.putNull("dropout");
        model.putNull("unk_token");
        model.put("continuing_subword_prefix", "");
        model.put("end_of_word_suffix", "");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        model.put("ignore_merges", false);
        ObjectNode vocabNode = model.putObject("vocab");
        vocab.forEach(vocabNode::put);
        ArrayNode mergesNode = model.putArray("merges");
        merges.forEach(mergesNode::add);
        return root;
    }

    private static ObjectNode byteLevel(boolean addPrefixSpace, boolean useRegex) {
        ObjectNode node = JSON.createObjectNode();
        node.put("type", "ByteLevel");
        node.put("add_prefix_space", addPrefixSpace);
        node.put("trim_offsets", false);
        node.put("use_regex", useRegex);
        return node;
    }

    private ObjectNode tokenizerConfigJson(int modelMaxLength) {
        ObjectNode root = JSON.createObjectNode();
        root.put("add_bos_token", false);
        root.put("add_prefix_space", false);
        ObjectNode decoder = root.putObject("added_tokens_decoder");
        specials().forEach((id, content) -> {
            ObjectNode token = decoder.putObject(Integer.toString(id));
            token.put("content", content);
            token.put("lstrip", false);
            token.put("normalized", false);
            token.put("rstrip", false);
            token.put("single_word", false);
            token.put("special", true);
        });
        root.putArray("additional_special_tokens").add(IM_START).add(IM_END);
        root.putNull("bos_token");
        root.put("chat_template", CHAT_TEMPLATE);
        root.put("clean_up_tokenization_spaces", false);
        root.put("eos_token", IM_END);
        root.put("errors", "replace");
        root.put("model_max_length", modelMaxLength);
        root.put("pad_token", END_OF_TEXT);
        root.put("split_special_tokens", false);
        root.put("tokenizer_class", "Qwen2Tokenizer");
        root.putNull("unk_token");
        return root;
    }

    private Map<Integer, String> specials() {
        Map<Integer, String> specials = new LinkedHashMap<>();
        specials.put(endOfTextId(), END_OF_TEXT);
        specials.put(imStartId(), IM_START);
        specials.put(imEndId(), IM_END);
        return specials;
    }
}
