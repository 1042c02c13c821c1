#!/usr/bin/env python3
"""An authoritative DNS server on loopback for the dns collector tests (dnslib).

Usage: server.py ZONES_JSON [--port 0] [--static]

ZONES_JSON maps a name to what it answers; the file is read again for every query,
so a test changes answers by rewriting it (with --static it is read once, for the
benchmark's 10,000 names):

    {"bounce.ok.example.com": {"MX": ["10 feedback-smtp.us-east-1.amazonses.com"],
                               "TXT": ["v=spf1 include:amazonses.com ~all"]},
     "bounce.slow.example.com": {"delay_ms": 3000, "MX": [...]},
     "bounce.broken.example.com": {"servfail": true},
     "tok1._domainkey.ok.example.com": {"CNAME": "tok1.dkim.amazonses.com"}}

A name in the file without the asked type answers NOERROR with no records; a name
not in it answers NXDOMAIN; a TXT query at a CNAME gets the CNAME and its target's
TXT records. Every query is appended to ZONES_JSON + ".log" as one JSON
line (arrival time, end time, name, type). Listens on UDP and TCP 127.0.0.1 only and
prints "READY <port>" once both are bound.
"""
import json
import sys
import threading
import time

from dnslib import CNAME, MX, QTYPE, RCODE, RR, TXT
from dnslib.server import BaseResolver, DNSServer


class Zones(BaseResolver):
    def __init__(self, path, static=False):
        self.path = path
        self.lock = threading.Lock()
        self.static = self.load() if static else None

    def load(self):
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def resolve(self, request, handler):
        start = time.time()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        zones = self.static if self.static is not None else self.load()
        reply = request.reply()
        reply.header.aa = 1
        entry = zones.get(name)
        if entry is None:
            reply.header.rcode = RCODE.NXDOMAIN
        else:
            time.sleep(entry.get("delay_ms", 0) / 1000)
            if entry.get("servfail"):
                reply.header.rcode = RCODE.SERVFAIL
            elif qtype == "MX":
                for mx in entry.get("MX", []):
                    pref, host = mx.split()
                    reply.add_answer(RR(name, QTYPE.MX, ttl=entry.get("ttl", 0), rdata=MX(host, int(pref))))
            elif qtype == "CNAME" and "CNAME" in entry:
                reply.add_answer(RR(name, QTYPE.CNAME, ttl=entry.get("ttl", 0), rdata=CNAME(entry["CNAME"])))
            elif qtype == "TXT":
                # An alias answers with its CNAME and, when the target is served here
                # too, the target's records (RFC 1034 4.3.2), as a resolver sees it.
                owner = name
                if "CNAME" in entry:
                    reply.add_answer(RR(name, QTYPE.CNAME, ttl=entry.get("ttl", 0), rdata=CNAME(entry["CNAME"])))
                    owner = entry["CNAME"].rstrip(".").lower()
                    entry = zones.get(owner, {})
                for txt in entry.get("TXT", []):
                    # Long records go as several strings, as DNS allows.
                    parts = [txt[i:i + 40] for i in range(0, len(txt), 40)] or [""]
                    reply.add_answer(RR(owner, QTYPE.TXT, ttl=entry.get("ttl", 0), rdata=TXT(parts)))
        with self.lock:
            with open(self.path + ".log", "a") as f:
                f.write(json.dumps({"t": start, "end": time.time(), "name": name, "type": qtype}) + "\n")
        return reply


def main():
    path = sys.argv[1]
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    resolver = Zones(path, static="--static" in sys.argv)
    udp = DNSServer(resolver, address="127.0.0.1", port=port, logger=Quiet())
    port = udp.server.server_address[1]
    tcp = DNSServer(resolver, address="127.0.0.1", port=port, tcp=True, logger=Quiet())
    udp.start_thread()
    tcp.start_thread()
    print(f"READY {port}", flush=True)
    try:
        while udp.isAlive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


class Quiet:
    def __getattr__(self, _name):
        return lambda *a, **k: None


if __name__ == "__main__":
    main()
