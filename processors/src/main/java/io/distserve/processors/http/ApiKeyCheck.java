package io.distserve.processors.http;

import io.distserve.processors.openai.OpenAiException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.List;
import org.apache.camel.Exchange;
import org.apache.camel.Processor;

/**
 * {@code --api-keys}: when keys are configured, the request must carry {@code Authorization: Bearer <key>} with one
 * of them (401 otherwise). With no keys configured every request passes.
 */
public final class ApiKeyCheck implements Processor {

    private final List<byte[]> keys;

    public ApiKeyCheck(List<String> keys) {
        this.keys = keys.stream().filter(k -> !k.isBlank()).map(k -> k.getBytes(StandardCharsets.UTF_8)).toList();
    }

    public boolean enabled() {
        return !keys.isEmpty();
    }

    @Override
    public void process(Exchange exchange) {
        if (keys.isEmpty()) {
            return;
        }
        String header = exchange.getIn().getHeader("Authorization", String.class);
        if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) {
            throw OpenAiException.unauthorized();
        }
        byte[] given = header.substring(7).trim().getBytes(StandardCharsets.UTF_8);
        for (byte[] key : keys) {
            // constant-time per key: no timing hint about how much of a key matched
            if (MessageDigest.isEqual(key, given)) {
                return;
            }
        }
        throw OpenAiException.unauthorized();
    }
}
