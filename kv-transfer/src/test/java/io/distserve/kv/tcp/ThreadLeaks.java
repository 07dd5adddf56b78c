package io.distserve.kv.tcp;

import java.util.List;

/** Live threads of the tcp transport, found by their name prefix. */
final class ThreadLeaks {

    static final String PREFIX = "kv-tcp-";

    private ThreadLeaks() {
    }

    static List<String> live() {
        return Thread.getAllStackTraces().keySet().stream().filter(Thread::isAlive).map(Thread::getName)
                .filter(n -> n.startsWith(PREFIX)).sorted().toList();
    }
}
