package io.distserve.engine.tokenizer.jinja;

import java.lang.reflect.Array;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code json.dumps} as Python writes it, which is what a chat template's {@code |tojson} produces under Hugging
 * Face (transformers replaces Jinja2's HTML-escaping tojson with {@code json.dumps(x, ensure_ascii=False,
 * indent=indent, sort_keys=sort_keys)}): {@code ", "} and {@code ": "} separators without indent, newline-and-indent
 * layout with one, insertion order of keys, non-ASCII kept as is unless {@code ensureAscii}.
 */
final class PythonJson {

    private final boolean ensureAscii;
    private final String indent;
    private final boolean sortKeys;

    /** @param indent null for single-line output, else the string repeated once per nesting level */
    PythonJson(boolean ensureAscii, String indent, boolean sortKeys) {
        this.ensureAscii = ensureAscii;
        this.indent = indent;
        this.sortKeys = sortKeys;
    }

    String dumps(Object value) {
        StringBuilder out = new StringBuilder();
        write(value, out, 0);
        return out.toString();
    }

    private void write(Object value, StringBuilder out, int depth) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof Boolean b) {
            out.append(b ? "true" : "false");
        } else if (value instanceof CharSequence s) {
            writeString(s.toString(), out);
        } else if (value instanceof Double || value instanceof Float) {
            out.append(floatRepr(((Number) value).doubleValue()));
        } else if (value instanceof BigDecimal d) {
            out.append(floatRepr(d.doubleValue()));
        } else if (value instanceof Number n) {
            out.append(n instanceof BigInteger ? n.toString() : Long.toString(n.longValue()));
        } else if (value instanceof Map<?, ?> map) {
            writeMap(map, out, depth);
        } else if (value instanceof Iterable<?> iterable) {
            List<Object> items = new ArrayList<>();
            iterable.forEach(items::add);
            writeList(items, out, depth);
        } else if (value.getClass().isArray()) {
            List<Object> items = new ArrayList<>();
            for (int i = 0; i < Array.getLength(value); i++) {
                items.add(Array.get(value, i));
            }
            writeList(items, out, depth);
        } else {
            throw new IllegalArgumentException(
                    "Object of type " + value.getClass().getSimpleName() + " is not JSON serializable");
        }
    }

    private void writeMap(Map<?, ?> map, StringBuilder out, int depth) {
        if (map.isEmpty()) {
            out.append("{}");
            return;
        }
        Map<String, Object> entries = sortKeys ? new TreeMap<>() : new java.util.LinkedHashMap<>();
        for (Map.Entry<?, ?> entry : map.entrySet()) {
            entries.put(key(entry.getKey()), entry.getValue());
        }
        out.append('{');
        Iterator<Map.Entry<String, Object>> it = entries.entrySet().iterator();
        while (it.hasNext()) {
            Map.Entry<String, Object> entry = it.next();
            newline(out, depth + 1);
            writeString(entry.getKey(), out);
            out.append(": ");
            write(entry.getValue(), out, depth + 1);
            if (it.hasNext()) {
                out.append(indent == null ? ", " : ",");
            }
        }
        newline(out, depth);
        out.append('}');
    }

    private void writeList(List<Object> items, StringBuilder out, int depth) {
        if (items.isEmpty()) {
            out.append("[]");
            return;
        }
        out.append('[');
        for (int i = 0; i < items.size(); i++) {
            newline(out, depth + 1);
            write(items.get(i), out, depth + 1);
            if (i + 1 < items.size()) {
                out.append(indent == null ? ", " : ",");
            }
        }
        newline(out, depth);
        out.append(']');
    }

    private void newline(StringBuilder out, int depth) {
        if (indent != null) {
            out.append('\n').append(indent.repeat(depth));
        }
    }

    /** Python converts non-string keys: numbers and booleans to their JSON text, None to "null". */
    private static String key(Object key) {
        if (key == null) {
            return "null";
        }
        if (key instanceof String s) {
            return s;
        }
        if (key instanceof Boolean b) {
            return b ? "true" : "false";
        }
        if (key instanceof Double || key instanceof Float) {
            return floatRepr(((Number) key).doubleValue());
        }
        if (key instanceof Number n) {
            return n.toString();
        }
        throw new IllegalArgumentException(
                "keys must be str, int, float, bool or None, not " + key.getClass().getSimpleName());
    }

    private void writeString(String s, StringBuilder out) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20 || (ensureAscii && c > 0x7e)) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    /** Python's float repr: shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
    static String floatRepr(double d) {
        if (Double.isNaN(d)) {
            return "NaN";
        }
        if (Double.isInfinite(d)) {
            return d > 0 ? "Infinity" : "-Infinity";
        }
        if (d == 0) {
            return (1 / d < 0) ? "-0.0" : "0.0";
        }
        BigDecimal exact = new BigDecimal(Double.toString(d)).stripTrailingZeros();
        int exponent = exact.precision() - exact.scale() - 1;
        if (exponent < -4 || exponent >= 16) {
            String digits = exact.unscaledValue().abs().toString();
            String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
            return (d < 0 ? "-" : "") + mantissa + "e" + (exponent < 0 ? "-" : "+")
                    + String.format("%02d", Math.abs(exponent));
        }
        String plain = exact.toPlainString();
        return plain.contains(".") ? plain : plain + ".0";
    }
}
