package io.distserve.engine.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.engine.safetensors.DType;
import io.distserve.engine.safetensors.FloatCodec;
import io.distserve.engine.safetensors.SafetensorsFile;
import io.distserve.engine.safetensors.TensorEntry;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * The tensors of a Hugging Face model folder: {@code model.safetensors}, or the shards named by
 * {@code model.safetensors.index.json}'s {@code weight_map}, or else every {@code *.safetensors} file in the folder.
 * Files are memory-mapped at open; a tensor is decoded only when read.
 */
public final class FolderTensorStore implements TensorStore {

    public static final String SINGLE_FILE = "model.safetensors";
    public static final String INDEX_FILE = "model.safetensors.index.json";

    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path folder;
    private final List<SafetensorsFile> files;
    private final Map<String, SafetensorsFile> fileByTensor;
    private boolean closed;

    private FolderTensorStore(Path folder, List<SafetensorsFile> files, Map<String, SafetensorsFile> fileByTensor) {
        this.folder = folder;
        this.files = files;
        this.fileByTensor = fileByTensor;
    }

    public static FolderTensorStore open(Path folder) {
        List<SafetensorsFile> opened = new ArrayList<>();
        try {
            Path index = folder.resolve(INDEX_FILE);
            Map<String, SafetensorsFile> byTensor;
            if (Files.exists(index)) {
                byTensor = openIndexed(folder, index, opened);
            } else if (Files.exists(folder.resolve(SINGLE_FILE))) {
                byTensor = openAll(List.of(folder.resolve(SINGLE_FILE)), opened);
            } else {
                byTensor = openAll(listSafetensors(folder), opened);
            }
            return new FolderTensorStore(folder, List.copyOf(opened), Collections.unmodifiableMap(byTensor));
        } catch (RuntimeException e) {
            opened.forEach(SafetensorsFile::close);
            throw e;
        }
    }

    private static Map<String, SafetensorsFile> openIndexed(Path folder, Path index, List<SafetensorsFile> opened) {
        JsonNode weightMap;
        try {
            weightMap = JSON.readTree(Files.readString(index)).get("weight_map");
        } catch (IOException e) {
            throw new CheckpointException(index + ": cannot read: " + e.getMessage(), e);
        }
        if (weightMap == null || !weightMap.isObject() || weightMap.isEmpty()) {
            throw new CheckpointException(index + ": 'weight_map' is missing or empty");
        }
        Path base = folder.toAbsolutePath().normalize();
        Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
        Map<String, SafetensorsFile> byTensor = new TreeMap<>();
        for (Map.Entry<String, JsonNode> e : weightMap.properties()) {
            String tensor = e.getKey();
            String fileName = e.getValue().asText("");
            Path shard = base.resolve(fileName).normalize();
            // Shards must sit in the folder itself: an index must not reach elsewhere on the disk.
            if (!e.getValue().isTextual() || !base.equals(shard.getParent())) {
                throw new CheckpointException(index + ": tensor " + tensor + " maps to '" + e.getValue()
                        + "', not a file name in " + folder);
            }
            if (!Files.exists(shard)) {
                throw new CheckpointException(index + ": tensor " + tensor + " maps to " + fileName
                        + ", which does not exist in " + folder);
            }
            SafetensorsFile file = shards.computeIfAbsent(fileName, name -> {
                SafetensorsFile f = SafetensorsFile.open(shard);
                opened.add(f);
                return f;
            });
            if (!file.tensors().containsKey(tensor)) {
                throw new CheckpointException(shard + ": tensor " + tensor + " is listed for this file in "
                        + INDEX_FILE + " but is not in it");
            }
            byTensor.put(tensor, file);
        }
        return byTensor;
    }

    private static Map<String, SafetensorsFile> openAll(List<Path> paths, List<SafetensorsFile> opened) {
        Map<String, SafetensorsFile> byTensor = new TreeMap<>();
        for (Path path : paths) {
            SafetensorsFile file = SafetensorsFile.open(path);
            opened.add(file);
            for (String tensor : file.tensors().keySet()) {
                SafetensorsFile previous = byTensor.putIfAbsent(tensor, file);
                if (previous != null) {
                    throw new CheckpointException(path + ": tensor " + tensor + " is also in "
                            + previous.path().getFileName() + "; which one to use is ambiguous");
                }
            }
        }
        return byTensor;
    }

    private static List<Path> listSafetensors(Path folder) {
        try (Stream<Path> entries = Files.list(folder)) {
            List<Path> paths = entries
                    .filter(p -> p.getFileName().toString().endsWith(".safetensors") && Files.isRegularFile(p))
                    .sorted()
                    .toList();
            if (paths.isEmpty()) {
                throw new CheckpointException(folder + ": no " + SINGLE_FILE + ", " + INDEX_FILE
                        + " or other *.safetensors file");
            }
            return paths;
        } catch (NoSuchFileException e) {
            throw new CheckpointException(folder + ": no such folder", e);
        } catch (IOException e) {
            throw new CheckpointException(folder + ": cannot list: " + e.getMessage(), e);
        }
    }

    public Path folder() {
        return folder;
    }

    /** The file that holds {@code name}. */
    public Path fileOf(String name) {
        return file(name).path();
    }

    @Override
    public Set<String> names() {
        checkOpen();
        return fileByTensor.keySet();
    }

    @Override
    public boolean contains(String name) {
        checkOpen();
        return fileByTensor.containsKey(name);
    }

    @Override
    public long[] shape(String name) {
        return entry(name).spec().shape();
    }

    @Override
    public DType dtype(String name) {
        return entry(name).spec().dtype();
    }

    @Override
    public float[] readFloats(String name, long... expectedShape) {
        TensorEntry entry = checkedEntry(name, expectedShape);
        long count = entry.spec().elementCount();
        if (count > Integer.MAX_VALUE - 8) {
            throw new CheckpointException(fileOf(name) + ": tensor " + name + " has " + count
                    + " elements, too many for one float array");
        }
        float[] values = new float[(int) count];
        FloatCodec.decode(file(name).bytes(name), entry.spec().dtype(), values);
        return values;
    }

    @Override
    public ByteBuffer rawBytes(String name, long... expectedShape) {
        checkedEntry(name, expectedShape);
        return file(name).bytes(name);
    }

    private TensorEntry checkedEntry(String name, long[] expectedShape) {
        TensorEntry entry = entry(name);
        long[] shape = entry.spec().shape();
        if (!Arrays.equals(shape, expectedShape)) {
            throw new CheckpointException(fileOf(name).getFileName() + ": tensor " + name + " has shape "
                    + Arrays.toString(shape) + ", expected " + Arrays.toString(expectedShape) + " (in " + folder + ")");
        }
        return entry;
    }

    private TensorEntry entry(String name) {
        return file(name).tensors().get(name);
    }

    private SafetensorsFile file(String name) {
        checkOpen();
        SafetensorsFile file = fileByTensor.get(name);
        if (file == null) {
            throw new CheckpointException(folder + ": tensor " + name + " is missing (the folder's "
                    + files.size() + " safetensors file(s) hold " + fileByTensor.size() + " tensors)");
        }
        return file;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("tensor store of " + folder + " is closed");
        }
    }

    /** Drops every mapping; reading afterwards is an {@link IllegalStateException}. */
    @Override
    public void close() {
        closed = true;
        files.forEach(SafetensorsFile::close);
    }
}
