package io.distserve.processors.proxy;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.core.JsonFactory;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class NodeUsageTest {

    private static final JsonFactory JSON = new JsonFactory();

    static NodeUsage.Counts read(String body) {
        return NodeUsage.read(JSON, body.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void readsTheCountsOfAWholeAnswerAndOfAStreamsUsageChunk() {
        assertThat(read("{\"id\":\"cmpl-1\",\"choices\":[{\"index\":0,\"text\":\" hi\",\"finish_reason\":\"length\"}],"
                + "\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1,\"total_tokens\":5}}"))
                .isEqualTo(new NodeUsage.Counts(4, 1));
        assertThat(read("{\"choices\":[], \"usage\" :\n {\"total_tokens\":9, \"completion_tokens\":2,"
                + " \"prompt_tokens_details\":{\"cached_tokens\":0}, \"prompt_tokens\":7}}"))
                .isEqualTo(new NodeUsage.Counts(7, 2));
    }

    @Test
    void noUsageObjectIsNoCounts() {
        assertThat(read("{\"choices\":[{\"index\":0,\"text\":\"a\"}],\"usage\":null}")).isNull();
        assertThat(read("{\"choices\":[{\"index\":0,\"text\":\"a\"}]}")).isNull();
        assertThat(read("{\"usage\":")).isNull();
        assertThat(read("[DONE]")).isNull();
        assertThat(read("")).isNull();
    }

    @Test
    void theWordUsageInsideTheTextIsNotTheKey() {
        // a completion whose text is "usage", or quotes it: inside a string every quote is escaped
        assertThat(read("{\"choices\":[{\"text\":\"usage\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}"))
                .isEqualTo(new NodeUsage.Counts(3, 1));
        assertThat(read("{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":8},\"choices\":[{\"text\":\"usage\"}]}"))
                .isEqualTo(new NodeUsage.Counts(3, 8));
        assertThat(read("{\"choices\":[{\"text\":\"say \\\"usage\\\": {\"}],\"usage\":null}")).isNull();
    }

    @Test
    void aBrokenUsageObjectGivesWhatItHadBeforeTheBreak() {
        assertThat(read("{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":")).isEqualTo(new NodeUsage.Counts(3, -1));
        assertThat(read("{\"usage\":{\"prompt_tokens\":\"three\"}}")).isEqualTo(new NodeUsage.Counts(-1, -1));
    }
}
