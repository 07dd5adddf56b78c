package io.distserve.cli;

import io.distserve.engine.ComputeBackend;
import io.distserve.engine.SequenceSlice;
import io.distserve.engine.cuda.CudaBackend;
import io.distserve.engine.cuda.CudaDevice;
import io.distserve.engine.cpu.CpuBackend;
import io.distserve.engine.model.Checkpoint;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * {@code distserve model logits}: the logits at every position of a token sequence, as little-endian float32 rows,
 * for parity checks against other implementations (gpu-engine/scripts/hf_parity.py).
 */
@Command(name = "logits", mixinStandardHelpOptions = true,
        description = "Write the logits at every position of a token-id sequence as little-endian float32 rows "
                + "[tokens x vocab].")
final class ModelLogitsCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Mixin
    LoggingOptions logging;

    @Parameters(index = "0", paramLabel = "MODEL_DIR", description = "Hugging Face model folder.")
    Path modelDir;

    @Option(names = "--token-ids", required = true, split = ",", paramLabel = "ID",
            description = "Comma-separated token ids.")
    int[] tokenIds;

    @Option(names = "--out", required = true, paramLabel = "FILE", description = "Output file.")
    Path out;

    @Option(names = "--threads", description = "Compute threads of the CPU backend (default: all cores).")
    Integer threads;

    @Option(names = "--backend", defaultValue = "cpu",
            description = "cpu (float32) or cuda (bf16 activations and KV cache) (default: ${DEFAULT-VALUE}).")
    String backend;

    @Override
    public Integer call() throws IOException {
        logging.apply();
        if (tokenIds.length == 0) {
            throw new ParameterException(spec.commandLine(), "--token-ids is empty");
        }
        int n = threads != null ? threads : Runtime.getRuntime().availableProcessors();
        try (Checkpoint checkpoint = Checkpoint.open(modelDir)) {
            int blockSize = 64;
            int blocks = (tokenIds.length + blockSize - 1) / blockSize;
            try (ComputeBackend backend = backend(checkpoint, blockSize, blocks, n)) {
                int[] table = new int[blocks];
                Arrays.setAll(table, i -> i);
                List<float[]> rows = backend.forward(List.of(
                        new SequenceSlice(0, tokenIds, 0, table, SequenceSlice.LogitsMode.ALL)));
                write(rows);
                spec.commandLine().getOut().printf("wrote %d x %d logits to %s%n", rows.size(), rows.get(0).length, out);
            }
        }
        return 0;
    }

    private ComputeBackend backend(Checkpoint checkpoint, int blockSize, int blocks, int threadCount) {
        return switch (backend) {
            case "cpu" -> CpuBackend.create(checkpoint.config(), checkpoint.tensors(), blockSize, blocks, threadCount);
            case "cuda" -> {
                if (!CudaDevice.isAvailable()) {
                    throw new IllegalStateException("--backend cuda: " + CudaDevice.unavailableReason());
                }
                yield CudaBackend.create(checkpoint.config(), checkpoint.tensors(), blockSize, blocks);
            }
            default -> throw new ParameterException(spec.commandLine(), "--backend must be cpu or cuda, got '"
                    + backend + "'");
        };
    }

    private void write(List<float[]> rows) throws IOException {
        try (FileChannel ch = FileChannel.open(out, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            for (float[] row : rows) {
                ByteBuffer buf = ByteBuffer.allocate(row.length * 4).order(ByteOrder.LITTLE_ENDIAN);
                buf.asFloatBuffer().put(row);
                while (buf.hasRemaining()) {
                    ch.write(buf);
                }
            }
        }
    }
}
