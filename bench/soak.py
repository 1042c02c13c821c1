#!/usr/bin/env python3
"""Soak: the release exporter under steady scrapes while the SES double's faults flip
every 30 s (503, throttling, resets, malformed XML, answers slower than the timeout,
AccessDenied, none), for a bounded time (default 10 minutes). Samples resident memory
and open file descriptors every 5 s and reports whether they stay flat; counts scrape
failures. Loopback only; every process stops at the end. Not part of CI.

Usage: bench/soak.py [--seconds 600] [--out docs/soak.md]"""

import argparse
import os
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

FAULTS = [
    ("none", "{}"),
    ("HTTP 503", '{"error_status": 503}'),
    ("throttling", '{"throttle_all": true}'),
    ("reset mid-response", '{"reset": true}'),
    ("malformed XML", '{"malformed": true}'),
    ("slower than --ses.timeout", '{"delay_ms": 2500}'),
    ("AccessDenied", '{"access_denied": true}'),
]
CLEAR = '{"reset": false, "malformed": false, "error_status": 0, "delay_ms": 0, "throttle_all": false, "access_denied": false}'
N = 1000


def control(url, faults):
    req = urllib.request.Request(f"{url}/_double/faults", data=faults.encode(), method="PUT",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


def sample(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = int(next(line for line in f if line.startswith("VmRSS")).split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--out", default=os.path.join(bench.ROOT, "docs/soak.md"))
    a = ap.parse_args()
    import subprocess
    subprocess.run(["cargo", "build", "--release", "--locked", "--bins"], cwd=bench.ROOT, check=True)
    import tempfile
    stop = threading.Event()
    scrapes = {"ok": 0, "failed": 0}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            double, url = bench.start_double(tmp, N, 0)
            # Discovery (no config file) so ListIdentities meets the faults too.
            exp, port = bench.start_exporter(tmp, url, ["--poll.interval", "5s", "--ses.rate", "50",
                                                        "--ses.timeout", "1s", "--discovery.interval", "20s"])
            bench.wait_healthy(port)
            bench.wait_metric(port, lambda m: m.get("aws_ses_exporter_identities", 0) >= N, 120, "identities")

            def scraper():
                while not stop.is_set():
                    for headers in ({}, {"Accept-Encoding": "gzip"}):
                        try:
                            status, _ = bench.http_get(f"http://127.0.0.1:{port}/metrics", headers, timeout=10)
                            scrapes["ok" if status == 200 else "failed"] += 1
                        except OSError:
                            scrapes["failed"] += 1
                    time.sleep(0.05)

            threads = [threading.Thread(target=scraper) for _ in range(2)]
            for t in threads:
                t.start()
            samples = []
            start = time.monotonic()
            flips = []
            i = 0
            while time.monotonic() - start < a.seconds:
                name, faults = FAULTS[i % len(FAULTS)]
                control(url, CLEAR)
                control(url, faults)
                flips.append(name)
                i += 1
                flip_end = min(start + a.seconds, time.monotonic() + 30)
                while time.monotonic() < flip_end:
                    samples.append((time.monotonic() - start, *sample(exp.pid)))
                    time.sleep(5)
            control(url, CLEAR)
            stop.set()
            for t in threads:
                t.join(30)
            m = bench.wait_metric(port, lambda m: m.get("aws_ses_exporter_up") == 1, 60, "recovery after the soak")
            alive = exp.poll() is None
            bench.PROCS.stop_all()
    finally:
        stop.set()
        bench.PROCS.stop_all()

    # Flat: after the first minute (warm-up: first cycles, thread pools), compare the
    # first and last thirds.
    warm = [s for s in samples if s[0] >= 60] or samples
    third = max(1, len(warm) // 3)
    rss_first = max(s[1] for s in warm[:third])
    rss_last = max(s[1] for s in warm[-third:])
    fd_first = max(s[2] for s in warm[:third])
    fd_last = max(s[2] for s in warm[-third:])
    lines = [
        "# Soak",
        "",
        f"Made by `bench/soak.py --seconds {a.seconds}` on {time.strftime('%Y-%m-%d')}, on {bench.machine()}: the release "
        f"exporter watching {N:,} discovered identities of the SES double (`--poll.interval 5s --ses.rate 50 "
        "--ses.timeout 1s --discovery.interval 20s`), two scrapers (plain and gzip, about 20 scrapes/s each), "
        "the double's fault flipping every 30 s through: " + ", ".join(dict.fromkeys(name for name, _ in FAULTS)) + ".",
        "",
        "| | value |",
        "|---|---:|",
        f"| duration | {a.seconds} s, {len(flips)} fault flips |",
        f"| scrapes answered 200 / failed | {scrapes['ok']:,} / {scrapes['failed']:,} |",
        f"| RSS after warm-up: highest in the first third / last third (MiB) | {rss_first / 1024:.1f} / {rss_last / 1024:.1f} |",
        f"| RSS lowest / highest after warm-up (MiB) | {min(s[1] for s in warm) / 1024:.1f} / {max(s[1] for s in warm) / 1024:.1f} |",
        f"| open file descriptors: highest in the first third / last third | {fd_first} / {fd_last} |",
        f"| process alive at the end, up = 1 after the faults cleared | {alive}, {m.get('aws_ses_exporter_up') == 1} |",
        "",
        "Samples (seconds, RSS KiB, fds), every 5 s:",
        "",
        "```",
    ] + [f"{t:6.0f} {rss:8d} {fds:4d}" for t, rss, fds in samples] + ["```", ""]
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines[:14]))


if __name__ == "__main__":
    main()
