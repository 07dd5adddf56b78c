package io.distserve.engine.tokenizer;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Everything the engine needs to turn requests into token ids for one model folder: the tokenizer
 * (tokenizer.json), its configuration (tokenizer_config.json, optional) and chat template, and the ids that end
 * generation. Thread-safe; {@link #close()} frees the native tokenizer.
 */
public final class ModelTokenizer implements AutoCloseable {

    static final String CHAT_TEMPLATE_FILE = "chat_template.jinja";
    static final String GENERATION_CONFIG_FILE = "generation_config.json";

    private final HfTokenizer tokenizer;
    private final TokenizerConfig config;
    private final Optional<ChatTemplate> chatTemplate;
    private final Set<Integer> eosTokenIds;
    private final Path folder;

    /** The files {@link #load} reads (those present), in the order a copy should be written. */
    public static final List<String> FILES = List.of(HfTokenizer.FILE_NAME, TokenizerConfig.FILE_NAME,
            CHAT_TEMPLATE_FILE, GENERATION_CONFIG_FILE);

    private ModelTokenizer(HfTokenizer tokenizer, TokenizerConfig config, Optional<ChatTemplate> chatTemplate,
                           Set<Integer> eosTokenIds, Path folder) {
        this.folder = folder;
        this.tokenizer = tokenizer;
        this.config = config;
        this.chatTemplate = chatTemplate;
        this.eosTokenIds = eosTokenIds;
    }

    /**
     * Loads a Hugging Face model folder. The chat template comes from tokenizer_config.json, or else from
     * chat_template.jinja beside it (where newer transformers saves it).
     *
     * @throws InvalidTokenizerFileException naming the file and field of anything missing or malformed
     * @throws ChatTemplateException         when the chat template does not parse
     */
    public static ModelTokenizer load(Path modelDir) {
        Path configFile = modelDir.resolve(TokenizerConfig.FILE_NAME);
        TokenizerConfig config = Files.exists(configFile) ? TokenizerConfig.read(configFile) : TokenizerConfig.absent();
        Optional<String> templateSource = config.chatTemplate().or(() -> templateFile(modelDir));
        Optional<ChatTemplate> template = templateSource.map(
                source -> new ChatTemplate(source, config.specialTokenVariables()));
        HfTokenizer tokenizer = HfTokenizer.load(modelDir.resolve(HfTokenizer.FILE_NAME), config);
        try {
            return new ModelTokenizer(tokenizer, config, template, eosTokenIds(modelDir, config, tokenizer), modelDir);
        } catch (RuntimeException e) {
            tokenizer.close();
            throw e;
        }
    }

    /**
     * Renders the conversation with the chat template and encodes it.
     *
     * @param extraKwargs template variables such as {@code enable_thinking} (may be empty)
     * @throws ChatTemplateException when the model has no chat template or the template rejects the conversation
     */
    public int[] encodeChat(List<ChatMessage> messages, boolean addGenerationPrompt, Map<String, Object> extraKwargs) {
        return tokenizer.encode(renderChat(messages, addGenerationPrompt, extraKwargs));
    }

    /** The prompt text {@link #encodeChat} encodes. */
    public String renderChat(List<ChatMessage> messages, boolean addGenerationPrompt, Map<String, Object> extraKwargs) {
        ChatTemplate template = chatTemplate.orElseThrow(() -> new ChatTemplateException(
                "this model has no chat template; use /v1/completions"));
        return template.render(messages, addGenerationPrompt, extraKwargs);
    }

    /** The folder the tokenizer was loaded from (its {@link #FILES} are there). */
    public Path folder() {
        return folder;
    }

    /** Encodes a raw completion prompt as is (no special tokens added). */
    public int[] encodePrompt(String prompt) {
        return tokenizer.encode(prompt);
    }

    /** Ids that end generation: the tokenizer config's eos_token and generation_config.json's eos_token_id(s). */
    public Set<Integer> eosTokenIds() {
        return eosTokenIds;
    }

    public TextTokenizer tokenizer() {
        return tokenizer;
    }

    public TokenizerConfig config() {
        return config;
    }

    public boolean hasChatTemplate() {
        return chatTemplate.isPresent();
    }

    @Override
    public void close() {
        tokenizer.close();
    }

    private static Optional<String> templateFile(Path modelDir) {
        Path file = modelDir.resolve(CHAT_TEMPLATE_FILE);
        if (!Files.isRegularFile(file)) {
            return Optional.empty();
        }
        try {
            return Optional.of(Files.readString(file));
        } catch (IOException e) {
            throw new InvalidTokenizerFileException(file, "cannot read: " + e.getMessage(), e);
        }
    }

    private static Set<Integer> eosTokenIds(Path modelDir, TokenizerConfig config, HfTokenizer tokenizer) {
        Set<Integer> ids = new LinkedHashSet<>();
        if (config.eosToken() != null) {
            int id = tokenizer.tokenId(config.eosToken());
            if (id < 0) {
                throw new InvalidTokenizerFileException(modelDir.resolve(TokenizerConfig.FILE_NAME),
                        "field 'eos_token': " + config.eosToken() + " is not a token of " + tokenizer.file());
            }
            ids.add(id);
        }
        Path generationConfig = modelDir.resolve(GENERATION_CONFIG_FILE);
        if (Files.exists(generationConfig)) {
            ids.addAll(generationEosIds(generationConfig, tokenizer.vocabSize()));
        }
        return Set.copyOf(ids);
    }

    /** generation_config.json's eos_token_id: one id or a list of ids (Llama 3 lists several). */
    private static Set<Integer> generationEosIds(Path file, int vocabSize) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(Files.readString(file));
        } catch (JsonProcessingException e) {
            throw new InvalidTokenizerFileException(file, "not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new InvalidTokenizerFileException(file, "cannot read: " + e.getMessage(), e);
        }
        JsonNode eos = root == null ? null : root.get("eos_token_id");
        Set<Integer> ids = new LinkedHashSet<>();
        if (eos == null || eos.isNull()) {
            return ids;
        }
        for (JsonNode id : eos.isArray() ? eos : List.of(eos)) {
            if (!id.isInt() || id.asInt() < 0 || id.asInt() >= vocabSize) {
                throw new InvalidTokenizerFileException(file,
                        "field 'eos_token_id' must be a token id or a list of token ids below " + vocabSize);
            }
            ids.add(id.asInt());
        }
        return ids;
    }
}
