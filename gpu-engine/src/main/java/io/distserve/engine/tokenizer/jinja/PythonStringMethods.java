package io.distserve.engine.tokenizer.jinja;

import java.beans.FeatureDescriptor;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELException;
import jinjava.javax.el.ELResolver;

/**
 * Python {@code str} methods on Java strings. Chat templates are written for Jinja2, where strings are Python
 * strings: {@code content.startswith('<tool_response>')}, {@code content.split('</think>')[-1].lstrip('\n')}.
 * Jinjava exposes Java's methods instead, which either do not exist ({@code startswith}, {@code strip(chars)}) or
 * differ ({@code split} takes a regex and drops trailing empty strings). This resolver answers those calls with
 * Python's semantics before Jinjava's bean resolver sees them; any other call falls through unchanged.
 */
final class PythonStringMethods extends ELResolver {

    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
        if (!(base instanceof String text) || !(method instanceof String name)) {
            return null;
        }
        Object[] args = params == null ? new Object[0] : params;
        Object result;
        switch (name) {
            case "startswith" -> result = startsOrEndsWith(text, args, true);
            case "endswith" -> result = startsOrEndsWith(text, args, false);
            case "strip" -> result = strip(text, chars(name, args), true, true);
            case "lstrip" -> result = strip(text, chars(name, args), true, false);
            case "rstrip" -> result = strip(text, chars(name, args), false, true);
            case "split" -> result = split(text, args);
            case "lower" -> result = noArgs(name, args, text.toLowerCase(Locale.ROOT));
            case "upper" -> result = noArgs(name, args, text.toUpperCase(Locale.ROOT));
            case "replace" -> result = replace(text, args);
            case "find" -> result = find(text, args);
            case "count" -> result = count(text, args);
            case "join" -> result = join(text, args);
            default -> {
                return null;
            }
        }
        context.setPropertyResolved(true);
        return result;
    }

    private static boolean startsOrEndsWith(String text, Object[] args, boolean start) {
        String method = start ? "startswith" : "endswith";
        if (args.length != 1) {
            throw new ELException(method + "() takes exactly one argument (" + args.length + " given)");
        }
        List<String> candidates = new ArrayList<>();
        if (args[0] instanceof Iterable<?> tuple) {
            for (Object candidate : tuple) {
                candidates.add(string(method, candidate));
            }
        } else {
            candidates.add(string(method, args[0]));
        }
        for (String candidate : candidates) {
            if (start ? text.startsWith(candidate) : text.endsWith(candidate)) {
                return true;
            }
        }
        return false;
    }

    /** The characters to strip, or null for "whitespace" (no argument or None). */
    private static String chars(String method, Object[] args) {
        if (args.length > 1) {
            throw new ELException(method + "() takes at most one argument (" + args.length + " given)");
        }
        return args.length == 0 || args[0] == null ? null : string(method, args[0]);
    }

    private static String strip(String text, String chars, boolean left, boolean right) {
        int begin = 0;
        int end = text.length();
        while (left && begin < end && strippable(text.codePointAt(begin), chars)) {
            begin += Character.charCount(text.codePointAt(begin));
        }
        while (right && end > begin && strippable(text.codePointBefore(end), chars)) {
            end -= Character.charCount(text.codePointBefore(end));
        }
        return text.substring(begin, end);
    }

    private static boolean strippable(int codePoint, String chars) {
        return chars == null ? isPythonSpace(codePoint) : chars.codePoints().anyMatch(c -> c == codePoint);
    }

    /** Python's str.isspace() for one code point (Java's isWhitespace leaves out no-break spaces and U+0085). */
    private static boolean isPythonSpace(int codePoint) {
        return Character.isWhitespace(codePoint) || Character.isSpaceChar(codePoint) || codePoint == 0x85;
    }

    private static List<String> split(String text, Object[] args) {
        if (args.length > 2) {
            throw new ELException("split() takes at most 2 arguments (" + args.length + " given)");
        }
        String separator = args.length == 0 || args[0] == null ? null : string("split", args[0]);
        int maxSplit = args.length < 2 ? -1 : integer("split", args[1]);
        List<String> parts = new ArrayList<>();
        if (separator == null) {
            // Python: runs of whitespace separate, leading/trailing whitespace yields no empty strings.
            int i = 0;
            int n = text.length();
            while (true) {
                while (i < n && isPythonSpace(text.codePointAt(i))) {
                    i += Character.charCount(text.codePointAt(i));
                }
                if (i >= n) {
                    return parts;
                }
                if (maxSplit >= 0 && parts.size() == maxSplit) {
                    parts.add(strip(text.substring(i), null, false, true));
                    return parts;
                }
                int begin = i;
                while (i < n && !isPythonSpace(text.codePointAt(i))) {
                    i += Character.charCount(text.codePointAt(i));
                }
                parts.add(text.substring(begin, i));
            }
        }
        if (separator.isEmpty()) {
            throw new ELException("split(): empty separator");
        }
        int from = 0;
        int at;
        while ((maxSplit < 0 || parts.size() < maxSplit) && (at = text.indexOf(separator, from)) >= 0) {
            parts.add(text.substring(from, at));
            from = at + separator.length();
        }
        parts.add(text.substring(from));
        return parts;
    }

    private static String replace(String text, Object[] args) {
        if (args.length < 2 || args.length > 3) {
            throw new ELException("replace() takes 2 or 3 arguments (" + args.length + " given)");
        }
        String old = string("replace", args[0]);
        String replacement = string("replace", args[1]);
        int limit = args.length == 3 ? integer("replace", args[2]) : -1;
        if (limit < 0) {
            return text.replace(old, replacement);
        }
        StringBuilder out = new StringBuilder();
        int from = 0;
        for (int done = 0; done < limit; done++) {
            int at = text.indexOf(old, from);
            if (at < 0) {
                break;
            }
            out.append(text, from, at).append(replacement);
            from = at + old.length();
            if (old.isEmpty()) {
                if (from >= text.length()) {
                    break;
                }
                out.append(text.charAt(from));
                from++;
            }
        }
        return out.append(text.substring(from)).toString();
    }

    private static int find(String text, Object[] args) {
        if (args.length != 1) {
            throw new ELException("find() takes exactly one argument here (" + args.length + " given)");
        }
        int at = text.indexOf(string("find", args[0]));
        return at < 0 ? -1 : text.codePointCount(0, at);
    }

    private static int count(String text, Object[] args) {
        if (args.length != 1) {
            throw new ELException("count() takes exactly one argument here (" + args.length + " given)");
        }
        String needle = string("count", args[0]);
        if (needle.isEmpty()) {
            return text.codePointCount(0, text.length()) + 1;
        }
        int found = 0;
        for (int at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + needle.length())) {
            found++;
        }
        return found;
    }

    private static String join(String separator, Object[] args) {
        if (args.length != 1 || !(args[0] instanceof Iterable<?> items)) {
            throw new ELException("join() takes one iterable argument");
        }
        StringBuilder out = new StringBuilder();
        for (Iterator<?> it = items.iterator(); it.hasNext(); ) {
            out.append(string("join", it.next()));
            if (it.hasNext()) {
                out.append(separator);
            }
        }
        return out.toString();
    }

    private static Object noArgs(String method, Object[] args, Object result) {
        if (args.length != 0) {
            throw new ELException(method + "() takes no arguments (" + args.length + " given)");
        }
        return result;
    }

    private static String string(String method, Object value) {
        if (value instanceof String s) {
            return s;
        }
        throw new ELException(method + "(): expected a string argument, got "
                + (value == null ? "None" : value.getClass().getSimpleName()));
    }

    private static int integer(String method, Object value) {
        if (value instanceof Number n) {
            return n.intValue();
        }
        throw new ELException(method + "(): expected an integer argument, got "
                + (value == null ? "None" : value.getClass().getSimpleName()));
    }

    // Property access is left to the other resolvers: only method calls are answered here.

    @Override
    public Object getValue(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public Class<?> getType(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public void setValue(ELContext context, Object base, Object property, Object value) {
        // not resolved here
    }

    @Override
    public boolean isReadOnly(ELContext context, Object base, Object property) {
        return false;
    }

    @Override
    public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
        return null;
    }

    @Override
    public Class<?> getCommonPropertyType(ELContext context, Object base) {
        return null;
    }
}
