package io.distserve.processors.routing;

import java.util.List;
import java.util.Random;

/** Picks uniformly among tied candidates, so equal nodes share the load instead of the first one taking it all. */
public final class RandomChoice {

    private RandomChoice() {
    }

    public static <T> T among(List<T> tied, Random random) {
        return tied.size() == 1 ? tied.get(0) : tied.get(random.nextInt(tied.size()));
    }
}
