package io.distserve.kv.transfer;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.ServiceLoader;

/**
 * Transports by name. An instance, not a static table, so tests and engines each get their own. Immutable once
 * built.
 */
public final class TransportRegistry {

    private final Map<String, TransportProvider> providers;

    private TransportRegistry(Map<String, TransportProvider> providers) {
        this.providers = Collections.unmodifiableMap(providers);
    }

    /** The given providers; a duplicate name is an error. */
    public static TransportRegistry of(TransportProvider... list) {
        Map<String, TransportProvider> map = new LinkedHashMap<>();
        for (TransportProvider p : list) {
            String key = p.name().toLowerCase(Locale.ROOT);
            if (map.putIfAbsent(key, p) != null) {
                throw new IllegalArgumentException("two transport providers named " + key);
            }
        }
        return new TransportRegistry(map);
    }

    /** Every provider on the class path ({@code META-INF/services/io.distserve.kv.transfer.TransportProvider}). */
    public static TransportRegistry discover() {
        return discover(Thread.currentThread().getContextClassLoader());
    }

    public static TransportRegistry discover(ClassLoader loader) {
        List<TransportProvider> found = new ArrayList<>();
        ServiceLoader.load(TransportProvider.class, loader).forEach(found::add);
        return of(found.toArray(new TransportProvider[0]));
    }

    /** Names of all known transports, available or not. */
    public List<String> names() {
        return List.copyOf(providers.keySet());
    }

    /** Names of the transports that can run here (what {@code engine_info} offers). */
    public List<String> availableNames() {
        return providers.values().stream().filter(TransportProvider::isAvailable).map(TransportProvider::name)
                .toList();
    }

    public Optional<TransportProvider> provider(String name) {
        return Optional.ofNullable(name == null ? null : providers.get(name.toLowerCase(Locale.ROOT)));
    }

    /**
     * A new transport of that name.
     *
     * @throws TransportUnavailableException unknown name, or the provider is unavailable (message gives the reason)
     */
    public KvTransport create(String name, TransportOptions options) {
        TransportProvider p = provider(name).orElseThrow(() -> new TransportUnavailableException(
                "unknown transport '" + name + "'; known: " + names()));
        if (!p.isAvailable()) {
            throw new TransportUnavailableException("transport '" + p.name() + "' is unavailable: "
                    + p.unavailableReason().orElse("no reason given"));
        }
        return p.create(options);
    }
}
