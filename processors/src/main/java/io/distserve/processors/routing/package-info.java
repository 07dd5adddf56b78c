/**
 * Routing strategies with LMDeploy's names ({@code random}, {@code min_expected_latency},
 * {@code min_observed_latency}) over snapshots of the node registry, and the {@link
 * io.distserve.processors.routing.NodeRouter} that turns a choice into a lease. Pure Java: no Camel here.
 */
package io.distserve.processors.routing;
