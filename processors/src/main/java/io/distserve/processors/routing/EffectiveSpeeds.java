package io.distserve.processors.routing;

import io.distserve.registry.NodeView;
import java.util.List;

/**
 * The speed each candidate is routed by. Declared speeds are relative numbers with no fixed unit, so a node that
 * declared none gets the mean of the declared ones (as LMDeploy does), not an arbitrary constant that would be
 * huge or tiny next to them; when no node declared a speed, all count as 1.
 */
public final class EffectiveSpeeds {

    private EffectiveSpeeds() {
    }

    public static double[] of(List<NodeView> candidates) {
        double sum = 0;
        int declared = 0;
        for (NodeView node : candidates) {
            if (node.speed() != null) {
                sum += node.speed();
                declared++;
            }
        }
        double fallback = declared == 0 ? 1.0 : sum / declared;
        double[] speeds = new double[candidates.size()];
        for (int i = 0; i < speeds.length; i++) {
            Double speed = candidates.get(i).speed();
            speeds[i] = speed != null ? speed : fallback;
        }
        return speeds;
    }
}
