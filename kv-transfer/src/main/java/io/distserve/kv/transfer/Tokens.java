package io.distserve.kv.transfer;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.HexFormat;

/** Per-transport secrets a peer must present. */
public final class Tokens {

    private Tokens() {
    }

    /** 256 random bits, hex: unguessable, and plain ASCII so it survives JSON untouched. */
    public static String newToken(SecureRandom random) {
        byte[] b = new byte[32];
        random.nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    /** Constant-time comparison, so response timing does not leak how much of a guess was right. */
    public static boolean matches(byte[] expected, byte[] presented) {
        return MessageDigest.isEqual(expected, presented);
    }

    public static byte[] bytes(String token) {
        return token.getBytes(StandardCharsets.UTF_8);
    }
}
