package io.distserve.engine.model;

import java.nio.file.Path;

/**
 * An opened Hugging Face model folder: its configuration and its tensors. {@link #open} validates, so a broken
 * checkpoint fails at load with a message naming the file and the tensor, not mid-inference.
 *
 * @param folder  the model folder
 * @param config  from {@code config.json}
 * @param tensors the folder's safetensors files
 */
public record Checkpoint(Path folder, ModelConfig config, TensorStore tensors) implements AutoCloseable {

    /** Loads and {@linkplain #validate() validates}; nothing stays open when it throws. */
    public static Checkpoint open(Path folder) {
        ModelConfig config = ModelConfigLoader.load(folder);
        FolderTensorStore tensors = FolderTensorStore.open(folder);
        Checkpoint checkpoint = new Checkpoint(folder, config, tensors);
        try {
            checkpoint.validate();
            return checkpoint;
        } catch (RuntimeException e) {
            tensors.close();
            throw e;
        }
    }

    /**
     * Checks that every tensor of {@link ModelTensors#expected} is present with its expected shape. Extra tensors
     * (a tied checkpoint's {@code lm_head.weight}, rotary caches) are ignored.
     *
     * @throws CheckpointException naming the file (or folder, for a missing tensor) and the tensor
     */
    public void validate() {
        for (ExpectedTensor expected : ModelTensors.expected(config)) {
            // rawBytes checks presence and shape without decoding anything.
            tensors.rawBytes(expected.name(), expected.shape());
        }
    }

    /** The tensor that projects hidden states to logits (see {@link ModelTensors#logitsWeight}). */
    public String logitsWeight() {
        return ModelTensors.logitsWeight(config);
    }

    @Override
    public void close() {
        tensors.close();
    }
}
