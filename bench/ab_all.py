#!/usr/bin/env python3
"""Two exporter builds in one session, alternating, for what a refactoring must not
move: `bench/ab_all.py OLD NEW [RUNS]` runs bench.py's refresh (1,000 and 10,000
identities at 50/s), peak RSS (10,000 identities, three cycles with scrapes),
start-up (10 starts) and scrape (10,000 identities beside nginx, plain and gzip)
for each binary in turn, RUNS times (default 2), and prints a Markdown table with
every run, so the noise between runs of one binary is seen beside the difference
between binaries. Uses the ses-double of target/release."""

import statistics
import sys

import bench


def one(binary):
    bench.EXPORTER = binary
    out = {}
    for r in bench.bench_refresh([1000, 10000], 50):
        out[f"refresh ratio {r['n']:,}"] = r["ratio"]
    out["peak RSS 10,000 (KiB)"] = bench.bench_memory([10000])[0]["peak_rss_kib"]
    med, _ = bench.bench_startup(10)
    out["start-up median (ms)"] = med
    scrape, _ = bench.bench_scrape(10000, 10, 1)
    for r in scrape:
        out[f"scrape {r['encoding']} exporter/nginx"] = r["rps_ratio"]
    return out


def main():
    old, new = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    results = {"before": [], "after": []}
    try:
        for run in range(runs):
            for label, binary in (("before", old), ("after", new)):
                results[label].append(one(binary))
                print(f"run {run} {label} done", file=sys.stderr, flush=True)
    finally:
        bench.PROCS.stop_all()
    keys = list(results["before"][0])
    print("| measure | " + " | ".join(f"before {i + 1}" for i in range(runs)) + " | "
          + " | ".join(f"after {i + 1}" for i in range(runs)) + " | after / before (medians) |")
    print("|---|" + "---:|" * (2 * runs + 1))
    for k in keys:
        b = [r[k] for r in results["before"]]
        a = [r[k] for r in results["after"]]
        cells = [f"{v:,.3f}" if v < 100 else f"{v:,.0f}" for v in b + a]
        print(f"| {k} | " + " | ".join(cells) + f" | {statistics.median(a) / statistics.median(b):.3f} |")


if __name__ == "__main__":
    main()
