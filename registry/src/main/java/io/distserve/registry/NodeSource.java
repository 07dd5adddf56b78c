package io.distserve.registry;

import com.fasterxml.jackson.annotation.JsonValue;
import java.util.Locale;

/**
 * How a node came into the table. Only {@link #API} nodes are saved to the node-table file: a {@link #CONSUL} node's
 * source of truth is Consul, which the proxy asks again when it starts.
 */
public enum NodeSource {
    /** Added through {@code POST /nodes/add} (an engine's {@code --proxy-url}, an operator) or loaded from the file. */
    API,
    /** A passing instance of the proxy's Consul service ({@code --consul-url}); removed when it stops passing. */
    CONSUL;

    /** The JSON form: "api", "consul". */
    @JsonValue
    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }
}
