/**
 * Who serves what: the proxy's node table ({@link io.distserve.registry.NodeRegistry}) with per-node load,
 * latency, reliability and health; its JSON file ({@link io.distserve.registry.NodeTableFile}); and the
 * {@link io.distserve.registry.HealthChecker} that moves nodes in and out of the routing set. Plain Java with
 * Jackson for JSON; the HTTP layer maps {@link java.lang.IllegalArgumentException}s from here to 400 responses.
 */
package io.distserve.registry;
