package io.distserve.registry;

/**
 * The outcome of one health probe.
 *
 * @param healthy whether the node answered as healthy
 * @param error   why not, when not healthy (null otherwise)
 */
public record ProbeResult(boolean healthy, String error) {

    private static final ProbeResult OK = new ProbeResult(true, null);

    public ProbeResult {
        if (!healthy && (error == null || error.isBlank())) {
            throw new IllegalArgumentException("a failed probe needs an error message");
        }
        if (healthy && error != null) {
            throw new IllegalArgumentException("a healthy probe has no error");
        }
    }

    public static ProbeResult ok() {
        return OK;
    }

    public static ProbeResult failed(String error) {
        return new ProbeResult(false, error);
    }
}
