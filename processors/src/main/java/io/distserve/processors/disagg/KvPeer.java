package io.distserve.processors.disagg;

import io.distserve.engine.kv.KvCacheLayout;
import io.distserve.kv.transfer.Connection;
import io.distserve.kv.transfer.EndpointInfo;
import java.net.URI;

/**
 * A prefill engine this (decode) engine is connected to: its HTTP address (for acknowledgements), its KV layout
 * (checked compatible at connect time) and the open transfer connection.
 */
record KvPeer(String engineId, URI url, KvCacheLayout layout, EndpointInfo endpoint, Connection connection) {
}
