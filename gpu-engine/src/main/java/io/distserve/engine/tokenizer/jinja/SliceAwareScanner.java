package io.distserve.engine.tokenizer.jinja;

import com.hubspot.jinjava.el.ext.ExtendedScanner;
import java.util.ArrayDeque;
import java.util.Deque;
import jinjava.de.odysseus.el.tree.impl.Scanner;

/**
 * Jinjava's scanner, taught to tell the second colon of a Python slice ({@code x[a:b:c]}, {@code x[::-1]}) from the
 * first. Jinjava's parser knows {@code x[a:b]} only; the second colon comes out as an extension token that
 * {@link PythonSyntaxParser} turns into the slice's step. Brackets are tracked so that colons of dict literals and
 * of nested calls inside a subscript are left alone.
 */
final class SliceAwareScanner extends ExtendedScanner {

    /** Second colon right after the first ({@code [::step]} or {@code [start::step]}): a prefix operator. */
    static final ExtensionToken STEP_WITHOUT_STOP = new ExtensionToken(":");
    /** Second colon after a stop expression ({@code [start:stop:step]}): an infix operator. */
    static final ExtensionToken STEP_AFTER_STOP = new ExtensionToken(":");

    /** One open bracket: which kind, and how many colons were seen directly inside it. */
    private static final class OpenBracket {
        final char kind;
        int colons;

        OpenBracket(char kind) {
            this.kind = kind;
        }
    }

    private final Deque<OpenBracket> openBrackets = new ArrayDeque<>();

    SliceAwareScanner(String input) {
        super(input);
    }

    @Override
    public Token next() throws ScanException {
        Token previous = getToken();
        Token token = super.next();
        switch (token.getSymbol()) {
            case LBRACK -> openBrackets.push(new OpenBracket('['));
            case LPAREN -> openBrackets.push(new OpenBracket('('));
            case RBRACK, RPAREN -> openBrackets.poll();
            case EXTENSION -> {
                if ("{".equals(token.getImage())) {
                    openBrackets.push(new OpenBracket('{'));
                } else if ("}".equals(token.getImage())) {
                    openBrackets.poll();
                }
            }
            case COLON -> {
                OpenBracket innermost = openBrackets.peek();
                if (innermost != null && innermost.kind == '[' && ++innermost.colons == 2) {
                    if (nextNonBlankIs(']')) {
                        // [start::] and [::] have no step: the colon means nothing, read on to the ']'
                        return next();
                    }
                    Token step = previous != null && previous.getSymbol() == Symbol.COLON
                            ? STEP_WITHOUT_STOP : STEP_AFTER_STOP;
                    setToken(step);
                    return step;
                }
            }
            default -> {
                // other tokens do not change bracket nesting
            }
        }
        return token;
    }

    private boolean nextNonBlankIs(char expected) {
        String input = getInput();
        int i = getPosition() + getToken().getSize();
        while (i < input.length() && Character.isWhitespace(input.charAt(i))) {
            i++;
        }
        return i < input.length() && input.charAt(i) == expected;
    }
}
