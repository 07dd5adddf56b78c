package io.distserve.processors.proxy;

import com.fasterxml.jackson.databind.JsonNode;
import io.distserve.processors.http.BlockingHttp;
import io.distserve.processors.http.ClientGoneException;
import io.distserve.processors.http.SseResponse;
import io.distserve.processors.openai.InferenceRequest;
import io.distserve.processors.routing.PromptPrefix;
import io.distserve.registry.NodeLease;
import java.util.HashSet;
import java.util.Set;
import org.apache.camel.Exchange;

/**
 * One client request's journey through the proxy: the nodes tried and chosen, the prefill's hand-off, the open
 * client stream. Lives in an exchange property for the length of the request; each route step reads and updates
 * it. Mutable on purpose: it is the exchange's own state, touched by one worker thread at a time.
 */
public final class ProxyCall {

    public static final String PROPERTY = "distserveCall";
    /** Exchange property the YAML route tests: the prefill's answer is already the whole answer. */
    public static final String DONE_AT_PREFILL = "doneAtPrefill";
    /** Exchange property the YAML route's loop tests: another attempt is due (prefill, then decode, again). */
    public static final String ATTEMPT_DUE = "attemptDue";

    final InferenceRequest request;
    /** The request body as the client sent it (forwarded as is to Hybrid nodes). */
    byte[] rawBody;
    final String id;
    final long created;
    final long startNanos = System.nanoTime();
    final Set<String> triedPrefill = new HashSet<>();
    final Set<String> triedDecode = new HashSet<>();
    final Set<String> triedHybrid = new HashSet<>();

    NodeLease prefill;
    NodeLease decode;
    NodeLease hybrid;
    /** The prefill's answer: its OpenAI body with the {@code distserve} hand-off. */
    JsonNode prefillAnswer;
    String prefillText = "";
    /** The KV transport of the (prefill, decode) pair, set by the connect step. */
    String migrationProtocol;
    /** True once a decode engine confirmed it took the KV (or the lease was freed): nothing left to free. */
    boolean leaseSettled;
    SseResponse sse;
    /** This attempt's prefill token went to the client ahead of the decode stream (which repeats its text). */
    boolean firstChunkSent;
    /** A chunk with chat's assistant role went to the client: no later one may carry it again. */
    boolean roleSent;
    /**
     * DistServe: the ids of the answer's tokens the client has been sent, or that were held back for it (a piece of
     * a character, a possible stop string), over every attempt; what a stream that breaks carries elsewhere.
     */
    final java.util.List<Integer> answerIds = new java.util.ArrayList<>();
    /** DistServe: the answer's tokens before this attempt's prefill (its resume_token_ids; empty at first). */
    int[] resumeIds = new int[0];
    /** DistServe: attempts after the first (a broken stream moved, a lost lease prefilled again). */
    int migrations;
    /** DistServe: why the next attempt runs (a metric label), null while none is due. */
    String nextAttempt;
    /** DistServe: a lost prefill lease was prefilled again already (that happens once). */
    boolean prefilledAgain;
    /** The decode nodes that served an attempt before this one, for the request's log line. */
    final java.util.List<String> earlierNodes = new java.util.ArrayList<>();
    /** Token counts as the nodes reported them; -1 while unknown (a Hybrid stream whose node sent no usage). */
    int promptTokens = -1;
    int completionTokens = -1;
    private PromptPrefix prompt;
    /** Ends the node call in progress when the client leaves (DistServe's blocking calls). */
    final BlockingHttp.Cancel cancel = new BlockingHttp.Cancel();
    private volatile boolean clientGone;

    ProxyCall(InferenceRequest request, String id, long created) {
        this.request = request;
        this.id = id;
        this.created = created;
    }

    public static ProxyCall of(Exchange exchange) {
        ProxyCall call = exchange.getProperty(PROPERTY, ProxyCall.class);
        if (call == null) {
            throw new IllegalStateException("no proxy call on this exchange: the ingest step did not run");
        }
        return call;
    }

    public InferenceRequest request() {
        return request;
    }

    /** The client stream, when it has been opened. */
    public SseResponse sse() {
        return sse;
    }

    /** Takes the counts a node reported; null (it reported none) or a missing count leaves them as they were. */
    void usage(NodeUsage.Counts counts) {
        if (counts != null) {
            promptTokens = counts.promptTokens() >= 0 ? counts.promptTokens() : promptTokens;
            completionTokens = counts.completionTokens() >= 0 ? counts.completionTokens() : completionTokens;
        }
    }

    /** Adds this attempt's {@code resume_token_ids} to a node's request body, when the answer resumes. */
    void putResumeIds(com.fasterxml.jackson.databind.node.ObjectNode body) {
        if (resumeIds.length > 0) {
            var resume = body.putArray("resume_token_ids");
            for (int t : resumeIds) {
                resume.add(t);
            }
        }
    }

    String model() {
        return request.model();
    }

    /**
     * The client closed its connection: the node call in progress ends now (the engine aborts the request and
     * frees its blocks), and no further step calls a node.
     */
    void clientLeft() {
        clientGone = true;
        cancel.cancel();
    }

    boolean clientGone() {
        return clientGone;
    }

    /** Before a step calls a node: stops the request if its client has gone. */
    void requireClient(String step) {
        if (clientGone) {
            throw new ClientGoneException("the client left before " + step);
        }
    }

    /** The prompt as routing strategies that weigh prefix overlap see it (tokenized on their first look). */
    PromptPrefix prompt() {
        if (prompt == null) {
            prompt = new PromptPrefix(request);
        }
        return prompt;
    }
}
