package io.distserve.processors.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.distserve.processors.openai.OpenAiException;
import java.io.IOException;
import org.apache.camel.Exchange;

/** The JSON object body of a control request; anything else is a 400. */
public final class JsonBodies {

    private JsonBodies() {
    }

    public static JsonNode object(Exchange exchange, ObjectMapper json) {
        return object(exchange.getIn().getBody(byte[].class), json);
    }

    /** For a body already read (an exchange's stream body can be read once). */
    public static JsonNode object(byte[] bytes, ObjectMapper json) {
        try {
            JsonNode node = bytes == null || bytes.length == 0 ? null : json.readTree(bytes);
            if (node == null || !node.isObject()) {
                throw OpenAiException.badRequest(null, "The request body must be a JSON object.");
            }
            return node;
        } catch (IOException e) {
            throw OpenAiException.badRequest(null, "Invalid JSON in request body: " + e.getMessage());
        }
    }
}
