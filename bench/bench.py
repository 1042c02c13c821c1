#!/usr/bin/env python3
"""Benchmarks of ses-identity-exporter, on loopback against the SES double.

Measures what sets the exporter's cost (see issue "Performance"):
  1. refresh: cycle time for N identities at a raised rate, against the ideal
     ceil(N/100) / rate, and the most requests the double saw in any 1 s window;
     one call (N=100) in absolute time; discovery (ceil(N/1000) pages) apart;
  2. scrape: /metrics under wrk (-t1 -c10) at 10,000 identities, plain and gzip,
     alternating with nginx serving the identical bytes (bench/nginx.conf);
  3. memory: peak RSS at 0, 1,000, 10,000 and 100,000 identities over three cycles
     and scrapes (so a new snapshot rendered beside the old one is included);
  4. start-up: process start to /-/healthy answering;
  5. idle CPU between cycles;
  6. the release binary's size.

Numbers are reported, never asserted. Every loop is bounded in time and count;
every process is stopped at the end. Nothing leaves 127.0.0.1: the AWS SDK gets a
region, static credentials, IMDS disabled and empty config files.

Usage: bench/bench.py [--smoke] [--out FILE]
  --smoke   small sizes and short runs (CI), so the bench cannot rot
  --out     where to write the markdown report (default docs/benchmarks.md)
"""

import argparse
import gzip
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPORTER = os.path.join(ROOT, "target/release/ses-identity-exporter")
DOUBLE = os.path.join(ROOT, "target/release/ses-double")
WRK_CMD = "wrk -t1 -c10 -d{d}s --latency {headers}http://127.0.0.1:{port}/metrics"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    """Every process started, stopped at exit whatever happens."""

    def __init__(self):
        self.procs = []

    def start(self, args, **kw):
        p = subprocess.Popen(args, **kw)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for p in self.procs:
            self.stop(p)


PROCS = Procs()


