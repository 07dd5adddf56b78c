#!/usr/bin/env python3
"""Per-step, per-kernel time from an Nsight Compute CSV (metric gpu__time_duration.sum) of an eager engine run.

Steps are cut at each embedding_gather launch (the first kernel of every forward step). Prints every step's kernel
time and launch count, then a per-kernel table of the first step (the prefill) and of the last (a decode step, or the
prefill's follow-up), so that a step's kernel time can be set against its time with graphs in the bench."""
import collections
import csv
import sys


def main(path):
    rows = [l for l in open(path, errors="replace") if l.startswith('"')]
    launches = []
    for row in csv.DictReader(rows):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        name = row["Kernel Name"].split("(")[0]
        key = f'{name} grid{row.get("Grid Size", "")} blk{row.get("Block Size", "")}'
        launches.append((int(row["ID"]), name, key, float(row["Metric Value"].replace(",", "")) / 1e3))
    launches.sort()
    if not launches:
        print("no kernels in", path)
        return
    steps, cur = [], None
    for _, name, key, us in launches:
        if name == "embedding_gather":
            cur = []
            steps.append(cur)
        if cur is not None:
            cur.append((key, us))
    print(f"{len(launches)} launches, {len(steps)} steps; kernel time per step (us / launches): "
          + ", ".join(f"{sum(u for _, u in s):.0f}/{len(s)}" for s in steps))
    for label, step in (("first step", steps[0]), ("last step", steps[-1])):
        agg = collections.defaultdict(lambda: [0.0, 0])
        for key, us in step:
            agg[key][0] += us
            agg[key][1] += 1
        tot = sum(v[0] for v in agg.values())
        print(f"-- {label}: {tot:.1f} us kernel time over {len(step)} launches")
        for key, (us, n) in sorted(agg.items(), key=lambda kv: -kv[1][0])[:24]:
            print(f"{us:10.1f} us {100 * us / tot:5.1f}% {n:5d} x {us / n:8.2f} us  {key}")


if __name__ == "__main__":
    main(sys.argv[1])
