package io.distserve.engine.tokenizer.jinja;

import com.hubspot.jinjava.el.ExtendedSyntaxBuilder;
import jinjava.de.odysseus.el.tree.impl.Parser;

/** Jinjava's tree builder, building with {@link PythonSyntaxParser}. */
final class PythonSyntaxBuilder extends ExtendedSyntaxBuilder {

    private static final long serialVersionUID = 1L;

    /** The features Jinjava's own factory enables (its default JUEL profile): method calls and varargs functions. */
    PythonSyntaxBuilder() {
        super(Feature.METHOD_INVOCATIONS, Feature.VARARGS);
    }

    @Override
    protected Parser createParser(String expression) {
        return new PythonSyntaxParser(this, expression);
    }
}
