#!/usr/bin/env python3
"""One round of the dns collector at its default budget (--dns.concurrency 4,
--dns.timeout 5s) over N identities with every check on: the MAIL FROM domain's MX
and TXT records and SPF evaluated for SES (amazonses.com's record served), the
three Easy DKIM CNAMEs (the dkim collector on), the DMARC record. Answered by the
loopback DNS server (tests/dns/server.py, zones read once), which logs every query.

Reports the DNS queries of the first round by type and name kind, the round's wall
time (first query to the last identity's DMARC answer published), and the exporter's
CPU and peak RSS. Usage: python3 bench/dns_round.py [N] (default 10,000). Uses the
binaries of target/release.

Environment: DNS_DELAY_MS (default 0) makes the loopback server answer each of the
estate's names that much later, as a recursive resolver's cache misses do (the round
then takes queries x delay / --dns.concurrency when that is above the interval);
DNS_CONCURRENCY passes --dns.concurrency (default: the exporter's default);
POLL_INTERVAL_S the --poll.interval (default 60).

`--compare BEFORE_BINARY [RUNS]`: the same estate and flags for an older exporter and
target/release's, alternating, RUNS times each (default 2): peak RSS, CPU and series
over a fixed span (the first SES cycle, then 150 s: two DNS rounds), for a
before-and-after of a change in one session. An older dns collector asks fewer
names; the queries of the span are reported too."""
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import bench  # noqa: E402  (the helpers: processes, double, exporter, metrics)

SES_SPF = "v=spf1 ip4:199.255.192.0/22 ip4:199.127.232.0/22 -all"


def zones(n, delay_ms=0):
    z = {"amazonses.com": {"TXT": [SES_SPF]}}
    for name in bench.ids(n):
        z[f"mail.{name}"] = {"MX": ["10 feedback-smtp.us-east-1.amazonses.com"],
                             "TXT": ["v=spf1 include:amazonses.com ~all"]}
        z[f"_dmarc.{name}"] = {"TXT": ["v=DMARC1; p=quarantine"]}
        for t in ("tok1", "tok2", "tok3"):
            z[f"{t}._domainkey.{name}"] = {"CNAME": f"{t}.dkim.amazonses.com"}
    if delay_ms:
        for name, entry in z.items():
            if name != "amazonses.com":
                entry["delay_ms"] = delay_ms
    return z


def kind(name):
    if name == "amazonses.com":
        return "amazonses.com"
    if name.startswith("_dmarc."):
        return "_dmarc.<domain>"
    if "._domainkey." in name:
        return "<token>._domainkey.<domain>"
    if name.startswith("mail."):
        return "<MAIL FROM domain>"
    return "other"


