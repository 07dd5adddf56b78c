package io.distserve.processors.proxy;

/**
 * A node that could not serve a request before answering anything (refused connection, timeout, 5xx before the
 * first byte): the route may try another node.
 */
public class NodeFailure extends RuntimeException {

    private final String nodeUrl;
    private final int status;
    private final byte[] answer;

    public NodeFailure(String nodeUrl, String message, Throwable cause) {
        this(nodeUrl, message, cause, -1, new byte[0]);
    }

    /** A node that answered with a 5xx status: {@code answer} is (the start of) its body. */
    public NodeFailure(String nodeUrl, String message, Throwable cause, int status, byte[] answer) {
        super(nodeUrl + ": " + message, cause);
        this.nodeUrl = nodeUrl;
        this.status = status;
        this.answer = answer.clone();
    }

    /** The node's HTTP status, or -1 when it answered nothing. */
    public int status() {
        return status;
    }

    /** The start of the node's 5xx body (empty when it answered nothing). */
    public byte[] answer() {
        return answer.clone();
    }

    public String nodeUrl() {
        return nodeUrl;
    }
}
