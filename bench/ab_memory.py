#!/usr/bin/env python3
"""Peak RSS of two exporter builds at 10,000 identities, alternating (the order
swapped every round): `bench/ab_memory.py OLD NEW [RUNS]` runs bench.py's memory
bench (three cycles with plain and gzip scrapes) RUNS times (default 5) for each and
prints every run and the medians, so a change of a MiB can be told from the noise.
Uses the ses-double of target/release."""

import statistics
import sys

import bench


def main():
    old, new = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    res = {"before": [], "after": []}
    try:
        for r in range(runs):
            order = (("before", old), ("after", new))
            for label, binary in order if r % 2 == 0 else reversed(order):
                bench.EXPORTER = binary
                res[label].append(bench.bench_memory([10000])[0]["peak_rss_kib"])
                print(label, res[label][-1], file=sys.stderr, flush=True)
    finally:
        bench.PROCS.stop_all()
    for label, values in res.items():
        print(f"{label}: {', '.join(f'{v:,}' for v in values)} KiB; median {statistics.median(values):,} KiB")


if __name__ == "__main__":
    main()
