package io.distserve.engine.tokenizer.jinja;

import com.hubspot.jinjava.el.ext.AstRangeBracket;
import java.lang.reflect.Array;
import java.util.ArrayList;
import java.util.List;
import jinjava.de.odysseus.el.tree.Bindings;
import jinjava.de.odysseus.el.tree.impl.ast.AstNode;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELException;

/**
 * {@code sequence[start:stop:step]} with Python's semantics (negative indices count from the end, a negative step
 * walks backwards, missing bounds default by the step's sign) on lists, arrays, other iterables and strings (by code
 * point). Chat templates use {@code messages[::-1]} to walk the conversation backwards.
 */
final class AstSteppedSlice extends AstRangeBracket {

    private final AstNode stop;
    private final AstNode step;

    AstSteppedSlice(AstNode base, AstNode start, AstNode stop, AstNode step, boolean lvalue, boolean strict,
                    boolean ignoreReturnType) {
        super(base, start, stop, lvalue, strict, ignoreReturnType);
        this.stop = stop;
        this.step = step;
    }

    @Override
    public Object eval(Bindings bindings, ELContext context) {
        Object base = prefix.eval(bindings, context);
        if (base == null) {
            return null;
        }
        int stepValue = intOrDefault(step, bindings, context, 1);
        if (stepValue == 0) {
            throw new ELException("slice step cannot be zero");
        }
        if (base instanceof CharSequence text) {
            int[] codePoints = text.codePoints().toArray();
            StringBuilder out = new StringBuilder();
            for (int index : indices(codePoints.length, stepValue, bindings, context)) {
                out.appendCodePoint(codePoints[index]);
            }
            return out.toString();
        }
        List<Object> items = asList(base);
        List<Object> out = new ArrayList<>();
        for (int index : indices(items.size(), stepValue, bindings, context)) {
            out.add(items.get(index));
        }
        return out;
    }

    private static List<Object> asList(Object base) {
        if (base instanceof List<?> list) {
            return new ArrayList<>(list);
        }
        if (base.getClass().isArray()) {
            List<Object> out = new ArrayList<>();
            for (int i = 0; i < Array.getLength(base); i++) {
                out.add(Array.get(base, i));
            }
            return out;
        }
        if (base instanceof Iterable<?> iterable) {
            List<Object> out = new ArrayList<>();
            iterable.forEach(out::add);
            return out;
        }
        throw new ELException("cannot slice a " + base.getClass().getSimpleName());
    }

    /** The indices Python's slice(start, stop, step).indices(length) walks. */
    private List<Integer> indices(int length, int stepValue, Bindings bindings, ELContext context) {
        boolean backwards = stepValue < 0;
        int start = clamp(property == null ? null : intValue(property, bindings, context), length, backwards,
                backwards ? length - 1 : 0);
        int end = clamp(stop == null ? null : intValue(stop, bindings, context), length, backwards,
                backwards ? -1 : length);
        List<Integer> out = new ArrayList<>();
        for (int i = start; backwards ? i > end : i < end; i += stepValue) {
            out.add(i);
        }
        return out;
    }

    private static int clamp(Integer bound, int length, boolean backwards, int missing) {
        if (bound == null) {
            return missing;
        }
        int value = bound;
        if (value < 0) {
            value += length;
            if (value < 0) {
                return backwards ? -1 : 0;
            }
            return value;
        }
        if (value >= length) {
            return backwards ? length - 1 : length;
        }
        return value;
    }

    private static int intOrDefault(AstNode node, Bindings bindings, ELContext context, int missing) {
        Integer value = node == null ? null : intValue(node, bindings, context);
        return value == null ? missing : value;
    }

    private static Integer intValue(AstNode node, Bindings bindings, ELContext context) {
        Object value = node.eval(bindings, context);
        if (value == null) {
            return null;
        }
        if (value instanceof Number number) {
            return number.intValue();
        }
        throw new ELException("slice indices must be integers or None, not " + value.getClass().getSimpleName());
    }

    @Override
    public void appendStructure(StringBuilder builder, Bindings bindings) {
        prefix.appendStructure(builder, bindings);
        builder.append('[');
        if (property != null) {
            property.appendStructure(builder, bindings);
        }
        builder.append(':');
        if (stop != null) {
            stop.appendStructure(builder, bindings);
        }
        builder.append(':');
        if (step != null) {
            step.appendStructure(builder, bindings);
        }
        builder.append(']');
    }

    @Override
    public String toString() {
        return "[:" + (stop == null ? "" : stop) + ":" + step + "]";
    }
}
