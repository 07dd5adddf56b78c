package io.distserve.registry;

import java.io.IOException;
import java.util.List;

/** Where the node table is kept between proxy runs. */
public interface NodeTableStore {

    /** The saved nodes, in table order; empty when nothing was saved or the saved table was unusable. */
    List<PersistedNode> load();

    /** Replaces the saved table with {@code nodes}. */
    void save(List<PersistedNode> nodes) throws IOException;

    /** No persistence: every start begins with an empty table. */
    static NodeTableStore none() {
        return NoStore.INSTANCE;
    }

    /** The store that keeps nothing. */
    enum NoStore implements NodeTableStore {
        INSTANCE;

        @Override
        public List<PersistedNode> load() {
            return List.of();
        }

        @Override
        public void save(List<PersistedNode> nodes) {
            // Nothing to keep by definition.
        }
    }
}
