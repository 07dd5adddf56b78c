package io.distserve.engine.tokenizer.jinja;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.filter.Filter;
import java.util.Map;

/**
 * {@code |tojson} as Hugging Face defines it for chat templates: {@code tojson(x, ensure_ascii=False, indent=None,
 * separators=None, sort_keys=False)} returning {@code json.dumps(...)}. Replaces Jinjava's own tojson, which writes
 * compact JSON ({@code {"a":1}}) where Python writes {@code {"a": 1}}.
 */
final class PythonToJsonFilter implements Filter {

    private static final String[] POSITIONAL = {"ensure_ascii", "indent", "separators", "sort_keys"};

    @Override
    public String getName() {
        return "tojson";
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
        return filter(var, interpreter, args, Map.of());
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
        Map<String, Object> options = new java.util.HashMap<>(kwargs);
        if (args.length > POSITIONAL.length) {
            throw new IllegalArgumentException("tojson takes at most " + POSITIONAL.length + " arguments");
        }
        for (int i = 0; i < args.length; i++) {
            if (options.put(POSITIONAL[i], args[i]) != null) {
                throw new IllegalArgumentException("tojson got multiple values for argument " + POSITIONAL[i]);
            }
        }
        for (String name : options.keySet()) {
            if (!java.util.Arrays.asList(POSITIONAL).contains(name)) {
                throw new IllegalArgumentException("tojson got an unexpected keyword argument " + name);
            }
        }
        if (options.get("separators") != null) {
            throw new IllegalArgumentException("tojson: custom separators are not supported");
        }
        boolean ensureAscii = Boolean.TRUE.equals(options.get("ensure_ascii"));
        boolean sortKeys = Boolean.TRUE.equals(options.get("sort_keys"));
        return new PythonJson(ensureAscii, indent(options.get("indent")), sortKeys).dumps(var);
    }

    private static String indent(Object indent) {
        if (indent == null) {
            return null;
        }
        if (indent instanceof Number n) {
            return " ".repeat(Math.max(0, n.intValue()));
        }
        if (indent instanceof String s) {
            return s;
        }
        throw new IllegalArgumentException("tojson: indent must be an int or a string");
    }
}
