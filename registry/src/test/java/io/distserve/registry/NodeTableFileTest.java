package io.distserve.registry;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NodeTableFileTest {

    private static final String P1 = "http://10.0.0.1:23333";
    private static final String D1 = "http://10.0.0.3:23334";

    @TempDir
    Path dir;

    private final ManualTime time = new ManualTime();

    private Path tableFile() {
        return dir.resolve("state").resolve("nodes.json");
    }

    private NodeRegistry open() {
        return new NodeRegistry(new NodeTableFile(tableFile(), time), time);
    }

    private List<String> filesInStateDir() throws IOException {
        try (Stream<Path> files = Files.list(tableFile().getParent())) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void aRestartedRegistryKeepsItsNodesButNotTheirCounters() throws IOException {
        NodeRegistry first = open();
        first.register(P1, new NodeStatus(NodeRole.Prefill, List.of("qwen"), 2.0));
        first.register(D1, new NodeStatus(NodeRole.Decode, List.of("qwen", "llama"), null));
        first.register("http://10.0.0.9:1", new NodeStatus(NodeRole.Hybrid, List.of(), null));
        first.remove("http://10.0.0.9:1");
        try (NodeLease lease = first.acquire(P1).orElseThrow()) {
            time.advance(Duration.ofMillis(50));
            lease.complete();
        }
        first.updateHealth(D1, h -> h.afterFailure("down", time.now(), 1));

        NodeRegistry second = open();
        assertThat(second.nodes()).extracting(NodeView::url).containsExactly(P1, D1);
        NodeView p1 = second.node(P1).orElseThrow();
        assertThat(p1.role()).isEqualTo(NodeRole.Prefill);
        assertThat(p1.models()).containsExactly("qwen");
        assertThat(p1.speed()).isEqualTo(2.0);
        assertThat(p1.completed()).isZero();
        assertThat(p1.meanLatencyMs()).isNull();
        NodeView d1 = second.node(D1).orElseThrow();
        assertThat(d1.models()).containsExactly("qwen", "llama");
        assertThat(d1.speed()).isNull();
        assertThat(d1.isHealthy()).isTrue();
        assertThat(filesInStateDir()).containsExactly("nodes.json");
        assertThat(Files.readString(tableFile())).contains("\"version\" : 1").doesNotContain("in_flight");
    }

    @Test
    void aCorruptFileIsMovedAsideAndTheRegistryStartsEmpty() throws IOException {
        Files.createDirectories(tableFile().getParent());
        Files.writeString(tableFile(), "{\"version\":1,\"nodes\":[{\"url\":", StandardCharsets.UTF_8);

        NodeRegistry registry = open();
        assertThat(registry.size()).isZero();
        assertThat(filesInStateDir()).containsExactly("nodes.json.corrupt-2025-01-01T00-00-00Z");

        registry.register(P1, new NodeStatus(NodeRole.Prefill, List.of("m"), null));
        assertThat(open().nodes()).extracting(NodeView::url).containsExactly(P1);
        assertThat(Files.readString(tableFile().resolveSibling("nodes.json.corrupt-2025-01-01T00-00-00Z")))
                .startsWith("{\"version\":1");
    }

    @Test
    void aFileWithAnInvalidEntryOrAnUnknownVersionIsMovedAsideToo() throws IOException {
        Files.createDirectories(tableFile().getParent());
        Files.writeString(tableFile(), "{\"version\":1,\"nodes\":[{\"url\":\"ftp://x:1\",\"role\":\"Prefill\"}]}");
        assertThat(open().size()).isZero();
        Files.writeString(tableFile(), "{\"version\":7,\"nodes\":[]}");
        assertThat(open().size()).isZero();
        Files.writeString(tableFile(), "{\"version\":1,\"nodes\":[{\"url\":\"http://x:1\",\"role\":\"Decode\","
                + "\"speed\":-1}]}");
        assertThat(open().size()).isZero();
        assertThat(filesInStateDir()).hasSize(3).allMatch(name -> name.startsWith("nodes.json.corrupt-"));
    }

    @Test
    void aMissingFileIsAnEmptyTable() {
        assertThat(open().size()).isZero();
        assertThat(Files.exists(tableFile())).isFalse();
    }

    @Test
    void onlyChangesOfIdentityOrDeclarationAreSaved() {
        List<List<PersistedNode>> saves = new ArrayList<>();
        NodeTableStore recording = new NodeTableStore() {
            @Override
            public List<PersistedNode> load() {
                return List.of();
            }

            @Override
            public void save(List<PersistedNode> nodes) {
                saves.add(nodes);
            }
        };
        NodeRegistry registry = new NodeRegistry(recording, time);
        registry.register(P1, new NodeStatus(NodeRole.Prefill, List.of("m"), null));
        registry.register(P1, new NodeStatus(NodeRole.Prefill, List.of("m"), null));
        registry.acquire(P1).orElseThrow().complete();
        registry.updateHealth(P1, h -> h.afterFailure("x", time.now(), 1));
        assertThat(saves).hasSize(1);
        registry.register(P1, new NodeStatus(NodeRole.Prefill, List.of("m"), 4.0));
        registry.remove(P1);
        assertThat(saves).hasSize(3);
        assertThat(saves.get(1)).containsExactly(new PersistedNode(P1, NodeRole.Prefill, List.of("m"), 4.0));
        assertThat(saves.get(2)).isEmpty();
    }

    @Test
    void aFailingSaveKeepsTheChangeInMemory() {
        NodeTableStore broken = new NodeTableStore() {
            @Override
            public List<PersistedNode> load() {
                return List.of();
            }

            @Override
            public void save(List<PersistedNode> nodes) throws IOException {
                throw new IOException("disk full");
            }
        };
        NodeRegistry registry = new NodeRegistry(broken, time);
        registry.register(P1, new NodeStatus(NodeRole.Prefill, List.of("m"), null));
        assertThat(registry.size()).isEqualTo(1);
    }
}
