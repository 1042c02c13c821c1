#!/usr/bin/env python3
"""Scrape throughput of two exporter builds in one session, alternating, so a change
is told apart from the machine's mood: `bench/ab_scrape.py OLD NEW [RUNS]` runs
bench.py's scrape bench (10,000 identities, one 10 s round per encoding, beside nginx)
and its web-config bench (basic auth, TLS) for each binary in turn and prints a
Markdown table. Uses the ses-double of target/release."""

import sys

import bench


def main():
    old, new = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    rows = []
    try:
        for run in range(runs):
            for label, binary in (("before", old), ("after", new)):
                bench.EXPORTER = binary
                scrape, _ = bench.bench_scrape(10000, 10, 1)
                auth = bench.bench_scrape_auth(10000, 10, 1)
                for r in scrape:
                    rows.append((label, run, r["encoding"], "open", r["exporter_rps"], r["rps_ratio"], r["exporter_p99_ms"]))
                for r in auth:
                    if r["server"].startswith("exporter"):
                        rows.append((label, run, r["encoding"], r["server"].removeprefix("exporter, "), r["rps"], None, r["p99_ms"]))
                print(f"run {run} {label} done", file=sys.stderr, flush=True)
    finally:
        bench.PROCS.stop_all()
    print("| binary | run | encoding | web config | req/s | × nginx | p99 ms |")
    print("|---|---:|---|---|---:|---:|---:|")
    for label, run, enc, web, rps, ratio, p99 in sorted(rows, key=lambda r: (r[2], r[3], r[1], r[0] != "before")):
        print(f"| {label} | {run + 1} | {enc} | {web} | {rps:,.0f} | {'' if ratio is None else f'{ratio:.2f}'} | {p99:.2f} |")


if __name__ == "__main__":
    main()
