package io.distserve.processors.proxy;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;

/**
 * The token counts of an OpenAI body that a Hybrid node sent (a whole answer, or a stream's usage chunk), for the
 * request's log line, read without parsing the body: the forward passes the bytes on as they came, and the body can
 * be a long completion.
 *
 * <p>How: the last {@code "usage"} key of the body (OpenAI, vLLM, LMDeploy and our engines write it last), then just
 * its object with a streaming parser. The seven bytes {@code "usage"} followed by a colon are always a key: inside a
 * JSON string every quote is escaped, so no string's text can hold them.
 */
final class NodeUsage {

    private static final byte[] KEY = {'"', 'u', 's', 'a', 'g', 'e', '"'};

    /** What a body says: -1 for a count it does not give. */
    record Counts(int promptTokens, int completionTokens) {
    }

    private NodeUsage() {
    }

    /** The counts of the body's usage object; null when it has none (no key, {@code "usage":null}, not JSON). */
    static Counts read(JsonFactory json, byte[] body) {
        int object = usageObjectStart(body);
        if (object < 0) {
            return null;
        }
        int prompt = -1;
        int completion = -1;
        try (JsonParser p = json.createParser(body, object, body.length - object)) {
            p.nextToken(); // START_OBJECT
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                JsonToken value = p.nextToken();
                if (value == JsonToken.VALUE_NUMBER_INT && "prompt_tokens".equals(field)) {
                    prompt = p.getIntValue();
                } else if (value == JsonToken.VALUE_NUMBER_INT && "completion_tokens".equals(field)) {
                    completion = p.getIntValue();
                } else {
                    p.skipChildren();
                }
            }
        } catch (IOException malformed) {
            // forwarded as it came; what was read before the break stands
        }
        return new Counts(prompt, completion);
    }

    /** Where the last usage key's object value begins; -1 when the last usage key has none (null, or no key). */
    static int usageObjectStart(byte[] body) {
        for (int at = body.length - KEY.length; at >= 0; at--) {
            if (!keyAt(body, at)) {
                continue;
            }
            int i = skipBlanks(body, at + KEY.length);
            if (i >= body.length || body[i] != ':') {
                continue; // a string value "usage", not the key
            }
            i = skipBlanks(body, i + 1);
            return i < body.length && body[i] == '{' ? i : -1;
        }
        return -1;
    }

    private static boolean keyAt(byte[] body, int at) {
        for (int k = 0; k < KEY.length; k++) {
            if (body[at + k] != KEY[k]) {
                return false;
            }
        }
        return true;
    }

    private static int skipBlanks(byte[] body, int i) {
        while (i < body.length && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r')) {
            i++;
        }
        return i;
    }
}
