package io.distserve.registry;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node table as a JSON file: {@code {"version":1,"nodes":[{"url":..,"role":..,"models":[..],"speed":..}]}}.
 *
 * <p>Writes go to a temporary file in the same folder, are forced to disk, then moved over the old file, so a
 * crash mid-write leaves the previous table, never half of one. A file that cannot be read as a table (bad JSON,
 * an invalid entry, an unknown version) is logged and renamed to {@code <name>.corrupt-<time>} so the proxy starts
 * with an empty table and the operator still has the data.
 */
public final class NodeTableFile implements NodeTableStore {

    static final int VERSION = 1;

    private static final Logger LOG = LoggerFactory.getLogger(NodeTableFile.class);

    private final Path file;
    private final TimeSource time;
    private final ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    public NodeTableFile(Path file) {
        this(file, TimeSource.system());
    }

    public NodeTableFile(Path file, TimeSource time) {
        this.file = Objects.requireNonNull(file, "file").toAbsolutePath();
        this.time = Objects.requireNonNull(time, "time");
    }

    public Path path() {
        return file;
    }

    /** The file's shape; a record so Jackson reads and writes it without hand-written code. */
    record Table(@JsonProperty("version") int version, @JsonProperty("nodes") List<PersistedNode> nodes) {
    }

    @Override
    public List<PersistedNode> load() {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            LOG.info("No node table at {}; starting with an empty table", file);
            return List.of();
        } catch (IOException e) {
            // Unreadable (permissions, a folder in its place): keep it out of the next save's way if we can.
            moveAside("cannot read it: " + e);
            return List.of();
        }
        try {
            Table table = json.readValue(bytes, Table.class);
            if (table == null || table.version() != VERSION || table.nodes() == null) {
                throw new IOException("expected {\"version\":" + VERSION + ",\"nodes\":[...]}");
            }
            LOG.info("Loaded {} node(s) from {}", table.nodes().size(), file);
            return List.copyOf(table.nodes());
        } catch (IOException | RuntimeException e) {
            moveAside(e instanceof JsonProcessingException j ? j.getOriginalMessage() : e.getMessage());
            return List.of();
        }
    }

    private void moveAside(String reason) {
        String stamp = time.now().toString().replace(':', '-');
        Path aside = file.resolveSibling(file.getFileName() + ".corrupt-" + stamp);
        for (int i = 1; Files.exists(aside); i++) {
            aside = file.resolveSibling(file.getFileName() + ".corrupt-" + stamp + "-" + i);
        }
        try {
            Files.move(file, aside);
            LOG.error("The node table {} is unusable ({}); moved it to {} and starting with an empty table",
                    file, reason, aside);
        } catch (IOException e) {
            LOG.error("The node table {} is unusable ({}) and could not be moved aside ({}); starting with an"
                    + " empty table, the next change will overwrite it", file, reason, e.toString());
        }
    }

    @Override
    public void save(List<PersistedNode> nodes) throws IOException {
        byte[] bytes = json.writeValueAsBytes(new Table(VERSION, List.copyOf(nodes)));
        Path dir = file.getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, file.getFileName() + ".", ".tmp");
        try {
            try (FileChannel channel = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                ByteBuffer buffer = ByteBuffer.wrap(bytes);
                while (buffer.hasRemaining()) {
                    channel.write(buffer);
                }
                // On disk before the rename, or a crash could leave the new name pointing at an empty file.
                channel.force(true);
            }
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }
}
