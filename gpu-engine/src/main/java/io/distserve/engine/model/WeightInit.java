package io.distserve.engine.model;

/**
 * The normal distribution a generated tensor is drawn from; see {@link CheckpointGenerator} for why these scales.
 *
 * @param mean added to every sample
 * @param std  standard deviation
 */
record WeightInit(double mean, double std) {

    /** Target standard deviation of the logits at any position. */
    static final double LOGIT_STD = 3.0;
    static final double NORM_WEIGHT_STD = 0.1;

    static WeightInit forTensor(ExpectedTensor tensor, ModelConfig config) {
        String name = tensor.name();
        long[] shape = tensor.shape();
        if (shape.length == 1) {
            // Every 1-D tensor of these models is an RMSNorm weight.
            return new WeightInit(1.0, NORM_WEIGHT_STD);
        }
        double logitScale = LOGIT_STD / Math.sqrt(config.hiddenSize());
        if (name.equals(ModelTensors.LM_HEAD)) {
            return new WeightInit(0.0, logitScale);
        }
        if (name.equals(ModelTensors.EMBED_TOKENS)) {
            return new WeightInit(0.0, config.tieWordEmbeddings() ? logitScale : 1.0);
        }
        return new WeightInit(0.0, 1.0 / Math.sqrt(shape[1]));
    }
}
