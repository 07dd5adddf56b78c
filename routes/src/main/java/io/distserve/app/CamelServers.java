package io.distserve.app;

import io.vertx.core.VertxOptions;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.apache.camel.main.Main;

/** What every distserve server (engine node, proxy) sets up the same way on Camel Main. */
final class CamelServers {

    /**
     * Each streamed response of an engine node holds a Vert.x worker thread until its last token (platform-http runs
     * the route in executeBlocking), so the pool bounds the number of concurrent streams. The proxy's routes run on
     * the event loop instead (EventLoopHttpEngine); its threads steps use a pool of this size (proxyBlocking), since
     * a DistServe stream holds one of its threads to the end.
     */
    static final int WORKER_THREADS = 512;

    private CamelServers() {
    }

    static Main newMain(Class<?> mainClass, String host, int port, String routes, Path propertiesFile) {
        Main main = new Main(mainClass);
        main.configure().withRoutesIncludePattern(routes);
        main.configure().httpServer().withEnabled(true).withHost(host).withPort(port);
        if (propertiesFile != null) {
            // The first location that has a key wins (one properties source per location), so the user's file
            // comes first: it overrides the defaults, as --properties says.
            main.setPropertyPlaceholderLocations("file:" + propertiesFile + ",classpath:application.properties");
        }
        main.bind("vertxOptions", new VertxOptions()
                // epoll through Netty's JNI transport where it loads (Linux x86-64), else the JDK's NIO
                .setPreferNativeTransport(true)
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
