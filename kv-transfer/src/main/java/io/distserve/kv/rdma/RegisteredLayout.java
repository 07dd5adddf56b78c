package io.distserve.kv.rdma;

import io.distserve.kv.transfer.RegionLayout;
import java.util.List;

/**
 * A pool as the NIC sees it: its layout of memory regions, and each region's address and keys (this engine's, or
 * as a peer published them). READs are planned so that none crosses a region's end.
 */
record RegisteredLayout(RegionLayout layout, List<RdmaVerbs.Segment> segments) {

    RegisteredLayout {
        segments = List.copyOf(segments);
        if (segments.size() != layout.segmentCount()) {
            throw new IllegalArgumentException(segments.size() + " memory regions for " + layout.segmentCount()
                    + " segments");
        }
    }

    /** The address of pool offset {@code offset} and the keys of the region holding it. */
    RdmaVerbs.Segment at(long offset) {
        int i = layout.segmentOf(offset);
        RdmaVerbs.Segment s = segments.get(i);
        return new RdmaVerbs.Segment(s.address() + (offset - layout.segmentStart(i)), s.lkey(), s.rkey());
    }
}
