package io.distserve.processors.disagg;

import io.distserve.processors.engine.PreparedGeneration;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;

/**
 * Route step "migrate": for a Decode engine's migrated request, pull the prompt's KV blocks from the prefill engine
 * (and acknowledge, so that it frees them); other requests pass through untouched.
 */
public final class PullKv implements Processor {

    private final MigrationService migration;

    public PullKv(MigrationService migration) {
        this.migration = migration;
    }

    @Override
    public void process(Exchange exchange) throws Exception {
        PreparedGeneration p = exchange.getIn().getBody(PreparedGeneration.class);
        if (p.mode() == PreparedGeneration.Mode.MIGRATED && p.migrated() == null) {
            exchange.getIn().setBody(p.withMigrated(migration.pull(p.migration())));
        }
    }
}
