package io.distserve.engine.tokenizer.jinja;

import jinjava.de.odysseus.el.tree.Bindings;
import jinjava.de.odysseus.el.tree.impl.ast.AstNode;
import jinjava.de.odysseus.el.tree.impl.ast.AstRightValue;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELException;

/**
 * Parse-time carrier for the {@code stop:step} part of a Python slice; {@link PythonSyntaxParser} folds it into an
 * {@link AstSteppedSlice}, so it is never evaluated on its own (a colon outside a subscript is a syntax error).
 */
final class AstSliceStep extends AstRightValue {

    private final AstNode stop;
    private final AstNode step;

    AstSliceStep(AstNode stop, AstNode step) {
        this.stop = stop;
        this.step = step;
    }

    AstNode stop() {
        return stop;
    }

    AstNode step() {
        return step;
    }

    @Override
    public Object eval(Bindings bindings, ELContext context) {
        throw new ELException("a slice step ':' is only valid inside a subscript like x[start:stop:step]");
    }

    @Override
    public void appendStructure(StringBuilder builder, Bindings bindings) {
        if (stop != null) {
            stop.appendStructure(builder, bindings);
        }
        builder.append(':');
        step.appendStructure(builder, bindings);
    }

    @Override
    public String toString() {
        return (stop == null ? "" : stop.toString()) + ":" + step;
    }

    @Override
    public int getCardinality() {
        return stop == null ? 1 : 2;
    }

    @Override
    public AstNode getChild(int i) {
        if (stop == null) {
            return i == 0 ? step : null;
        }
        return i == 0 ? stop : i == 1 ? step : null;
    }
}
