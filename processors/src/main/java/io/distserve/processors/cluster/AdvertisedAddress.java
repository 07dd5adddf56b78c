package io.distserve.processors.cluster;

import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;

/**
 * The address other nodes should use to reach this one. A server bound to a wildcard (0.0.0.0 or ::) must never
 * advertise it: we take the local address of the route towards the proxy (a connected UDP socket sends nothing),
 * else the host's own address.
 */
public final class AdvertisedAddress {

    private AdvertisedAddress() {
    }

    public static String host(String bindHost, URI towards) {
        try {
            InetAddress bind = InetAddress.getByName(bindHost);
            if (!bind.isAnyLocalAddress()) {
                return bindHost;
            }
            if (towards != null && towards.getHost() != null) {
                try (DatagramSocket probe = new DatagramSocket()) {
                    probe.connect(new InetSocketAddress(towards.getHost(), towards.getPort() > 0 ? towards.getPort() : 80));
                    InetAddress local = probe.getLocalAddress();
                    if (local != null && !local.isAnyLocalAddress()) {
                        return literal(local);
                    }
                }
            }
            return literal(InetAddress.getLocalHost());
        } catch (Exception e) {
            return "127.0.0.1";
        }
    }

    private static String literal(InetAddress a) {
        String s = a.getHostAddress();
        return s.contains(":") ? "[" + s + "]" : s;
    }
}
