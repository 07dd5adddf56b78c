package io.distserve.engine.tokenizer;

import java.nio.file.Path;

/** A tokenizer or model file that is missing, unreadable or malformed; the message names the file and field. */
public class InvalidTokenizerFileException extends RuntimeException {

    private static final long serialVersionUID = 1L;

    public InvalidTokenizerFileException(Path file, String problem) {
        super(file + ": " + problem);
    }

    public InvalidTokenizerFileException(Path file, String problem, Throwable cause) {
        super(file + ": " + problem, cause);
    }
}
