package io.distserve.kv.rdma;

import io.distserve.kv.transfer.TransportOptions;
import java.util.Map;

/**
 * The rdma transport's settings, from {@link TransportOptions#extra()} (and {@code streamsPerConnection}: the queue
 * pairs of a connection, as it is tcp's sockets). A bad value fails when the transport is made, naming the key.
 *
 * @param linkType         {@value #LINK_TYPE}: RoCE or IB (the proxy's --link-type)
 * @param disableGdr       {@value #DISABLE_GDR}: never let the NIC touch GPU memory: stage both ways (--disable-gdr)
 * @param maxMessageBytes  {@value #MAX_MESSAGE}: the NIC's max_msg_sz (1 GiB), where READs are split
 * @param signalEvery      {@value #SIGNAL_EVERY}: a signalled READ at least every this many (64: half the send queue)
 * @param queuePairs       queue pairs per connection; one migration's READs are striped over them
 * @param minStripeBytes   {@value #MIN_STRIPE}: no queue pair's share of a batch is cut smaller (1 MiB)
 * @param maxMrBytes       {@value #MAX_MR}: the largest memory region a pool is registered in (1 GiB)
 * @param stagingSlots     {@value #STAGING_SLOTS}: pinned slots per staging channel and per landing ring (4)
 * @param stagingSlotBytes {@value #STAGING_SLOT_BYTES}: the size of each (16 MiB)
 */
record RdmaOptions(String linkType, boolean disableGdr, long maxMessageBytes, int signalEvery, int queuePairs,
                   long minStripeBytes, long maxMrBytes, int stagingSlots, int stagingSlotBytes) {

    static final String LINK_TYPE = "rdma.linkType";
    static final String DISABLE_GDR = "rdma.disableGdr";
    static final String MAX_MESSAGE = "rdma.maxMessageBytes";
    static final String SIGNAL_EVERY = "rdma.signalEvery";
    static final String MIN_STRIPE = "rdma.minStripeBytes";
    static final String MAX_MR = "rdma.maxMrBytes";
    static final String STAGING_SLOTS = "rdma.stagingSlots";
    static final String STAGING_SLOT_BYTES = "rdma.stagingSlotBytes";

    RdmaOptions {
        if (!"RoCE".equals(linkType) && !"IB".equals(linkType)) {
            throw new IllegalArgumentException(LINK_TYPE + " must be RoCE or IB, got '" + linkType + "'");
        }
        check(MAX_MESSAGE, maxMessageBytes, 1, Integer.MAX_VALUE);
        check(SIGNAL_EVERY, signalEvery, 1, 4096);
        check(MIN_STRIPE, minStripeBytes, 1, Long.MAX_VALUE);
        check(MAX_MR, maxMrBytes, 1, Integer.MAX_VALUE);
        check(STAGING_SLOTS, stagingSlots, 1, StagingProtocol.MAX_SLOTS);
        check(STAGING_SLOT_BYTES, stagingSlotBytes, StagingProtocol.MIN_SLOT_BYTES, StagingProtocol.MAX_SLOT_BYTES);
    }

    static RdmaOptions from(TransportOptions options) {
        Map<String, String> x = options.extra();
        String gdr = x.getOrDefault(DISABLE_GDR, "false").strip();
        if (!gdr.equalsIgnoreCase("true") && !gdr.equalsIgnoreCase("false")) {
            throw new IllegalArgumentException(DISABLE_GDR + " must be true or false, got '" + gdr + "'");
        }
        return new RdmaOptions(x.getOrDefault(LINK_TYPE, "RoCE"), gdr.equalsIgnoreCase("true"),
                number(x, MAX_MESSAGE, 1L << 30), (int) number(x, SIGNAL_EVERY, 64), options.streamsPerConnection(),
                number(x, MIN_STRIPE, 1L << 20), number(x, MAX_MR, PoolRegistration.DEFAULT_MAX_MR_BYTES),
                (int) number(x, STAGING_SLOTS, 4), (int) number(x, STAGING_SLOT_BYTES, 16 << 20));
    }

    /** Entries of each queue pair's send queue: two windows of {@link #signalEvery} requests. */
    int sendDepth() {
        return 2 * signalEvery;
    }

    private static long number(Map<String, String> x, String key, long fallback) {
        String v = x.get(key);
        if (v == null || v.isBlank()) {
            return fallback;
        }
        try {
            return Long.parseLong(v.strip());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(key + " must be an integer, got '" + v + "'");
        }
    }

    private static void check(String key, long value, long min, long max) {
        if (value < min || value > max) {
            throw new IllegalArgumentException(key + " must be in [" + min + ", " + max + "], got " + value);
        }
    }
}
