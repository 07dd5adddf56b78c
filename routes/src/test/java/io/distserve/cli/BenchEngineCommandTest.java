package io.distserve.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code bench engine} on the generated tiny shape (CPU): the table, the one-prompt prefill line and the JSON. */
class BenchEngineCommandTest {

    @TempDir
    Path dir;

    @Test
    void tableOnePromptPrefillAndJson() throws Exception {
        Path json = dir.resolve("bench.json");
        StringWriter out = new StringWriter();
        CommandLine cl = DistServeCli.newCommandLine();
        cl.setOut(new PrintWriter(out));
        int rc = cl.execute("bench", "engine", "--shape", "tiny", "--batch", "1,2", "--prompt-tokens", "8",
                "--new-tokens", "3", "--prefill", "100", "--threads", "1", "--json", json.toString(),
                "--log-level", "WARNING");
        assertThat(rc).isZero();
        assertThat(out.toString()).contains("| tiny | 2 | 8 | 3 |").containsPattern("prefill tiny 100 tokens \\(one prompt\\): [0-9.]+ ms");
        JsonNode root = new ObjectMapper().readTree(json.toFile());
        assertThat(root.path("decode")).hasSize(2);
        assertThat(root.path("decode").get(1).path("batch").asInt()).isEqualTo(2);
        assertThat(root.path("decode").get(1).path("tok_s").asDouble()).isPositive();
        assertThat(root.path("prefill").get(0).path("tokens").asInt()).isEqualTo(100);
        assertThat(root.path("prefill").get(0).path("seconds").asDouble()).isPositive();
    }

    @Test
    void badPrefillIsAUsageError() {
        StringWriter err = new StringWriter();
        CommandLine cl = DistServeCli.newCommandLine();
        cl.setErr(new PrintWriter(err));
        assertThat(cl.execute("bench", "engine", "--shape", "tiny", "--prefill", "0")).isEqualTo(2);
        assertThat(err.toString()).contains("--prefill must be >= 1");
    }
}
