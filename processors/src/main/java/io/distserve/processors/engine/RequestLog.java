package io.distserve.processors.engine;

import io.distserve.engine.FinishEvent;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The one INFO line per request: id, node, tokens, latency. */
final class RequestLog {

    private static final Logger LOG = LoggerFactory.getLogger("io.distserve.requests");

    private RequestLog() {
    }

    static void finished(EngineNode node, PreparedGeneration p, FinishEvent f, boolean stream) {
        if (LOG.isInfoEnabled()) {
            LOG.info("{} node={} role={} model={} stream={} prompt={} completion={} finish={} ttft={}ms total={}ms",
                    p.id(), node.engineId(), node.role(), node.modelName(), stream, f.promptTokens(),
                    f.completionTokens(), f.reason().openAiName(),
                    f.timing() == null ? -1 : f.timing().timeToFirstTokenNanos() / 1_000_000,
                    f.timing() == null ? -1 : f.timing().totalNanos() / 1_000_000);
        }
    }
}
