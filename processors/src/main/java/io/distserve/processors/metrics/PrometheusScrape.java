package io.distserve.processors.metrics;

import io.distserve.processors.http.Replies;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;

/** {@code GET /metrics}: the Prometheus text exposition of the node's registry (ours and Camel's route metrics). */
public final class PrometheusScrape implements Processor {

    private final PrometheusMeterRegistry registry;

    public PrometheusScrape(PrometheusMeterRegistry registry) {
        this.registry = registry;
    }

    @Override
    public void process(Exchange exchange) {
        Replies.reply(exchange, 200, "text/plain; version=0.0.4; charset=utf-8", registry.scrape());
    }
}
