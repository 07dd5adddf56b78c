package io.distserve.processors.http;

/**
 * The client of a request closed its connection: the work done for it stops, nothing is answered, and no node is
 * at fault (the route does not try another).
 */
public final class ClientGoneException extends RuntimeException {

    public ClientGoneException(String message) {
        super(message, null, false, false);
    }
}
