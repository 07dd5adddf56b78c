package io.distserve.processors.routing;

import io.distserve.registry.NodeView;
import java.util.List;
import java.util.Optional;

/**
 * Picks the node a request goes to, among candidates the caller has already filtered (healthy, right role,
 * serving the model: {@code NodeRegistry.candidates}). Implementations are stateless apart from their source of
 * randomness and safe to call from many threads.
 */
public interface RoutingStrategy {

    /** The strategy's name as given to {@code --routing-strategy}. */
    String name();

    /** The chosen node; empty only when there are no candidates. */
    Optional<NodeView> select(List<NodeView> candidates);

    /**
     * The chosen node for a request whose prompt the strategy may weigh (prefix-cache overlap); strategies that do
     * not look at the prompt choose as {@link #select(List)} does, and never tokenize it.
     */
    default Optional<NodeView> select(List<NodeView> candidates, PromptPrefix prompt) {
        return select(candidates);
    }
}
