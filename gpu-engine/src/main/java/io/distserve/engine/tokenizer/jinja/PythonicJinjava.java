package io.distserve.engine.tokenizer.jinja;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.el.TruthyTypeConverter;
import jinjava.de.odysseus.el.ExpressionFactoryImpl;
import jinjava.de.odysseus.el.tree.TreeStore;
import jinjava.javax.el.ExpressionFactory;

/**
 * Jinjava whose expressions are parsed by {@link PythonSyntaxParser}. Jinjava takes its expression factory from
 * {@link #getExpressionFactory()}; the factory is otherwise the one Jinjava builds (its truthiness rules, no tree
 * cache, because Jinjava's parser reads per-render settings).
 */
final class PythonicJinjava extends Jinjava {

    private final ExpressionFactory expressionFactory;

    PythonicJinjava(JinjavaConfig config) {
        super(config);
        this.expressionFactory = new ExpressionFactoryImpl(
                new TreeStore(new PythonSyntaxBuilder(), null), new TruthyTypeConverter());
    }

    @Override
    public ExpressionFactory getExpressionFactory() {
        return expressionFactory;
    }
}
