package io.distserve.registry;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * What a node does in the pipeline. The constant names are the JSON names LMDeploy uses ("Hybrid", "Prefill",
 * "Decode"), so Jackson writes them as they are and an LMDeploy engine's registration reads unchanged.
 */
public enum NodeRole {
    /** Prefill and decode in one place: serves a whole request without disaggregation. */
    Hybrid,
    /** Computes the prompt's KV cache and the first token, then holds the KV under a lease for a decode node. */
    Prefill,
    /** Pulls migrated KV from a prefill node and produces the remaining tokens. */
    Decode;

    /**
     * Parses a role name, ignoring case ("prefill" and "PREFILL" are {@link #Prefill}) because command lines and
     * hand-written JSON differ in case; anything else is an {@link IllegalArgumentException} naming the valid roles.
     */
    public static NodeRole parse(String name) {
        if (name != null) {
            String trimmed = name.trim();
            for (NodeRole role : values()) {
                if (role.name().equalsIgnoreCase(trimmed)) {
                    return role;
                }
            }
        }
        throw new IllegalArgumentException("Unknown node role '" + name + "'; expected one of "
                + Arrays.stream(values()).map(NodeRole::name).collect(Collectors.joining(", ")));
    }

    /** The lower-case form, for log lines and metric labels. */
    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }
}
