#!/usr/bin/env python3
"""Scrape ratios only (10,000 identities beside nginx, one 10 s round per encoding),
two builds alternating with the order swapped every round:
`bench/ab_scrape_pairs.py OLD NEW`. Prints each build's exporter/nginx req/s ratios
and p99 per encoding. Uses the ses-double of target/release."""
import sys, statistics
import bench
res = {("before", "plain"): [], ("before", "gzip"): [], ("after", "plain"): [], ("after", "gzip"): []}
p99 = {k: [] for k in res}
try:
    for r in range(6):
        order = (("before", sys.argv[1]), ("after", sys.argv[2]))
        for label, binary in (order if r % 2 == 0 else tuple(reversed(order))):
            bench.EXPORTER = binary
            scrape, _ = bench.bench_scrape(10000, 10, 1)
            for row in scrape:
                res[(label, row["encoding"])].append(round(row["rps_ratio"], 3))
                p99[(label, row["encoding"])].append(round(row["exporter_p99_ms"], 2))
            print(label, "done", file=sys.stderr, flush=True)
finally:
    bench.PROCS.stop_all()
for k, v in res.items():
    print(k, v, "median", statistics.median(v), "p99 ms", p99[k])
