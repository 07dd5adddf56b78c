package io.distserve.app;

import io.distserve.registry.consul.ConsulSettings;
import java.time.Duration;
import java.util.function.Function;
import org.apache.camel.spi.PropertiesComponent;

/** Reads the {@code distserve.consul.*} keys of application.properties (Consul durations: "5s", "1m", "500ms"). */
final class ConsulProperties {

    private ConsulProperties() {
    }

    static ConsulSettings read(PropertiesComponent props) {
        ConsulSettings d = ConsulSettings.DEFAULTS;
        return new ConsulSettings(
                duration(props, "distserve.consul.checkInterval", d.checkInterval()),
                duration(props, "distserve.consul.checkTimeout", d.checkTimeout()),
                duration(props, "distserve.consul.deregisterCriticalServiceAfter", d.deregisterAfter()),
                duration(props, "distserve.consul.syncInterval", d.syncInterval()),
                duration(props, "distserve.consul.wait", d.blockingWait()),
                duration(props, "distserve.consul.requestTimeout", d.requestTimeout()),
                props.resolveProperty("distserve.consul.failuresBeforeCritical").map(String::trim)
                        .map(Integer::parseInt).orElse(d.failuresBeforeCritical()));
    }

    private static Duration duration(PropertiesComponent props, String key, Duration dflt) {
        Function<String, Duration> parse = text -> {
            try {
                return ConsulSettings.parseDuration(text);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(key + ": " + e.getMessage(), e);
            }
        };
        return props.resolveProperty(key).map(parse).orElse(dflt);
    }
}
