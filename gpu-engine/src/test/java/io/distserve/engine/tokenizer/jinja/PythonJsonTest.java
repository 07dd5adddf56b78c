package io.distserve.engine.tokenizer.jinja;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class PythonJsonTest {

    @Test
    void floatsPrintAsPythonRepr() {
        assertThat(PythonJson.floatRepr(1.0)).isEqualTo("1.0");
        assertThat(PythonJson.floatRepr(0.1)).isEqualTo("0.1");
        assertThat(PythonJson.floatRepr(-2.5)).isEqualTo("-2.5");
        assertThat(PythonJson.floatRepr(1e16)).isEqualTo("1e+16");
        assertThat(PythonJson.floatRepr(123456789012345.0)).isEqualTo("123456789012345.0");
        assertThat(PythonJson.floatRepr(1.5e-5)).isEqualTo("1.5e-05");
        assertThat(PythonJson.floatRepr(0.0001)).isEqualTo("0.0001");
        assertThat(PythonJson.floatRepr(Double.NaN)).isEqualTo("NaN");
    }

    @Test
    void controlCharactersAreEscapedAndUnicodeKept() {
        assertThat(new PythonJson(false, null, false).dumps("a\u0001\t\"\\é😀"))
                .isEqualTo("\"a\\u0001\\t\\\"\\\\é😀\"");
        assertThat(new PythonJson(true, null, false).dumps("é😀")).isEqualTo("\"\\u00e9\\ud83d\\ude00\"");
    }

    @Test
    void sortKeysAndEmptyContainers() {
        java.util.Map<String, Object> map = new java.util.LinkedHashMap<>();
        map.put("b", java.util.List.of());
        map.put("a", java.util.Map.of());
        assertThat(new PythonJson(false, null, true).dumps(map)).isEqualTo("{\"a\": {}, \"b\": []}");
        assertThat(new PythonJson(false, null, false).dumps(map)).isEqualTo("{\"b\": [], \"a\": {}}");
    }
}
