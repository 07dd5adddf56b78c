package io.distserve.engine.tokenizer.jinja;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.el.TruthyTypeConverter;
import jinjava.de.odysseus.el.ExpressionFactoryImpl;
import jinjava.de.odysseus.el.tree.TreeStore;
import jinjava.de.odysseus.el.tree.impl.Cache;
import jinjava.javax.el.ExpressionFactory;

/**
 * Jinjava whose expressions are parsed by {@link PythonSyntaxParser}. Jinjava takes its expression factory from
 * {@link #getExpressionFactory()}; the factory is otherwise the one Jinjava builds (its truthiness rules), plus a
 * cache of parsed expressions: Jinjava does not cache because its parser reads per-render settings (operator
 * precedence), but every render here uses the one configuration, so a chat template's expressions are parsed once
 * instead of on every request.
 */
final class PythonicJinjava extends Jinjava {

    /** Enough for a few large chat templates (Qwen3's has about 100 expressions). */
    private static final int PARSED_EXPRESSIONS_CACHED = 1000;

    private final ExpressionFactory expressionFactory;

    PythonicJinjava(JinjavaConfig config) {
        super(config);
        this.expressionFactory = new ExpressionFactoryImpl(
                new TreeStore(new PythonSyntaxBuilder(), new Cache(PARSED_EXPRESSIONS_CACHED)),
                new TruthyTypeConverter());
    }

    @Override
    public ExpressionFactory getExpressionFactory() {
        return expressionFactory;
    }
}
