package io.distserve.app;

import io.vertx.core.VertxOptions;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.apache.camel.main.Main;

/** What every distserve server (engine node, proxy) sets up the same way on Camel Main. */
final class CamelServers {

    /**
     * Each streamed response holds a Vert.x worker thread until its last token (platform-http runs the route in
     * executeBlocking), so the pool bounds the number of concurrent streams.
     */
    static final int WORKER_THREADS = 512;

    private CamelServers() {
    }

    static Main newMain(Class<?> mainClass, String host, int port, String routes, Path propertiesFile) {
        Main main = new Main(mainClass);
        main.configure().withRoutesIncludePattern(routes);
        main.configure().httpServer().withEnabled(true).withHost(host).withPort(port);
        if (propertiesFile != null) {
            // the first location that has a key wins (Camel), so the user's file comes first
            main.setPropertyPlaceholderLocations("file:" + propertiesFile + ",classpath:application.properties");
        }
        main.bind("vertxOptions", new VertxOptions()
                .setWorkerPoolSize(WORKER_THREADS)
                // a long generation is not a blocked thread
                .setMaxWorkerExecuteTime(1).setMaxWorkerExecuteTimeUnit(TimeUnit.HOURS));
        return main;
    }

    static String routes(String replace, String extra, String builtIn) {
        String base = replace != null ? replace : builtIn;
        return extra == null ? base : base + "," + extra;
    }
}