def start_estate(tmp, n, interval_s=None):
    """The loopback DNS server with the zones, the double with n identities and the
    exporter (bench.EXPORTER) with mail_from, dkim and dns on, healthy."""
    path = os.path.join(tmp, "zones.json")
    interval_s = interval_s or int(os.environ.get("POLL_INTERVAL_S", "60"))
    with open(path, "w") as f:
        json.dump(zones(n, int(os.environ.get("DNS_DELAY_MS", "0"))), f)
    dns = bench.PROCS.start([os.path.join(bench.ROOT, ".venv/bin/python"), os.path.join(bench.ROOT, "tests/dns/server.py"), path, "--static"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(dns.stdout.readline().split()[1])
    double, url = bench.start_double(tmp, n, 0)
    args = ["--ses.rate", "500", "--poll.interval", f"{interval_s}s", "--collector.dkim",
            "--collector.dns", "--dns.nameserver", f"127.0.0.1:{port}"]
    if os.environ.get("DNS_CONCURRENCY"):
        args += ["--dns.concurrency", os.environ["DNS_CONCURRENCY"]]
    exp, eport = bench.start_exporter(tmp, url, args, bench.ids(n))
    bench.wait_healthy(eport)
    return path, dns, double, exp, eport


def span_run(exporter, n, span_s=150):
    """One exporter over the fixed span; its peak RSS, CPU, series and queries."""
    bench.EXPORTER = exporter
    with tempfile.TemporaryDirectory() as tmp:
        path, dns, double, exp, eport = start_estate(tmp, n)
        bench.wait_metric(eport, lambda m: m.get("aws_ses_exporter_identities") == n and "aws_ses_exporter_last_success_timestamp_seconds" in m, 300, "identities")
        cpu0 = bench.proc_cpu_seconds(exp.pid)
        time.sleep(span_s)
        cpu = bench.proc_cpu_seconds(exp.pid) - cpu0
        body = bench.http_get(f"http://127.0.0.1:{eport}/metrics")[1]
        series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
        with open(path + ".log") as f:
            queries = sum(1 for _ in f)
        row = {"peak_kib": bench.rss_kib(exp.pid), "cpu": cpu, "series": series,
               "bytes": len(body), "queries": queries}
        bench.PROCS.stop(exp)
        bench.PROCS.stop(double)
        bench.PROCS.stop(dns)
        return row


def compare(before, n, runs):
    after = bench.EXPORTER
    rows = {"before": [], "after": []}
    for _ in range(runs):
        for which, binary in (("before", before), ("after", after)):
            r = span_run(binary, n)
            rows[which].append(r)
            print(which, r, flush=True)
    print(f"\n## dns collector before and after, {n:,} identities, mail_from + dkim + dns, {runs} runs each, alternating\n")
    print("| binary | peak RSS (MiB) per run | exporter CPU over the span (s) | series | exposition (MB) | DNS queries in the span |")
    print("|---|---|---|---:|---:|---:|")
    for which in ("before", "after"):
        rs = rows[which]
        peaks = ", ".join("%.1f" % (r["peak_kib"] / 1024) for r in rs)
        cpus = ", ".join("%.2f" % r["cpu"] for r in rs)
        last = rs[-1]
        print(f"| {which} | {peaks} | {cpus} | {last['series']:,} | {last['bytes'] / 1e6:.1f} | {last['queries']:,} |")


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--compare":
        runs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
        compare(sys.argv[2], int(os.environ.get("N", "10000")), runs)
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    with tempfile.TemporaryDirectory() as tmp:
        path, dns, double, exp, eport = start_estate(tmp, n)

        def published():
            body = bench.http_get(f"http://127.0.0.1:{eport}/metrics")[1].decode()
            return body, sum(1 for line in body.splitlines()
                             if line.startswith("aws_ses_identity_dmarc_last_answer_timestamp_seconds{"))

        cpu0 = bench.proc_cpu_seconds(exp.pid)
        deadline = time.monotonic() + 1800
        while True:
            body, answered = published()
            if answered >= n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"one DNS round: {answered} of {n} identities after 30 min")
            time.sleep(1)
        end = time.time()
        cpu = bench.proc_cpu_seconds(exp.pid) - cpu0
        peak = bench.rss_kib(exp.pid)
        verdicts = collections.Counter(
            line.split('verdict="')[1].split('"')[0]
            for line in body.splitlines()
            if line.startswith("aws_ses_identity_dmarc_verdict{") and line.endswith(" 1"))
        queries = []
        with open(path + ".log") as f:
            for line in f:
                queries.append(json.loads(line))
        start = min(q["t"] for q in queries)
        # The first round: each name's first query; it ends with the last of them.
        first = {}
        for q in queries:
            first.setdefault((q["name"], q["type"]), q["t"])
        round_end = max(first.values())
        by = collections.Counter((kind(q["name"]), q["type"]) for q in queries if q["t"] <= round_end)
        total = sum(by.values())
        print(f"## dns collector, one round: {n:,} identities, --dns.concurrency {os.environ.get('DNS_CONCURRENCY', 'default')}, answers delayed {os.environ.get('DNS_DELAY_MS', '0')} ms, --poll.interval {os.environ.get('POLL_INTERVAL_S', '60')}s, every check on\n")
        print(f"- first round: {round_end - start:.1f} s from its first query to its last (every name asked once); all {n:,} DMARC answers published {end - start:.1f} s after the first query")
        print(f"- DNS queries in the round: {total:,} ({total / n:.2f} per identity)")
        print(f"- exporter CPU from the start of the first SES cycle to the round's end: {cpu:.2f} s; peak RSS {peak / 1024:.1f} MiB")
        print(f"- verdicts: {dict(verdicts)}\n")
        print("| name | type | queries |")
        print("|---|---|---:|")
        for (k, t), c in sorted(by.items()):
            print(f"| {k} | {t} | {c:,} |")
        bench.PROCS.stop(exp)
        bench.PROCS.stop(double)
        bench.PROCS.stop(dns)


if __name__ == "__main__":
    main()
