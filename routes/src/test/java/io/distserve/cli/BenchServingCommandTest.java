package io.distserve.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.distserve.engine.model.CheckpointGenerator;
import io.distserve.engine.model.ModelShape;
import java.io.ByteArrayOutputStream;
import java.io.PrintWriter;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import picocli.CommandLine;

/** Bad flags of bench serving: one line, exit code 2, before anything is sent. */
class BenchServingCommandTest {

    @TempDir
    static Path dir;

    static Path tokenizer;

    @BeforeAll
    static void model() throws Exception {
        tokenizer = dir.resolve("tiny");
        new CheckpointGenerator(ModelShape.TINY, 1, null).withThreads(1).writeTo(tokenizer);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "--request-rate -3 | --request-rate: '-3' is not a positive number or inf",
            "--sweep-rates 1,x,inf | --sweep-rates: 'x'",
            "--dataset foo | --dataset must be random, sharegpt FILE or prefix-repeat",
            "--dataset sharegpt | needs the ShareGPT JSON file",
            "--dataset sharegpt /nope.json | is not a file",
            "--goodput itl:5 | --goodput knows ttft, tpot and e2el",
            "--endpoint /v1/embeddings | --endpoint must be",
            "--range-ratio 1.5 | --range-ratio must be in [0, 1)",
            "--max-concurrency 0 | --max-concurrency must be >= 1",
            "--num-prompts 0 | --num-prompts must be >= 1",
            "--burstiness 0 | --burstiness must be a positive number"})
    void badFlagsAreOneLineAndExitCode2(String flags, String message) {
        String[] extra = flags.trim().split(" ");
        String[] args = new String[extra.length + 6];
        args[0] = "bench";
        args[1] = "serving";
        args[2] = "--base-url";
        args[3] = "http://127.0.0.1:1";
        args[4] = "--tokenizer";
        args[5] = tokenizer.toString();
        System.arraycopy(extra, 0, args, 6, extra.length);
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        CommandLine cl = DistServeCli.newCommandLine();
        cl.setErr(new PrintWriter(err, true));
        assertThat(cl.execute(args)).isEqualTo(2);
        assertThat(err.toString().strip()).contains(message.trim()).doesNotContain("\n").doesNotContain("Exception");
    }

    @Test
    void withoutBaseUrlOrTokenizerItSaysWhich() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        CommandLine cl = DistServeCli.newCommandLine();
        cl.setErr(new PrintWriter(err, true));
        assertThat(cl.execute("bench", "serving", "--tokenizer", tokenizer.toString())).isEqualTo(2);
        assertThat(err.toString()).contains("--base-url");
        err.reset();
        assertThat(cl.execute("bench", "serving", "--base-url", "http://h:1", "--tokenizer", "/nowhere"))
                .isEqualTo(2);
        assertThat(err.toString()).contains("has no tokenizer.json");
    }
}
