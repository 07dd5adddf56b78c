package io.distserve.engine.sched;

/** Why a sequence ended, with the name the OpenAI API uses for it. */
public enum FinishReason {
    /** EOS, a stop token id or a stop string. */
    STOP("stop"),
    /** max_tokens reached. */
    LENGTH("length"),
    /** Aborted by the client or by engine shutdown. */
    ABORT("abort"),
    /** Failed (backend or sampling error); reported through the listener's onError. */
    ERROR("error");

    private final String openAiName;

    FinishReason(String openAiName) {
        this.openAiName = openAiName;
    }

    public String openAiName() {
        return openAiName;
    }

    /** True for the reasons that end a sequence normally (its output is complete). */
    public boolean isNormal() {
        return this == STOP || this == LENGTH;
    }
}
