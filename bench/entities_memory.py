#!/usr/bin/env python3
"""What the reputation_entities collector costs: peak RSS, series and body size of one
target whose account has N reputation entities (10,000 identities and 100 tenants by
default), with --collector.reputation_entities and --collector.account on and the
identity collectors off, against the same run with no entities; then every SES
collector on with as many identities. The ses-double and
exporter of target/release (or EXPORTER=..., DOUBLE=...).
`bench/entities_memory.py [IDENTITIES] [TENANTS]`."""

import json
import os
import sys
import tempfile
import time
import urllib.request

import bench

ACCOUNT = "123456789012"


def put_entities(url, identities, tenants):
    items = [
        {"reference": f"arn:aws:ses:us-east-1:{ACCOUNT}:identity/id-{i:05}.bench.example", "ses_updated": 1765000000}
        for i in range(identities)
    ] + [
        {"reference": f"arn:aws:ses:us-east-1:{ACCOUNT}:tenant/tenant-{t:03}/tn-{t:06}", "ses_updated": 1765000000}
        for t in range(tenants)
    ]
    req = urllib.request.Request(
        f"{url}/_double/reputation-entities", data=json.dumps(items).encode(), method="PUT",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=60).read()


def run(identities, tenants, every=False):
    with tempfile.TemporaryDirectory() as tmp:
        double, url = bench.start_double(tmp, identities if every else 0, 0)
        put_entities(url, identities, tenants)
        args = ["--ses.rate", "1000", "--poll.interval", "3s",
                "--collector.account", "--collector.reputation_entities"]
        if every:
            # Every SES collector: the identities of the double's seed.
            args += ["--collector.dkim", "--collector.verification", "--collector.identity_reasons"]
        else:
            args += ["--no-collector.mail_from"]
        exp, port = bench.start_exporter(tmp, url, args)
        bench.wait_healthy(port)
        seen = set()
        end = time.monotonic() + 300
        while time.monotonic() < end and len(seen) < 3:
            m = bench.metrics(port)
            bench.http_get(f"http://127.0.0.1:{port}/metrics", {"Accept-Encoding": "gzip"})
            ts = m.get("aws_ses_exporter_last_success_timestamp_seconds")
            if ts is not None:
                seen.add(ts)
            time.sleep(0.2)
        plain = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60).read()
        _, gz = bench.http_get(f"http://127.0.0.1:{port}/metrics", {"Accept-Encoding": "gzip"})
        lines = plain.decode().splitlines()
        entity_series = sum(1 for l in lines if l.startswith("aws_ses_reputation_entit"))
        row = {
            "every_ses_collector": every,
            "series": sum(1 for l in lines if l and not l.startswith("#")),
            "entities": identities + tenants,
            "peak_rss_kib": bench.rss_kib(exp.pid),
            "anon_kib": bench.rss_kib(exp.pid, "RssAnon"),
            "entity_series": entity_series,
            "plain_bytes": len(plain),
            "gzip_bytes": len(gz),
        }
        bench.PROCS.stop(exp)
        bench.PROCS.stop(double)
        return row


def main():
    identities = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    tenants = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    bench.EXPORTER = os.environ.get("EXPORTER", bench.EXPORTER)
    bench.DOUBLE = os.environ.get("DOUBLE", bench.DOUBLE)
    try:
        for row in (run(0, 0), run(identities, tenants), run(identities, tenants, every=True)):
            print(json.dumps(row))
    finally:
        bench.PROCS.stop_all()


if __name__ == "__main__":
    main()
