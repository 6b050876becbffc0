"""Load for bitnet serve replicas behind a balancer (scripts/bench-scaleout.sh, run by
tests/cli/test_scaleout.sh and make bench-scaleout).

usage: scaleout_load.py URL KEY CLIENTS SECONDS OUT.json [--max-tokens N] [--admin KEY]
                         [--kill PID --kill-after K]

CLIENTS threads each send one completion after another (each its own keep-alive connection,
a new one after an error) until SECONDS have passed; with --admin a probe times GET /health
and GET /v1/models every 50 ms, and another the time to the first token of a streamed
completion every 200 ms ("ttft_ms"), beside that of 5 lone ones sent before the load
("ttft_lone_ms", their median). The probes run in a process of their own (this script with
--probes), so that their clocks do not include waiting for the interpreter's lock behind the
CLIENTS threads. OUT.json: requests, status counts ("0": no answer: connection refused or
reset), completion latency P50/P95/P99 in ms, the probes' P50/P95/P99, "completed": [id,
prompt_tokens, completion_tokens] of every 200 a client read whole, and "errors": [start, end
(seconds since the start), status] of every answer neither 200 nor 429. --kill: SIGKILL to
PID (a replica) K seconds in, "killed_at" its time, "completed_after_kill" the 200s of
requests sent after it.
Only loopback URLs: it refuses any other host."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

PROMPTS = ["Once upon a time", "The little dog", "One day, a girl named Lily", "Tom had a red ball"]


def percentiles(xs):
    if not xs:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    xs = sorted(xs)

    def rank(p):
        return round(xs[min(len(xs) - 1, max(0, int(p * len(xs) + 0.999999) - 1))], 2)

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "n": len(xs)}


class Conn:
    def __init__(self, host, port):
        self.host, self.port, self.c = host, port, None

    def request(self, method, path, body, headers):
        """(status, body bytes); status 0 when there was no whole answer (never sent again:
        a request a replica may have run is not repeated)."""
        try:
            if self.c is None:
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self.c.request(method, path, body=body, headers=headers)
            r = self.c.getresponse()
            data = r.read()
            if r.getheader("Connection", "").lower() == "close":
                self.c.close()
                self.c = None
            return r.status, data
        except (OSError, http.client.HTTPException):
            if self.c is not None:
                self.c.close()
            self.c = None
            return 0, b""


class RawConn:
    """Conn's request() on a bare socket, for the load's clients: HTTP/1.1 keep-alive, the
    same request line, headers and body as http.client sends (Host, Accept-Encoding:
    identity, Content-Length), the answer read by its Content-Length (or chunks, or to the
    end). http.client parses each answer's headers with the email package: in a load
    generator sharing 2 cores with the servers it measures, that took CPU from them."""

    def __init__(self, host, port):
        self.host, self.port, self.s, self.buf = host, port, None, b""

    def close(self):
        if self.s is not None:
            self.s.close()
        self.s, self.buf = None, b""

    def _more(self):
        d = self.s.recv(65536)
        if not d:
            raise ConnectionError("closed")
        self.buf += d

    def _take(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self):
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _chunked(self):
        out = []
        while True:
            n = int(self._line().split(b";")[0], 16)
            if n == 0:
                while self._line():  # trailers up to the blank line
                    pass
                return b"".join(out)
            out.append(self._take(n))
            self._take(2)

    def request(self, method, path, body, headers):
        """(status, body bytes); status 0 when there was no whole answer (never sent again)."""
        try:
            if self.s is None:
                self.s = socket.create_connection((self.host, self.port), timeout=60)
                self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            data = body.encode() if body is not None else b""
            head = ["%s %s HTTP/1.1" % (method, path), "Host: %s:%d" % (self.host, self.port),
                    "Accept-Encoding: identity"]
            head += ["%s: %s" % kv for kv in headers.items()]
            if body is not None:
                head.append("Content-Length: %d" % len(data))
            self.s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)
            status = int(self._line().split(b" ", 2)[1])
            hdrs = {}
            while True:
                line = self._line()
                if not line:
                    break
                k, _, v = line.partition(b":")
                hdrs[k.strip().lower()] = v.strip().lower()
            if b"content-length" in hdrs:
                data = self._take(int(hdrs[b"content-length"]))
            elif hdrs.get(b"transfer-encoding") == b"chunked":
                data = self._chunked()
            else:  # to the end of the connection
                try:
                    while True:
                        self._more()
                except ConnectionError:
                    pass
                data, self.buf = self.buf, b""
                hdrs[b"connection"] = b"close"
            if hdrs.get(b"connection") == b"close":
                self.close()
            return status, data
        except (OSError, ValueError, IndexError):
            self.close()
            return 0, b""


def ttft(c, key, max_tokens):
    """ms from sending a streamed completion to its first text event; None when it failed."""
    body = json.dumps({"prompt": PROMPTS[0], "max_tokens": max_tokens, "stream": True})
    hdr = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    t0 = time.monotonic()
    try:
        if c.c is None:
            c.c = http.client.HTTPConnection(c.host, c.port, timeout=60)
        c.c.request("POST", "/v1/completions", body=body, headers=hdr)
        r = c.c.getresponse()
        first = None
        for line in r:
            if first is None and line.startswith(b"data: {") and b'"text"' in line:
                first = (time.monotonic() - t0) * 1000
        return first if r.status == 200 else None
    except (OSError, http.client.HTTPException):
        c.c.close()
        c.c = None
        return None


def run_probes(url, key, admin, deadline, max_tokens):
    """--probes: the probes alone in this process until time.monotonic() (the system's
    CLOCK_MONOTONIC, the same in every process) reaches DEADLINE; prints their times in ms as
    JSON {"health": [...], "models": [...], "ttft": [...]}."""
    u = urllib.parse.urlparse(url)
    probes = {"health": [], "models": [], "ttft": [], "ttft_at": []}

    def probe():
        c = Conn(u.hostname, u.port)
        hdr = {"Authorization": "Bearer " + admin}
        while time.monotonic() < deadline:
            for name, path in (("health", "/health"), ("models", "/v1/models")):
                t0 = time.monotonic()
                st, _ = c.request("GET", path, None, hdr)
                if st == 200:
                    probes[name].append((time.monotonic() - t0) * 1000)
            time.sleep(0.05)

    def ttft_probe():
        c = Conn(u.hostname, u.port)
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            t = ttft(c, key, max_tokens)
            if t is not None:
                probes["ttft"].append(t)
                probes["ttft_at"].append([round(t0, 3), round(t, 2)])
            time.sleep(0.2)

    threads = [threading.Thread(target=probe), threading.Thread(target=ttft_probe)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    json.dump(probes, sys.stdout)
    return 0


def main():
    args = sys.argv[1:]
    if args[:1] == ["--probes"] and len(args) == 6:
        return run_probes(args[1], args[2], args[3], float(args[4]), int(args[5]))
    opts = {"--max-tokens": "4", "--admin": None, "--kill": None, "--kill-after": None}
    while len(args) > 5 and args[-2] in opts:
        opts[args[-2]] = args[-1]
        args = args[:-2]
    if len(args) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    url, key, clients, seconds, out = args[0], args[1], int(args[2]), float(args[3]), args[4]
    u = urllib.parse.urlparse(url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        print("scaleout_load.py: only loopback URLs", file=sys.stderr)
        return 2
    max_tokens = int(opts["--max-tokens"])
    lone = []
    if opts["--admin"]:
        c = Conn(u.hostname, u.port)
        lone = [t for t in (ttft(c, key, max_tokens) for _ in range(5)) if t is not None]
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    status, lat, completed, errors = {}, [], [], []
    t_start = time.monotonic()
    killed, ok_after_kill = {}, [0]
    probes = {"health": [], "models": [], "ttft": [], "ttft_at": []}

    def client(i):
        c = RawConn(u.hostname, u.port)
        n = 0
        while time.monotonic() < deadline:
            body = json.dumps({"prompt": PROMPTS[(i + n) % len(PROMPTS)], "max_tokens": max_tokens})
            hdr = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
            t0 = time.monotonic()
            st, data = c.request("POST", "/v1/completions", body, hdr)
            ms = (time.monotonic() - t0) * 1000
            n += 1
            row = None
            if st == 200:
                try:
                    d = json.loads(data)
                    row = [d["id"], d["usage"]["prompt_tokens"], d["usage"]["completion_tokens"]]
                except (ValueError, KeyError):
                    st = -1  # a 200 that is not a whole completion
            with lock:
                status[str(st)] = status.get(str(st), 0) + 1
                if st == 200:
                    lat.append(ms)
                    completed.append(row)
                    if "at" in killed and t0 - t_start > killed["at"]:
                        ok_after_kill[0] += 1
                elif st != 429:
                    errors.append([round(t0 - t_start, 3), round(time.monotonic() - t_start, 3), st])
            if st == 429:
                time.sleep(0.05)
            elif st in (0, 502, 503):
                time.sleep(0.02)

    def killer():
        time.sleep(max(0.0, t_start + float(opts["--kill-after"]) - time.monotonic()))
        os.kill(int(opts["--kill"]), signal.SIGKILL)
        killed["at"] = round(time.monotonic() - t_start, 3)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    prober = None
    if opts["--admin"]:
        cmd = [sys.executable, os.path.abspath(__file__), "--probes", url, key, opts["--admin"],
               repr(deadline), str(max_tokens)]
        prober = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    if opts["--kill"] and opts["--kill-after"]:
        threads.append(threading.Thread(target=killer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if prober is not None:
        out_probes, _ = prober.communicate()
        if prober.returncode != 0:
            print("scaleout_load.py: the probe process failed", file=sys.stderr)
            return 1
        probes = json.loads(out_probes)
    doc = {
        "requests": sum(status.values()),
        "status": status,
        "latency_ms": percentiles(lat),
        "health_ms": percentiles(probes["health"]),
        "models_ms": percentiles(probes["models"]),
        "ttft_ms": percentiles(probes["ttft"]),
        "ttft_lone_ms": round(sorted(lone)[len(lone) // 2], 2) if lone else None,
        "ttft_at": [[round(at - t_start, 3), ms] for at, ms in probes.get("ttft_at", [])],
        "completed": completed,
        "errors": sorted(errors),
        "killed_at": killed.get("at"),
        "completed_after_kill": ok_after_kill[0],
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
