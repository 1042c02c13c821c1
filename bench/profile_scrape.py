#!/usr/bin/env python3
"""Where a gzip scrape's time goes: perf (software cpu-clock; this machine has no
hardware counters) samples the release exporter at 10,000 identities for 5 s while
wrk (-t1 -c10, Accept-Encoding: gzip) loads it, then prints the top of the profile by
DSO and by symbol. Loopback only; bounded by wrk's 8 s. Needs perf (linux-perf).
Usage: bench/profile_scrape.py"""

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

out = os.path.join(tempfile.gettempdir(), "ses-exporter-scrape.perf")
try:
    with tempfile.TemporaryDirectory() as tmp:
        double, url = bench.start_double(tmp, 10000, 0)
        exp, port = bench.start_exporter(tmp, url, ["--ses.rate", "500", "--poll.interval", "1h"], bench.ids(10000))
        bench.wait_healthy(port)
        bench.wait_metric(
            port,
            lambda m: m.get("aws_ses_exporter_identities") == 10000
            and "aws_ses_exporter_last_success_timestamp_seconds" in m,
            120,
            "identities",
        )
        wrk = subprocess.Popen(
            f"wrk -t1 -c10 -d8s --latency -H 'Accept-Encoding: gzip' http://127.0.0.1:{port}/metrics",
            shell=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1)
        subprocess.run(
            ["perf", "record", "-e", "cpu-clock", "-F", "2000", "-g", "-o", out, "-p", str(exp.pid), "--", "sleep", "5"],
            capture_output=True,
            check=True,
        )
        print(wrk.communicate()[0])
finally:
    bench.PROCS.stop_all()
for sort in ("dso", "sym"):
    report = subprocess.run(
        ["perf", "report", "-i", out, "--stdio", "--no-children", "-g", "none", "--sort", sort],
        capture_output=True,
        text=True,
    ).stdout
    print("\n".join(l for l in report.splitlines() if "%" in l and not l.startswith("#"))[:1500])
