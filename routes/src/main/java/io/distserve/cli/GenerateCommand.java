package io.distserve.cli;

import io.distserve.engine.EngineOptions;
import io.distserve.engine.FinishEvent;
import io.distserve.engine.GenerationListener;
import io.distserve.engine.GenerationRequest;
import io.distserve.engine.LoadedModel;
import io.distserve.engine.TokenEvent;
import io.distserve.engine.sampling.SamplingParams;
import io.distserve.engine.tokenizer.ChatMessage;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** {@code distserve generate}: one prompt through the engine, streamed to stdout, with a speed line at the end. */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Run one prompt on the CPU backend; print the completion as it is generated, then prompt and "
                + "decode tokens per second.")
final class GenerateCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Mixin
    LoggingOptions logging;

    @Mixin
    SamplingOptions sampling;

    @Parameters(index = "0", paramLabel = "MODEL_DIR", description = "Hugging Face model folder.")
    Path modelDir;

    @Option(names = "--prompt", required = true, description = "The prompt text.")
    String prompt;

    @Option(names = "--chat", description = "Wrap the prompt as one user message through the model's chat template.")
    boolean chat;

    @Option(names = "--no-thinking", description = "With --chat: enable_thinking=false for templates that know it (Qwen3).")
    boolean noThinking;

    @Option(names = "--threads", description = "Compute threads (default: all cores).")
    Integer threads;

    @Override
    public Integer call() throws Exception {
        logging.apply();
        SamplingParams params;
        try {
            params = sampling.toParams();
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), e.getMessage());
        }
        EngineOptions options = EngineOptions.cpuDefaults();
        if (threads != null) {
            options = new EngineOptions("cpu", options.blockSize(), options.cacheFraction(), options.maxBlocks(),
                    threads, options.engine());
        }
        // One sequence: enough blocks for the prompt and the answer, not a cache sized for a server.
        try (LoadedModel model = LoadedModel.load(modelDir, options.withMaxBlocks(4096))) {
            int[] ids = chat
                    ? model.tokenizer().encodeChat(List.of(new ChatMessage("user", prompt)), true,
                            noThinking ? Map.of("enable_thinking", false) : Map.of())
                    : model.tokenizer().encodePrompt(prompt);
            PrintWriter out = spec.commandLine().getOut();
            GenerationListener printer = new GenerationListener() {
                @Override
                public void onToken(TokenEvent event) {
                    out.print(event.textDelta());
                    out.flush();
                }

                @Override
                public void onFinish(FinishEvent event) {
                }

                @Override
                public void onError(Throwable error) {
                }
            };
            FinishEvent f = model.engine().submit(new GenerationRequest("cli-1", ids, params), printer)
                    .completion().get();
            out.println();
            double ttft = f.timing().timeToFirstTokenNanos() / 1e9;
            double decodeSeconds = (f.timing().totalNanos() - f.timing().timeToFirstTokenNanos()) / 1e9;
            int decoded = Math.max(0, f.completionTokens() - 1);
            out.printf("[prompt %d tokens, %.1f tok/s | decode %d tokens, %.1f tok/s | finish %s]%n",
                    f.promptTokens(), f.promptTokens() / Math.max(ttft, 1e-9), decoded,
                    decoded == 0 ? 0.0 : decoded / Math.max(decodeSeconds, 1e-9), f.reason().openAiName());
            out.flush();
        }
        return 0;
    }
}
