package io.distserve.processors.proxy;

/**
 * A node that could not serve a request before answering anything (refused connection, timeout, 5xx before the
 * first byte): the route may try another node.
 */
public class NodeFailure extends RuntimeException {

    private final String nodeUrl;

    public NodeFailure(String nodeUrl, String message, Throwable cause) {
        super(nodeUrl + ": " + message, cause);
        this.nodeUrl = nodeUrl;
    }

    public String nodeUrl() {
        return nodeUrl;
    }
}
