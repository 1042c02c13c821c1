#!/usr/bin/env python3
"""Where the exporter's heap goes at 10,000 identities: valgrind's massif records the
debug build (for symbols; its data structures are the release build's) through
several cycles at a raised rate with scrapes, then the heap at its peak is printed by
allocation site, each named by the first of our functions (or a library's) that asks
for it. Heap only: the binary's own pages and thread stacks are in
scripts/measure-rss.sh's anon/file split. Loopback only; bounded (about 60 s).
Usage: bench/profile_memory.py [N]"""

import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
DEBUG = os.path.join(bench.ROOT, "target/debug/ses-identity-exporter")
OWNERS = re.compile(r"(ses_identity_exporter::[A-Za-z_:<>]+|aws_[a-z_]+::|hyper::|tokio::|rustls::|serde_yaml::|regex[a-z_]*::|clap[a-z_]*::)")


def heap_at_peak(n):
    """(peak snapshot's heap bytes, [(bytes, share, owner)]) for n identities."""
    subprocess.run(["cargo", "build", "--locked", "--bin", "ses-identity-exporter"], cwd=bench.ROOT, check=True)
    out = os.path.join(tempfile.gettempdir(), "ses-exporter.massif")
    with tempfile.TemporaryDirectory() as tmp:
        double, url = bench.start_double(tmp, n, 0)
        port = bench.free_port()
        cfg = os.path.join(tmp, "config.yaml")
        with open(cfg, "w") as f:
            f.write("identities:\n" + "".join(f"  - {i}\n" for i in bench.ids(n)))
        cmd = ["valgrind", "--tool=massif", f"--massif-out-file={out}", DEBUG,
               "--web.listen-address", f"127.0.0.1:{port}", "--config.file", cfg,
               "--ses.rate", "200", "--poll.interval", "5s", "--log.level", "warn", "--no-collector.dns"]
        exp = bench.PROCS.start(cmd, env=bench.aws_env(tmp, url), stderr=subprocess.DEVNULL)
        bench.wait_healthy(port, 60)
        end = time.monotonic() + 45
        while time.monotonic() < end:
            try:
                bench.http_get(f"http://127.0.0.1:{port}/metrics", {"Accept-Encoding": "gzip"})
                bench.http_get(f"http://127.0.0.1:{port}/metrics")
            except OSError:
                pass
            time.sleep(1)
        exp.send_signal(2)
        exp.wait(30)
        bench.PROCS.stop_all()
    text = subprocess.run(["ms_print", "--threshold=1", out], capture_output=True, text=True, check=True).stdout
    peak = int(re.search(r"Detailed snapshots: \[.*?(\d+) \(peak\)", text).group(1))
    section = text[text.index(f"\n{peak:>3} "):]
    total = re.search(r"^\s*\d+\s+[\d,]+\s+([\d,]+)", section, re.M).group(1)
    rows = []
    # Each top-level entry starts with "->"; its owner is the first named frame below it.
    tree = section.split("\n", 3)[3]
    tree = tree[: tree.find("\n----")] if "\n----" in tree else tree
    entries = re.split(r"\n->", "\n" + tree)
    for entry in entries[1:]:
        head = re.match(r"([\d.]+)% \(([\d,]+)B\)", entry)
        if not head:
            continue
        owner = next((m.group(1) for m in OWNERS.finditer(entry)), "(below threshold or runtime)")
        rows.append((head.group(2), head.group(1), owner))
    return total, rows


def report(n):
    """Markdown lines of the heap at its peak."""
    total, rows = heap_at_peak(n)
    lines = [f"Heap at its peak, {n:,} identities: {total} bytes, allocator overhead included.", "",
             "| bytes | share | first owner on the allocation's stack |", "|---:|---:|---|"]
    lines += [f"| {b} | {share} % | `{owner}` |" for b, share, owner in rows]
    return lines


def main():
    print("\n".join(report(N)))


if __name__ == "__main__":
    main()