def http_get(url, headers=None, timeout=30):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def start_double(tmp, count, rate):
    p = PROCS.start(
        [DOUBLE, "--listen", "127.0.0.1:0", "--seed", "none", "--seed-count", str(count), "--rate", str(rate)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = p.stdout.readline()  # the double's readiness line
    url = line.strip().split("listening on ", 1)[1]
    return p, url


def aws_env(tmp, endpoint):
    cfg = os.path.join(tmp, "aws-config")
    creds = os.path.join(tmp, "aws-credentials")
    open(cfg, "w").close()
    open(creds, "w").close()
    return {
        "PATH": os.environ.get("PATH", ""),
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDBENCHBENCHBENCH",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": cfg,
        "AWS_SHARED_CREDENTIALS_FILE": creds,
        "AWS_ENDPOINT_URL_SES": endpoint,
        "AWS_ENDPOINT_URL_SESV2": endpoint,
        "AWS_ENDPOINT_URL": endpoint,
        # The target's account comes from STS GetCallerIdentity: the double answers.
        "AWS_ENDPOINT_URL_STS": endpoint,
    }


def start_exporter(tmp, endpoint, args, identities=None):
    port = free_port()
    # No dns collector: it would ask the system's resolvers about the bench domains.
    cmd = [EXPORTER, "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warn", "--no-collector.dns"] + args
    if identities is not None:
        path = os.path.join(tmp, "config.yaml")
        with open(path, "w") as f:
            f.write("identities:\n")
            for i in identities:
                f.write(f"  - {i}\n")
        cmd += ["--config.file", path]
    p = PROCS.start(cmd, env=aws_env(tmp, endpoint), stderr=subprocess.DEVNULL)
    return p, port


def wait_healthy(port, deadline_s=30, tls=False):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if tls:
                    import ssl

                    ctx = ssl.create_default_context()
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                    s = ctx.wrap_socket(s)
                s.sendall(b"GET /-/healthy HTTP/1.0\r\n\r\n")
                if s.recv(16)[8:13] == b" 200 ":
                    return
        except OSError:
            pass
        time.sleep(0.001)
    raise RuntimeError("exporter never became healthy")


# The one target of a bench run: its labels are dropped so series read by name.
TARGET_LABELS = 'aws_account_id="123456789012",aws_region="us-east-1"'


def metrics(port):
    _, body = http_get(f"http://127.0.0.1:{port}/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#") and not line.startswith("aws_ses_identity_"):
            name, _, value = line.rpartition(" ")
            name = name.replace("{" + TARGET_LABELS + "}", "").replace(TARGET_LABELS + ",", "")
            out[name] = float(value)
    return out


def wait_metric(port, pred, deadline_s, what):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            m = metrics(port)
            if pred(m):
                return m
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def ids(n):
    return [f"id-{i:05d}.bench.example" for i in range(n)]


def rss_kib(pid, field="VmHWM"):
    with open(f"/proc/{pid}/status") as f:
        s = f.read()
    return int(re.search(field + r":\s+(\d+)", s).group(1))


def max_window(times, window=1.0):
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while t - times[j] >= window:
            j += 1
        best = max(best, i - j + 1)
    return best


# ------------------------------------------------------------------ 1. refresh


def bench_refresh(sizes, rate):
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            double, url = start_double(tmp, n, rate)
            exp, port = start_exporter(tmp, url, ["--ses.rate", str(rate), "--poll.interval", "1h"], ids(n))
            wait_healthy(port)
            calls = math.ceil(n / 100)
            m = wait_metric(
                port,
                lambda m: "aws_ses_exporter_last_success_timestamp_seconds" in m,
                calls / rate * 3 + 60,
                f"the first cycle of {n}",
            )
            _, body = http_get(url + "/_double/requests")
            reqs = json.loads(body)
            gets = [r for r in reqs if r["action"] == "GetIdentityMailFromDomainAttributes"]
            measured = m["aws_ses_exporter_poll_duration_seconds"]
            ideal = calls / rate
            rows.append(
                {
                    "n": n,
                    "calls": len(gets),
                    "ideal_s": ideal,
                    "measured_s": measured,
                    "ratio": measured / ideal,
                    "max_per_window": max_window([r["t"] for r in gets]),
                    "throttled": sum(1 for r in reqs if r["outcome"] == "throttled"),
                }
            )
            PROCS.stop(exp)
            PROCS.stop(double)
    return rows


def bench_one_call():
    with tempfile.TemporaryDirectory() as tmp:
        double, url = start_double(tmp, 100, 0)
        exp, port = start_exporter(tmp, url, ["--poll.interval", "1h"], ids(100))
        wait_healthy(port)
        m = wait_metric(port, lambda m: "aws_ses_exporter_last_success_timestamp_seconds" in m, 30, "one call")
        PROCS.stop(exp)
        PROCS.stop(double)
        return m["aws_ses_exporter_poll_duration_seconds"]


def bench_discovery(n, rate):
    with tempfile.TemporaryDirectory() as tmp:
        double, url = start_double(tmp, n, rate)
        exp, port = start_exporter(tmp, url, ["--ses.rate", str(rate), "--poll.interval", "1h"])
        wait_healthy(port)
        wait_metric(
            port,
            lambda m: "aws_ses_exporter_last_success_timestamp_seconds" in m,
            math.ceil(n / 100) / rate * 3 + 60,
            "discovery and a cycle",
        )
        _, body = http_get(url + "/_double/requests")
        lists = [r["t"] for r in json.loads(body) if r["action"] == "ListIdentities"]
        PROCS.stop(exp)
        PROCS.stop(double)
        pages = len(lists)
        # From the first page's arrival to the last's, plus one limiter interval.
        took = (max(lists) - min(lists)) + 1.0 / rate if lists else 0.0
        return {"n": n, "pages": pages, "ideal_pages": math.ceil(n / 1000), "seconds": took}


# ------------------------------------------------------------------ 2. scrape


def parse_wrk(text):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    return rps, float(m.group(1)) * scale


def run_wrk(port, seconds, gz):
    headers = "-H 'Accept-Encoding: gzip' " if gz else ""
    cmd = WRK_CMD.format(d=seconds, headers=headers, port=port)
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=seconds + 30)
    return parse_wrk(out.stdout)


# The exporter's --runtime.worker-threads for the scrape bench (its default); nginx
# gets as many worker processes.
WORKERS = 1


def bench_scrape(n, seconds, rounds):
    with tempfile.TemporaryDirectory() as tmp:
        double, url = start_double(tmp, n, 0)
        exp, port = start_exporter(
            tmp, url, ["--ses.rate", "500", "--poll.interval", "1h", "--runtime.worker-threads", str(WORKERS)], ids(n)
        )
        wait_healthy(port)
        wait_metric(port, lambda m: m.get("aws_ses_exporter_identities") == n and "aws_ses_exporter_last_success_timestamp_seconds" in m, 120, "identities")
        workers = WORKERS
        # nginx serves the same bytes: one scrape, plain and gzip, from a file.
        www = os.path.join(tmp, "www")
        os.makedirs(www)
        _, plain = http_get(f"http://127.0.0.1:{port}/metrics")
        _, gz = http_get(f"http://127.0.0.1:{port}/metrics", {"Accept-Encoding": "gzip"})
        with open(os.path.join(www, "metrics"), "wb") as f:
            f.write(plain)
        with open(os.path.join(www, "metrics.gz"), "wb") as f:
            f.write(gz)
        os.chmod(tmp, 0o755)
        os.chmod(www, 0o755)
        for name in ("metrics", "metrics.gz"):
            os.chmod(os.path.join(www, name), 0o644)
        nginx_port = free_port()
        with open(os.path.join(ROOT, "bench/nginx.conf")) as f:
            conf = f.read()
        conf = (
            conf.replace("@WORKERS@", str(workers))
            .replace("@PORT@", str(nginx_port))
            .replace("@ROOT@", www)
            .replace("@PREFIX@", tmp)
        )
        conf_path = os.path.join(tmp, "nginx.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        nginx = PROCS.start(["nginx", "-p", tmp, "-c", conf_path], stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                if http_get(f"http://127.0.0.1:{nginx_port}/metrics")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        results = {(who, gz_): [] for who in ("exporter", "nginx") for gz_ in (False, True)}
        # An unmeasured warm-up of each server first: the first wrk run on a fresh
        # machine state (socket memory, caches) is slower for whoever goes first.
        for p in (port, nginx_port):
            for gz_ in (False, True):
                run_wrk(p, 1, gz_)
        for _ in range(rounds):
            for gz_ in (False, True):
                for who, p in (("exporter", port), ("nginx", nginx_port)):
                    results[(who, gz_)].append(run_wrk(p, seconds, gz_))
        PROCS.stop(nginx)
        PROCS.stop(exp)
        PROCS.stop(double)
        rows = []
        for gz_ in (False, True):
            e_rps = statistics.median(r for r, _ in results[("exporter", gz_)])
            n_rps = statistics.median(r for r, _ in results[("nginx", gz_)])
            e_p99 = statistics.median(p for _, p in results[("exporter", gz_)])
            n_p99 = statistics.median(p for _, p in results[("nginx", gz_)])
            rows.append(
                {
                    "encoding": "gzip" if gz_ else "plain",
                    "bytes": len(gz if gz_ else plain),
                    "exporter_rps": e_rps,
                    "nginx_rps": n_rps,
                    "rps_ratio": e_rps / n_rps,
                    "exporter_p99_ms": e_p99,
                    "nginx_p99_ms": n_p99,
                    "p99_ratio": e_p99 / n_p99,
                }
            )
        return rows, workers


# ------------------------------------------------------------ 2b. scrape, auth


def bcrypt_hash(password, cost=10):
    """A `$2y$` hash as htpasswd writes it (made by Python's bcrypt in .venv)."""
    py = os.path.join(ROOT, ".venv/bin/python")
    out = subprocess.run(
        [py, "-c", f"import bcrypt; print(bcrypt.hashpw({password!r}.encode(), bcrypt.gensalt({cost})).decode())"],
        capture_output=True, text=True, check=True,
    )
    return "$2y$" + out.stdout.strip()[4:]


def self_signed(tmp):
    cert, key = os.path.join(tmp, "server.pem"), os.path.join(tmp, "server.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )
    os.chmod(key, 0o644)
    return cert, key


def run_wrk_url(url, seconds, gz, auth=None):
    headers = ""
    if gz:
        headers += "-H 'Accept-Encoding: gzip' "
    if auth:
        headers += f"-H 'Authorization: Basic {auth}' "
    cmd = f"wrk -t1 -c10 -d{seconds}s --latency {headers}{url}"
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=seconds + 30)
    # A refused credential would be a fast 401, not a scrape: those runs do not count.
    if "Non-2xx or 3xx responses" in out.stdout:
        raise RuntimeError(f"{url}: responses other than 2xx:\n{out.stdout}")
    return parse_wrk(out.stdout)


def bench_scrape_auth(n, seconds, rounds):
    """The scrape bench with the web config on: basic auth (bcrypt cost 10, cached
    after the first check) over plain HTTP and over TLS, beside nginx over TLS, open
    and with auth_basic on the same hash (which nginx checks on every request)."""
    import base64

    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        cert, key = self_signed(tmp)
        hashed = bcrypt_hash("bench-pw")
        auth = base64.b64encode(b"bench:bench-pw").decode()
        basic = os.path.join(tmp, "web-basic.yml")
        with open(basic, "w") as f:
            f.write(f"basic_auth_users:\n  bench: {hashed}\n")
        tls = os.path.join(tmp, "web-tls.yml")
        with open(tls, "w") as f:
            f.write(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\nbasic_auth_users:\n  bench: {hashed}\n")
        double, url = start_double(tmp, n, 0)
        common = ["--ses.rate", "500", "--poll.interval", "1h", "--runtime.worker-threads", str(WORKERS)]
        exp_basic, port_basic = start_exporter(tmp, url, common + ["--web.config.file", basic], ids(n))
        wait_healthy(port_basic)
        end = time.monotonic() + 120
        while time.monotonic() < end:
            st, body = http_get(f"http://127.0.0.1:{port_basic}/metrics", {"Authorization": f"Basic {auth}"})
            if b"aws_ses_exporter_last_success_timestamp_seconds" in body:
                break
            time.sleep(0.2)
        _, plain = http_get(f"http://127.0.0.1:{port_basic}/metrics", {"Authorization": f"Basic {auth}"})
        _, gz = http_get(f"http://127.0.0.1:{port_basic}/metrics", {"Authorization": f"Basic {auth}", "Accept-Encoding": "gzip"})
        tmp2 = os.path.join(tmp, "tls")
        os.makedirs(tmp2)
        exp_tls, port_tls = start_exporter(tmp2, url, common + ["--web.config.file", tls], ids(n))
        wait_healthy(port_tls, tls=True)
        www = os.path.join(tmp, "www")
        os.makedirs(www)
        for name, data in (("metrics", plain), ("metrics.gz", gz)):
            with open(os.path.join(www, name), "wb") as f:
                f.write(data)
            os.chmod(os.path.join(www, name), 0o644)
        os.chmod(www, 0o755)
        htpasswd = os.path.join(tmp, "htpasswd")
        with open(htpasswd, "w") as f:
            f.write(f"bench:{hashed}\n")
        os.chmod(htpasswd, 0o644)
        p_tls, p_tls_auth = free_port(), free_port()
        with open(os.path.join(ROOT, "bench/nginx-tls.conf")) as f:
            conf = f.read()
        for k, v in {"@WORKERS@": str(WORKERS), "@PORT_TLS@": str(p_tls), "@PORT_TLS_AUTH@": str(p_tls_auth),
                     "@ROOT@": www, "@PREFIX@": tmp, "@CERT@": cert, "@KEY@": key, "@HTPASSWD@": htpasswd}.items():
            conf = conf.replace(k, v)
        conf_path = os.path.join(tmp, "nginx-tls.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        nginx = PROCS.start(["nginx", "-p", tmp, "-c", conf_path], stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # nginx has no readiness signal; the warm-up below would fail loudly
        servers = [
            ("exporter, basic auth", f"http://127.0.0.1:{port_basic}/metrics", auth),
            ("exporter, TLS + basic auth", f"https://127.0.0.1:{port_tls}/metrics", auth),
            ("nginx, TLS", f"https://127.0.0.1:{p_tls}/metrics", None),
            ("nginx, TLS + auth_basic (bcrypt per request)", f"https://127.0.0.1:{p_tls_auth}/metrics", auth),
        ]
        for _, u, a in servers:
            for gz_ in (False, True):
                run_wrk_url(u, 1, gz_, a)
        results = {(name, gz_): [] for name, _, _ in servers for gz_ in (False, True)}
        for _ in range(rounds):
            for gz_ in (False, True):
                for name, u, a in servers:
                    results[(name, gz_)].append(run_wrk_url(u, seconds, gz_, a))
        for p in (nginx, exp_tls, exp_basic, double):
            PROCS.stop(p)
        rows = []
        for gz_ in (False, True):
            for name, _, _ in servers:
                rs = results[(name, gz_)]
                rows.append({
                    "server": name,
                    "encoding": "gzip" if gz_ else "plain",
                    "rps": statistics.median(r for r, _ in rs),
                    "p99_ms": statistics.median(p for _, p in rs),
                })
        return rows


# -------------------------------------------------------------- 2c. dns collector


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_dns(n, interval_s):
    """One round of the dns collector over n MAIL FROM domains (answered by the
    loopback DNS server, tests/dns/server.py, zones read once), against the same
    exporter with the collector off: round time, CPU and peak RSS."""
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        zones = os.path.join(tmp, "zones.json")
        with open(zones, "w") as f:
            json.dump({f"mail.{i}": {"MX": ["10 feedback-smtp.us-east-1.amazonses.com"],
                                     "TXT": ["v=spf1 include:amazonses.com ~all"]} for i in ids(n)}, f)
        dns = PROCS.start([os.path.join(ROOT, ".venv/bin/python"), os.path.join(ROOT, "tests/dns/server.py"), zones, "--static"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        port = int(dns.stdout.readline().split()[1])
        for mode in ("off", "on"):
            sub = os.path.join(tmp, mode)
            os.makedirs(sub)
            double, url = start_double(sub, n, 0)
            args = ["--ses.rate", "500", "--poll.interval", f"{interval_s}s"]
            if mode == "on":
                args += ["--collector.dns", "--dns.nameserver", f"127.0.0.1:{port}", "--dns.concurrency", "16"]
            exp, eport = start_exporter(sub, url, args, ids(n))
            wait_healthy(eport)
            wait_metric(eport, lambda m: m.get("aws_ses_exporter_identities") == n and "aws_ses_exporter_last_success_timestamp_seconds" in m, 120, "identities")
            cpu0, t0 = proc_cpu_seconds(exp.pid), time.monotonic()
            if mode == "on":
                def lookups(m):
                    return sum(v for k, v in m.items() if k.startswith("aws_ses_exporter_dns_lookups_total"))
                wait_metric(eport, lambda m: lookups(m) >= 2 * n, interval_s * 3, "one DNS round")
                seconds, cpu = time.monotonic() - t0, proc_cpu_seconds(exp.pid) - cpu0
                # The round's last results are published when its render ends.
                end = time.monotonic() + 10
                correct = 0
                while correct < n and time.monotonic() < end:
                    _, body = http_get(f"http://127.0.0.1:{eport}/metrics")
                    correct = sum(1 for line in body.decode().splitlines()
                                  if line.startswith("aws_ses_identity_mail_from_mx_correct{") and line.endswith(" 1"))
                    time.sleep(0.1)
            else:
                time.sleep(interval_s)  # the measured span itself: one interval
                correct = 0
                seconds, cpu = time.monotonic() - t0, proc_cpu_seconds(exp.pid) - cpu0
            rows[mode] = {
                "seconds": seconds,
                "cpu": cpu,
                "peak_kib": rss_kib(exp.pid),
                "correct": correct,
            }
            PROCS.stop(exp)
            PROCS.stop(double)
        PROCS.stop(dns)
    return rows


# ------------------------------------------------------------------ 3. memory


def bench_memory(sizes):
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            double, url = start_double(tmp, n, 0)
            args = ["--ses.rate", "1000", "--poll.interval", "3s" if n < 100000 else "30s"]
            exp, port = start_exporter(tmp, url, args, ids(n) if n else None)
            wait_healthy(port)
            deadline = 600
            start_count = None
            end = time.monotonic() + deadline
            # Three cycles after the identities are in, scraping plain and gzip.
            cycles_seen = set()
            while time.monotonic() < end and len(cycles_seen) < 3:
                m = metrics(port)
                http_get(f"http://127.0.0.1:{port}/metrics", {"Accept-Encoding": "gzip"})
                ts = m.get("aws_ses_exporter_last_success_timestamp_seconds")
                if ts is not None and m.get("aws_ses_exporter_identities") == n:
                    cycles_seen.add(ts)
                time.sleep(0.2)
            rows.append(
                {
                    "n": n,
                    "peak_rss_kib": rss_kib(exp.pid),
                    # At the end, for where it goes: heap and stacks vs pages of the binary.
                    "anon_kib": rss_kib(exp.pid, "RssAnon"),
                    "file_kib": rss_kib(exp.pid, "RssFile"),
                }
            )
            PROCS.stop(exp)
            PROCS.stop(double)
    return rows


# ------------------------------------------------------------------ 4-6


def bench_startup(runs):
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        double, url = start_double(tmp, 10, 0)
        for _ in range(runs):
            port = free_port()
            t0 = time.monotonic()
            p = PROCS.start(
                [EXPORTER, "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warn", "--no-collector.dns", "--poll.interval", "1h"],
                env=aws_env(tmp, url),
                stderr=subprocess.DEVNULL,
            )
            wait_healthy(port)
            times.append((time.monotonic() - t0) * 1000)
            PROCS.stop(p)
        PROCS.stop(double)
    return statistics.median(times), max(times)


def bench_idle(seconds):
    with tempfile.TemporaryDirectory() as tmp:
        double, url = start_double(tmp, 10, 0)
        exp, port = start_exporter(tmp, url, ["--poll.interval", "120s"])
        wait_healthy(port)
        wait_metric(port, lambda m: "aws_ses_exporter_last_success_timestamp_seconds" in m, 30, "first cycle")
        tick = os.sysconf("SC_CLK_TCK")

        def cpu():
            with open(f"/proc/{exp.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick

        c0 = cpu()
        time.sleep(seconds)
        c1 = cpu()
        PROCS.stop(exp)
        PROCS.stop(double)
        return c1 - c0


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} cores ({model}), {mem_kib / 1048576:.0f} GiB, Linux {platform.release()}, {rustc}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/benchmarks.md"))
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked", "--bins"], cwd=ROOT, check=True)
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: install Debian's wrk and nginx-light (make test-deps)")

    rate = 50
    refresh_sizes = [1000] if a.smoke else [1000, 10000, 100000]
    mem_sizes = [0, 1000] if a.smoke else [0, 1000, 10000, 100000]
    scrape_n = 1000 if a.smoke else 10000
    # Five alternating rounds: this machine shares its cores, and single runs swing 2x.
    wrk_s, rounds = (2, 1) if a.smoke else (10, 5)
    idle_s = 5 if a.smoke else 60

    try:
        print("refresh ...", flush=True)
        refresh = bench_refresh(refresh_sizes, rate)
        one_call = bench_one_call()
        discovery = bench_discovery(refresh_sizes[-1] if a.smoke else 10000, rate)
        print("scrape ...", flush=True)
        scrape, workers = bench_scrape(scrape_n, wrk_s, rounds)
        print("scrape with auth ...", flush=True)
        scrape_auth = bench_scrape_auth(scrape_n, wrk_s, max(1, rounds - 2))
        print("dns collector ...", flush=True)
        dns_n, dns_interval = (200, 10) if a.smoke else (10000, 60)
        dns = bench_dns(dns_n, dns_interval)
        print("memory ...", flush=True)
        memory = bench_memory(mem_sizes)
        print("start-up, idle, size ...", flush=True)
        start_med, start_max = bench_startup(3 if a.smoke else 20)
        idle = bench_idle(idle_s)
        size = os.path.getsize(EXPORTER)
        heap = None
        if not a.smoke and shutil.which("valgrind") and shutil.which("ms_print"):
            print("heap profile (massif) ...", flush=True)
            import profile_memory

            heap = profile_memory.report(10000)
    finally:
        PROCS.stop_all()

    lines = [
        "# Benchmarks",
        "",
        f"Made by `{'make bench-smoke' if a.smoke else 'make bench'}` (bench/bench.py) on {time.strftime('%Y-%m-%d')}, "
        f"on {machine()}. Loopback only, against the SES double; numbers are reported, not asserted. "
        "The machine is shared and noisy: compare ratios from the same run, not absolute numbers across runs.",
        "",
        f"## Refresh (static list, `--ses.rate {rate}`, the double limiting at {rate}/s)",
        "",
        "| identities | calls | ideal (s) | measured cycle (s) | measured / ideal | most requests in any 1 s at the double | throttled |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in refresh:
        lines.append(
            f"| {r['n']:,} | {r['calls']} | {r['ideal_s']:.2f} | {r['measured_s']:.2f} | {r['ratio']:.3f} | {r['max_per_window']} | {r['throttled']} |"
        )
    lines += [
        "",
        f"One call (100 identities, no limiter wait): {one_call * 1000:.1f} ms for the whole cycle.",
        f"Discovery of {discovery['n']:,} identities: {discovery['pages']} `ListIdentities` pages "
        f"(ideal ceil(N/1000) = {discovery['ideal_pages']}), {discovery['seconds']:.2f} s at {rate}/s, before the cycle's batches.",
        "",
        f"## Scrape (`{WRK_CMD.format(d=wrk_s, headers='', port='PORT')}`, {scrape_n:,} identities, medians of {rounds} alternating round(s))",
        "",
        f"nginx: bench/nginx.conf (`sendfile on`, `access_log off`, `gzip_static on`, `worker_processes {workers}` = the exporter's tokio worker threads), serving the same bytes from a file. The gzip runs add `-H 'Accept-Encoding: gzip'`.",
        "",
        "| encoding | body bytes | exporter req/s | nginx req/s | exporter / nginx | exporter p99 (ms) | nginx p99 (ms) | p99 ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in scrape:
        lines.append(
            f"| {r['encoding']} | {r['bytes']:,} | {r['exporter_rps']:,.0f} | {r['nginx_rps']:,.0f} | {r['rps_ratio']:.2f} | {r['exporter_p99_ms']:.2f} | {r['nginx_p99_ms']:.2f} | {r['p99_ratio']:.2f} |"
        )
    plain_exporter = {r["encoding"]: r for r in scrape}
    lines += [
        "",
        f"## Scrape with the web config on (same {scrape_n:,} identities, medians of {max(1, rounds - 2)} alternating round(s))",
        "",
        "Basic auth with a cost-10 bcrypt hash (`$2y$10$`), which the exporter checks once per credential and then takes from its cache; "
        "TLS with an ECDSA P-256 certificate (wrk keeps its 10 connections open, so handshakes are not what is measured). "
        "nginx (bench/nginx-tls.conf, no sendfile under TLS) serves the same bytes, once open and once behind `auth_basic` "
        "on the same hash, which nginx checks on every request. The last column compares with the exporter without a web config above.",
        "",
        "| encoding | server | req/s | p99 (ms) | req/s vs exporter without web config |",
        "|---|---|---:|---:|---:|",
    ]
    for r in scrape_auth:
        base_rps = plain_exporter[r["encoding"]]["exporter_rps"]
        lines.append(f"| {r['encoding']} | {r['server']} | {r['rps']:,.0f} | {r['p99_ms']:.2f} | {r['rps'] / base_rps:.2f} |")
    lines += [
        "",
        f"## The dns collector ({dns_n:,} MAIL FROM domains, `--poll.interval {dns_interval}s`, `--dns.concurrency 16`)",
        "",
        "The loopback DNS server (tests/dns/server.py, Python) answers every domain; lookups are spread over the interval. "
        "Measured from the end of the first SES cycle to the end of the first DNS round (the collector off: over one interval).",
        "",
        "| collector | wall time (s) | exporter CPU (s) | peak RSS (MiB) | MX verdicts 1 |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode in ("off", "on"):
        r = dns[mode]
        lines.append(f"| {mode} | {r['seconds']:.1f} | {r['cpu']:.2f} | {r['peak_kib'] / 1024:.1f} | {r['correct']:,} |")
    base = memory[0]["peak_rss_kib"]
    lines += ["", "## Memory (peak RSS over three cycles with scrapes, plain and gzip)", "", "| identities | peak RSS (MiB) | bytes per identity above 0 | at the end: anonymous (MiB) | at the end: file-backed, i.e. binary and libraries (MiB) |", "|---:|---:|---:|---:|---:|"]
    for r in memory:
        per = (r["peak_rss_kib"] - base) * 1024 / r["n"] if r["n"] else 0
        lines.append(f"| {r['n']:,} | {r['peak_rss_kib'] / 1024:.1f} | {per:,.0f} | {r['anon_kib'] / 1024:.1f} | {r['file_kib'] / 1024:.1f} |")
    if heap:
        lines += ["", "## Where the heap goes (bench/profile_memory.py: valgrind massif, debug build, same data structures)", ""] + heap
    lines += [
        "",
        "## Start-up, idle, binary",
        "",
        f"- Start-up, process start to `/-/healthy` answering (region and credentials from the environment, IMDS off, first cycle excluded): median {start_med:.1f} ms, max {start_max:.1f} ms.",
        f"- Idle CPU between cycles (`--poll.interval 120s`, {idle_s} s): {idle:.3f} CPU seconds.",
        f"- Release binary (`lto = \"fat\"`, `codegen-units = 1`, `strip = true`): {size / 1048576:.1f} MiB.",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    with open(a.out, "w") as f:
        f.write(report)


if __name__ == "__main__":
    main()
