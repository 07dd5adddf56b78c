package io.distserve.engine.tokenizer.jinja;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import jinjava.javax.el.CompositeELResolver;

/**
 * A Jinja environment that renders chat templates the way Hugging Face transformers does
 * ({@code ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])} with a
 * {@code tojson} filter and the {@code raise_exception}/{@code strftime_now} globals), built on Jinjava:
 * <ul>
 *   <li>trim_blocks / lstrip_blocks: Jinjava's own settings;</li>
 *   <li>Python syntax Jinjava lacks (stepped slices, expression-valued keyword arguments): {@link PythonSyntaxParser};</li>
 *   <li>Python string methods: {@link PythonStringMethods}, ahead of Jinjava's resolvers, which stay read-only
 *   (the immutable sandbox's guarantee that templates cannot modify the caller's lists and dicts);</li>
 *   <li>{@code tojson}: {@link PythonToJsonFilter}; globals: {@link TemplateGlobals}.</li>
 * </ul>
 * Any error Jinjava reports fails the render: Jinjava itself would carry on and return partial text.
 * Thread-safe: Jinjava renders concurrently; each render gets its own interpreter.
 */
public final class HfJinjaEnvironment {

    private final Jinjava jinjava;

    public HfJinjaEnvironment() {
        CompositeELResolver resolvers = new CompositeELResolver();
        resolvers.add(new PythonStringMethods());
        resolvers.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
        JinjavaConfig config = JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                // Jinjava would otherwise render template syntax found in the *output* of an expression, so a
                // user message containing "{{ ... }}" would be evaluated: a template injection.
                .withNestedInterpretationEnabled(false)
                .withLegacyOverrides(LegacyOverrides.newBuilder()
                        // {{- x }} and {#- #} strip whitespace like {%- %} does (Jinjava ignores the '-' by default)
                        .withUseTrimmingForNotesAndExpressions(true)
                        // {key: v} evaluates key and "for k in dict" walks keys, as in Jinja2
                        .withEvaluateMapKeys(true)
                        .withIterateOverMapKeys(true)
                        // lists and dicts print as Python reprs, None entries survive in loops
                        .withUsePyishObjectMapper(true)
                        .withKeepNullableLoopValues(true)
                        .build())
                .withElResolver(resolvers)
                .build();
        jinjava = new PythonicJinjava(config);
        jinjava.registerFilter(new PythonToJsonFilter());
        jinjava.registerFunction(new ELFunctionDefinition(
                "", "raise_exception", TemplateGlobals.class, "raiseException", Object.class));
        jinjava.registerFunction(new ELFunctionDefinition(
                "", "strftime_now", TemplateGlobals.class, "strftimeNow", Object.class));
    }

    /** Parses {@code template} (tags and their nesting); expressions are checked when rendered. */
    public void checkSyntax(String template) {
        JinjavaInterpreter interpreter = jinjava.newInterpreter();
        JinjavaInterpreter.pushCurrent(interpreter);
        try {
            interpreter.parse(template);
        } finally {
            JinjavaInterpreter.popCurrent();
        }
        failOnErrors(interpreter.getErrors(), "cannot parse chat template");
    }

    /** Renders {@code template} with {@code variables}; fails on any error the template causes. */
    public String render(String template, Map<String, ?> variables) {
        RenderResult result = jinjava.renderForResult(template, variables);
        failOnErrors(result.getErrors(), "cannot render chat template");
        return result.getOutput();
    }

    private static void failOnErrors(List<TemplateError> errors, String what) {
        List<TemplateError> failures = errors.stream()
                .filter(e -> e.getSeverity() != TemplateError.ErrorType.WARNING)
                .collect(Collectors.toList());
        if (failures.isEmpty()) {
            return;
        }
        for (TemplateError error : failures) {
            TemplateGlobals.TemplateRaisedException raised = raisedBy(error.getException());
            if (raised != null) {
                throw new JinjaTemplateException("chat template raised an error: " + raised.getMessage(), true,
                        raised);
            }
        }
        String details = failures.stream().map(HfJinjaEnvironment::describe).collect(Collectors.joining("; "));
        throw new JinjaTemplateException(what + ": " + details, false, failures.get(0).getException());
    }

    private static TemplateGlobals.TemplateRaisedException raisedBy(Throwable exception) {
        for (Throwable t = exception; t != null && t.getCause() != t; t = t.getCause()) {
            if (t instanceof TemplateGlobals.TemplateRaisedException raised) {
                return raised;
            }
        }
        return null;
    }

    private static String describe(TemplateError error) {
        String where = error.getLineno() > 0 ? " (line " + error.getLineno() + ")" : "";
        return error.getMessage() + where;
    }
}
