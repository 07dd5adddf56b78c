package io.distserve.engine.tokenizer.jinja;

import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Locale;

/**
 * Python's {@code datetime.strftime} directives (C locale), for the {@code strftime_now} global that Hugging Face
 * gives chat templates (Llama 3.x templates print today's date with {@code strftime_now("%d %b %Y")}). Covers the
 * C89 directives plus glibc's {@code %-d}-style no-padding flag; an unknown directive is an error, not silent text.
 */
final class PythonStrftime {

    private PythonStrftime() {
    }

    static String format(String format, ZonedDateTime time) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < format.length(); i++) {
            char c = format.charAt(i);
            if (c != '%') {
                out.append(c);
                continue;
            }
            if (i + 1 >= format.length()) {
                throw new IllegalArgumentException("strftime format ends with a lone '%': " + format);
            }
            char directive = format.charAt(++i);
            boolean unpadded = false;
            if (directive == '-' && i + 1 < format.length()) {
                unpadded = true;
                directive = format.charAt(++i);
            }
            String text = directive(directive, time, format);
            out.append(unpadded ? stripLeadingZeros(text) : text);
        }
        return out.toString();
    }

    private static String directive(char directive, ZonedDateTime t, String format) {
        return switch (directive) {
            case 'a' -> pattern("EEE", t);
            case 'A' -> pattern("EEEE", t);
            case 'b', 'h' -> pattern("MMM", t);
            case 'B' -> pattern("MMMM", t);
            case 'd' -> two(t.getDayOfMonth());
            case 'e' -> String.format("%2d", t.getDayOfMonth());
            case 'H' -> two(t.getHour());
            case 'I' -> two(t.getHour() % 12 == 0 ? 12 : t.getHour() % 12);
            case 'j' -> String.format("%03d", t.getDayOfYear());
            case 'm' -> two(t.getMonthValue());
            case 'M' -> two(t.getMinute());
            case 'p' -> t.getHour() < 12 ? "AM" : "PM";
            case 'S' -> two(t.getSecond());
            case 'f' -> String.format("%06d", t.getNano() / 1000);
            case 'y' -> two(t.getYear() % 100);
            case 'Y' -> Integer.toString(t.getYear());
            case 'w' -> Integer.toString(t.getDayOfWeek().getValue() % 7);
            case 'u' -> Integer.toString(t.getDayOfWeek().getValue());
            case 'z' -> pattern("xx", t);
            case 'Z' -> pattern("zzz", t);
            case 'F' -> pattern("yyyy-MM-dd", t);
            case 'T' -> pattern("HH:mm:ss", t);
            case 'D' -> pattern("MM/dd/yy", t);
            case 'R' -> pattern("HH:mm", t);
            case 'c' -> pattern("EEE MMM ppd HH:mm:ss yyyy", t);
            case 'x' -> pattern("MM/dd/yy", t);
            case 'X' -> pattern("HH:mm:ss", t);
            case 'n' -> "\n";
            case 't' -> "\t";
            case '%' -> "%";
            default -> throw new IllegalArgumentException(
                    "strftime directive %" + directive + " is not supported (format: " + format + ")");
        };
    }

    private static String pattern(String pattern, ZonedDateTime t) {
        return DateTimeFormatter.ofPattern(pattern, Locale.ENGLISH).format(t);
    }

    private static String two(int value) {
        return String.format("%02d", value);
    }

    private static String stripLeadingZeros(String text) {
        String stripped = text.replaceFirst("^[0 ]+(?=\\d)", "");
        return stripped.isEmpty() ? "0" : stripped;
    }
}
