package io.distserve.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.distserve.engine.tokenizer.jinja.HfJinjaEnvironment;
import io.distserve.engine.tokenizer.jinja.JinjaTemplateException;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/**
 * The Jinja2 behaviour chat templates rely on and plain Jinjava lacks or does differently. Expected values are
 * what Jinja2 3.1 prints for the same template.
 */
class HfJinjaEnvironmentTest {

    private final HfJinjaEnvironment jinja = new HfJinjaEnvironment();

    private String render(String template) {
        return jinja.render(template, Map.of("xs", List.of(1, 2, 3, 4, 5), "s", "a</think>b</think>"));
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource(delimiter = '|', value = {
        "{{ xs[::-1] }}|[5, 4, 3, 2, 1]",
        "{{ xs[::2] }}|[1, 3, 5]",
        "{{ xs[1:4:2] }}|[2, 4]",
        "{{ xs[-2::-1] }}|[4, 3, 2, 1]",
        "{{ xs[4:0:-2] }}|[5, 3]",
        "{{ xs[1::] }}|[2, 3, 4, 5]",
        "{{ xs[::] }}|[1, 2, 3, 4, 5]",
        "{{ xs[:2] }}|[1, 2]",
        "{{ xs[10::-1] }}|[5, 4, 3, 2, 1]",
        "{{ 'abc'[::-1] }}|cba",
        "{{ {'k': xs[::-1][0]} }}|{'k': 5}",
        "{% for x in xs[::-1] %}{{ loop.index0 }}{{ x }}{% endfor %}|0514233241",
    })
    void slicesWithASteppedColonFollowPython(String template, String expected) {
        assertThat(render(template)).isEqualTo(expected);
    }

    @Test
    void zeroSliceStepIsAnError() {
        assertThatThrownBy(() -> render("{{ xs[::0] }}")).isInstanceOf(JinjaTemplateException.class)
                .hasMessageContaining("zero");
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource(delimiter = '|', value = {
        "{{ s.split('</think>') }}|['a', 'b', '']",
        "{{ s.split('</think>')[-1] == '' }}|true",
        "{{ s.split('</think>', 1) }}|['a', 'b</think>']",
        "{{ '  a  b '.split() }}|['a', 'b']",
        "{{ s.startswith('a<') }} {{ s.endswith('x') }} {{ s.startswith(('x', 'a')) }}|true false true",
        "[{{ ' \t x \u00a0'.strip() }}]|[x]",
        "{{ 'AbC'.lower() }}{{ 'AbC'.upper() }}|abcABC",
        "{{ 'a-b-c'.replace('-', '+', 1) }}|a+b-c",
        "{{ ', '.join(['a', 'b']) }}|a, b",
        "{{ '</think>' in s }} {{ 'zz' in s }}|true false",
    })
    void pythonStringMethods(String template, String expected) {
        assertThat(render(template)).isEqualTo(expected);
    }

    @Test
    void stripFamilyTakesTheCharactersToStrip() {
        assertThat(render("[{{ '\\n\\nx\\n'.strip('\\n') }}][{{ '\\n\\nx\\n'.lstrip('\\n') }}]"
                + "[{{ '\\nx\\n\\n'.rstrip('\\n') }}][{{ 'xxaxx'.strip('x') }}]")).isEqualTo("[x][x\n][\nx][a]");
    }

    @Test
    void namespaceKeywordArgumentsTakeWholeExpressions() {
        assertThat(render("{% set ns = namespace(last=xs|length - 1, flag=true) %}{% for x in xs %}"
                + "{% if x == 3 %}{% set ns.flag = false %}{% endif %}{% endfor %}{{ ns.last }} {{ ns.flag is false }}"))
                .isEqualTo("4 true"); // Jinja2 prints True: Jinjava prints booleans in lower case
    }

    @Test
    void whitespaceControlMatchesTrimAndLstripBlocks() {
        String template = "<|a|>\n    {%- if true %}\n        {{- 'x' }}\n    {% endif %}\n  {{ 'y' }}\n{# note #}\nz";
        // jinja2 (trim_blocks, lstrip_blocks): '{{-' eats the newline and indent, the block lines vanish
        assertThat(render(template)).isEqualTo("<|a|>x\n  y\nz");
    }

    @Test
    void loopControls() {
        assertThat(render("{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}"
                + "{% endif %}{{ x }}{% endfor %}")).isEqualTo("13");
    }

    @Test
    void tojsonWritesPythonJson() {
        Map<String, Object> tool = new java.util.LinkedHashMap<>();
        tool.put("name", "get_weather");
        tool.put("parameters", Map.of("city", "上海 \"quoted\"\n"));
        tool.put("values", java.util.Arrays.asList(1, 2.5, null, true));
        assertThat(jinja.render("{{ tool|tojson }}", Map.of("tool", tool)))
                .isEqualTo("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"上海 \\\"quoted\\\"\\n\"}, "
                        + "\"values\": [1, 2.5, null, true]}");
        assertThat(jinja.render("{{ {'a': [1]}|tojson(indent=2) }}", Map.of()))
                .isEqualTo("{\n  \"a\": [\n    1\n  ]\n}");
        assertThat(jinja.render("{{ '上'|tojson(ensure_ascii=true) }}", Map.of())).isEqualTo("\"\\u4e0a\"");
    }

    @Test
    void raiseExceptionIsReportedAsTheTemplatesOwnError() {
        assertThatThrownBy(() -> render("before{{ raise_exception('Conversation roles must alternate') }}"))
                .isInstanceOfSatisfying(JinjaTemplateException.class, e -> {
                    assertThat(e.raisedByTemplate()).isTrue();
                    assertThat(e.getMessage()).isEqualTo(
                            "chat template raised an error: Conversation roles must alternate");
                });
    }

    @Test
    void strftimeNowFormatsTheCurrentDate() {
        int before = java.time.LocalDate.now().getYear();
        String year = render("{{ strftime_now('%Y') }}");
        int after = java.time.LocalDate.now().getYear();
        assertThat(Integer.parseInt(year)).isBetween(before, after);
    }

    @Test
    void syntaxErrorsNameTheProblem() {
        assertThatThrownBy(() -> jinja.checkSyntax("{% if x %}open")).isInstanceOf(JinjaTemplateException.class)
                .hasMessageContaining("endif");
    }
}
