"""A loopback stand-in for Stripe's meter events API (POST /v1/billing/meter_events), for
test_billing.sh. It checks each request as Stripe would take it and keeps what it accepted.

usage: stripe_recorder.py DIR KEY EVENT_NAME [PORT [FAULTS]]
  DIR         its files: port (the port it listens on, once it does), events.jsonl (one line
              per accepted event: identifier, customer, value, timestamp), answers.jsonl (one
              line per answer: status, identifier, what), violations (one line per request that
              Stripe would refuse for its form, which bitnet must never send)
  KEY         the secret key the Bearer must carry
  EVENT_NAME  the meter's event name
  PORT        0 or absent: a free one
  FAULTS      faults queued before it listens, comma-separated (below): a sender that is
              waiting meets them first, whatever its speed

Checks: method POST, path /v1/billing/meter_events, Content-Type
application/x-www-form-urlencoded, Authorization: Bearer KEY (else 401), the form fields
event_name, payload[stripe_customer_id], payload[value], identifier, timestamp each once and no
other, the event name, the value a whole number > 0 (Stripe takes whole numbers only), the
timestamp whole seconds within the past 35 days or up to 5 minutes ahead, the identifier 1 to
100 characters. A repeated identifier is refused as Stripe does it: 400 invalid_request_error
"An event already exists with identifier X." with Stripe-Should-Retry: false (and the event is
not counted again). A customer "cus_refused" gets 400 "No such customer".

Faults on demand (POST /_fault/NAME, answered 200 and not checked): each queued fault is used
by the next meter event request, in order:
  500      answers 500 without taking the event
  429      answers 429 with Retry-After: 1 without taking the event
  garbage  takes the event, then answers 200 with a body that is not JSON
  hang     takes the event, then answers only after 6 s (past the sender's timeout)
The events it restarts with are those of DIR/events.jsonl: identifiers stay known across a
restart, as Stripe's do.

The meter event stream (API v2, bitnet's billing.api stream): POST
/v2/billing/meter_event_session with Authorization: Bearer KEY and a Stripe-Version header
answers a session (object v2.billing.meter_event_session, authentication_token, expires_at 15
minutes ahead); POST /v2/billing/meter_event_stream with Authorization: Bearer TOKEN (one it
made and not expired: else 401 billing_meter_event_session_expired; the secret key there is a
violation), Stripe-Version, Content-Type application/json and a body {"events": [...]} of 1 to
100 events, each exactly identifier (1 to 100 characters), event_name, timestamp (RFC 3339 UTC,
within the past 35 days or 5 minutes ahead) and payload {stripe_customer_id, value (a whole
number > 0 as a string)}, answers 200 {} and keeps each event it had not seen in events.jsonl
(as above, the timestamp in seconds) and each repeated identifier in duplicates.jsonl (Stripe
drops those later, as it validates stream events later). Faults: 500 and 429 as above for the
whole request, and
  expire   the session of the next stream request has expired (401, as Stripe answers it)"""
import calendar
import http.server
import json
import os
import re
import sys
import threading
import time
import urllib.parse

PATH = "/v1/billing/meter_events"
SESSION_PATH, STREAM_PATH = "/v2/billing/meter_event_session", "/v2/billing/meter_event_stream"
EVENT_KEYS, PAYLOAD_KEYS = {"identifier", "event_name", "timestamp", "payload"}, {"stripe_customer_id", "value"}
tokens = {}  # session token -> when it expires (time.time())
FIELDS = {"event_name", "payload[stripe_customer_id]", "payload[value]", "identifier", "timestamp"}

out_dir, key, event_name = sys.argv[1], sys.argv[2], sys.argv[3]
port = int(sys.argv[4]) if len(sys.argv) > 4 else 0
lock = threading.Lock()
faults = [f for f in sys.argv[5].split(",") if f] if len(sys.argv) > 5 else []
seen = set()
events_path = os.path.join(out_dir, "events.jsonl")
if os.path.exists(events_path):
    with open(events_path, encoding="utf-8") as f:
        seen = {json.loads(line)["identifier"] for line in f if line.strip()}


def append(name, obj):
    with open(os.path.join(out_dir, name), "a", encoding="utf-8") as f:
        f.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")


def form_problem(form):
    """What Stripe would refuse in the parsed form (a dict of lists), or None."""
    if set(form) != FIELDS:
        return "fields %s, wanted %s" % (sorted(form), sorted(FIELDS))
    if any(len(v) != 1 for v in form.values()):
        return "a field given twice"
    f = {k: v[0] for k, v in form.items()}
    if f["event_name"] != event_name:
        return "event_name %r" % f["event_name"]
    if not re.fullmatch(r"[1-9][0-9]*", f["payload[value]"]):
        return "payload[value] %r is not a whole number > 0" % f["payload[value]"]
    if not re.fullmatch(r"[0-9]+", f["timestamp"]):
        return "timestamp %r is not whole seconds" % f["timestamp"]
    ts = int(f["timestamp"])
    if not time.time() - 35 * 86400 <= ts <= time.time() + 300:
        return "timestamp %d out of range" % ts
    if not 1 <= len(f["identifier"]) <= 100:
        return "identifier of %d characters" % len(f["identifier"])
    if not f["payload[stripe_customer_id]"].startswith("cus_"):
        return "customer %r" % f["payload[stripe_customer_id]"]
    return None


def rfc3339(s):
    """Seconds since the epoch of "YYYY-MM-DDTHH:MM:SS[.fff]Z" (ValueError otherwise)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?Z", s)
    if not m:
        raise ValueError(s)
    t = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    return t + float(m.group(2) or 0)


def stream_problem(e):
    """What Stripe would refuse in one event of a stream request, or None."""
    if not isinstance(e, dict) or set(e) != EVENT_KEYS:
        return "event keys %s, wanted %s" % (sorted(e) if isinstance(e, dict) else e, sorted(EVENT_KEYS))
    p = e["payload"]
    if not isinstance(p, dict) or set(p) != PAYLOAD_KEYS:
        return "payload %r" % (p,)
    if e["event_name"] != event_name:
        return "event_name %r" % e["event_name"]
    if not isinstance(p["value"], str) or not re.fullmatch(r"[1-9][0-9]*", p["value"]):
        return "payload value %r is not a whole number > 0 as a string" % (p["value"],)
    try:
        ts = rfc3339(e["timestamp"])
    except (ValueError, TypeError):
        return "timestamp %r is not RFC 3339 UTC" % (e["timestamp"],)
    if not time.time() - 35 * 86400 <= ts <= time.time() + 300:
        return "timestamp %s out of range" % e["timestamp"]
    if not isinstance(e["identifier"], str) or not 1 <= len(e["identifier"]) <= 100:
        return "identifier %r" % (e["identifier"],)
    if not isinstance(p["stripe_customer_id"], str) or not p["stripe_customer_id"].startswith("cus_"):
        return "customer %r" % (p["stripe_customer_id"],)
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK wait

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, obj, headers=(), body=None):
        data = body if body is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, message, what, ident="", headers=()):
        append("answers.jsonl", {"status": status, "identifier": ident, "what": what})
        self.answer(status, {"error": {"message": message, "type": "invalid_request_error"}},
                    headers)

    def do_GET(self):
        self.error(405, "use POST", "method")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode("utf-8", "replace")
        if self.path.startswith("/_fault/"):
            with lock:
                faults.append(self.path[len("/_fault/"):])
            return self.answer(200, {"queued": len(faults)})
        if self.path in (SESSION_PATH, STREAM_PATH):
            return self.v2(raw)
        if self.path != PATH:
            append("violations", "path " + self.path)
            return self.error(404, "Unrecognized request URL", "path")
        if self.headers.get("Authorization") != "Bearer " + key:
            append("violations", "authorization")
            return self.error(401, "Invalid API Key provided", "key")
        ctype = self.headers.get("Content-Type", "")
        if ctype.split(";")[0].strip() != "application/x-www-form-urlencoded":
            append("violations", "content type " + ctype)
            return self.error(400, "bad content type", "type")
        form = urllib.parse.parse_qs(raw, keep_blank_values=True, strict_parsing=True)
        problem = form_problem(form)
        if problem:
            append("violations", problem + ": " + raw)
            return self.error(400, "Invalid request: " + problem, "form")
        self.meter_event({k: v[0] for k, v in form.items()})

    def v2(self, raw):
        if not self.headers.get("Stripe-Version"):
            append("violations", "no Stripe-Version on " + self.path)
            return self.error(400, "Stripe-Version is required for API v2", "version")
        auth = self.headers.get("Authorization", "")
        if self.path == SESSION_PATH:
            if auth != "Bearer " + key:
                append("violations", "authorization")
                return self.error(401, "Invalid API Key provided", "key")
            tok = "ekst_%s" % os.urandom(12).hex()
            now = time.time()
            with lock:
                tokens[tok] = now + 900
            iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))
            return self.answer(200, {"id": "mes_%s" % os.urandom(6).hex(), "object":
                                     "v2.billing.meter_event_session", "authentication_token":
                                     tok, "created": iso(now), "expires_at": iso(now + 900),
                                     "livemode": False})
        if auth == "Bearer " + key:
            append("violations", "the secret key on the stream")
            return self.error(401, "the stream takes a session token", "key")
        tok = auth[7:] if auth.startswith("Bearer ") else ""
        with lock:
            fault = faults.pop(0) if faults else None
            if fault == "expire":
                tokens.pop(tok, None)
            live = tokens.get(tok, 0) > time.time()
        if not live:
            append("answers.jsonl", {"status": 401, "identifier": "", "what": "expired"})
            return self.answer(401, {"error": {"type": "invalid_request_error", "code":
                                               "billing_meter_event_session_expired", "message":
                                               "The temporary session token has expired."}})
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            append("violations", "content type " + self.headers.get("Content-Type", ""))
            return self.error(400, "bad content type", "type")
        if fault in ("500", "429"):
            hdr = [("Retry-After", "1")] if fault == "429" else []
            return self.error(int(fault), "fault " + fault, "fault " + fault, "", hdr)
        try:
            events = json.loads(raw)["events"]
            problem = None if isinstance(events, list) and 1 <= len(events) <= 100 else \
                "%s events" % (len(events) if isinstance(events, list) else "no list of")
        except (ValueError, KeyError, TypeError):
            events, problem = [], "the body is not {\"events\": [...]}"
        for e in events if not problem else []:
            problem = stream_problem(e)
            if problem:
                break
        if problem:
            append("violations", problem + ": " + raw[:300])
            return self.error(400, "Invalid request: " + problem, "stream")
        with lock:
            fresh, dups = [], []
            for e in events:
                rec = {"identifier": e["identifier"], "customer": e["payload"]["stripe_customer_id"],
                       "value": int(e["payload"]["value"]),
                       "timestamp": int(rfc3339(e["timestamp"]))}
                (dups if rec["identifier"] in seen else fresh).append(json.dumps(rec))
                seen.add(rec["identifier"])
            for name, lines in (("events.jsonl", fresh), ("duplicates.jsonl", dups)):
                if lines:
                    append(name, "\n".join(lines))
        append("answers.jsonl", {"status": 200, "identifier": "", "what": "stream %d" % len(events)})
        self.answer(200, {})

    def meter_event(self, f):
        ident = f["identifier"]
        with lock:
            fault = faults.pop(0) if faults else None
        if fault in ("500", "429"):
            hdr = [("Retry-After", "1")] if fault == "429" else []
            return self.error(int(fault), "fault " + fault, "fault " + fault, ident, hdr)
        if f["payload[stripe_customer_id]"] == "cus_refused":
            return self.error(400, "No such customer: 'cus_refused'", "refused", ident,
                              [("Stripe-Should-Retry", "false")])
        with lock:
            dup = ident in seen
            if not dup:
                seen.add(ident)
                append("events.jsonl", {"identifier": ident,
                                        "customer": f["payload[stripe_customer_id]"],
                                        "value": int(f["payload[value]"]),
                                        "timestamp": int(f["timestamp"])})
        if dup:
            return self.error(400, "An event already exists with identifier %s." % ident,
                              "duplicate", ident, [("Stripe-Should-Retry", "false")])
        if fault == "hang":
            time.sleep(6)
        if fault == "garbage":
            append("answers.jsonl", {"status": 200, "identifier": ident, "what": "garbage"})
            return self.answer(200, None, body=b"<html>upstream hiccup")
        append("answers.jsonl", {"status": 200, "identifier": ident, "what": "ok"})
        self.answer(200, {"object": "billing.meter_event", "created": int(time.time()),
                          "event_name": f["event_name"], "identifier": ident, "livemode": False,
                          "payload": {"stripe_customer_id": f["payload[stripe_customer_id]"],
                                      "value": f["payload[value]"]},
                          "timestamp": int(f["timestamp"])})


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
with open(os.path.join(out_dir, "port.tmp"), "w", encoding="utf-8") as pf:
    pf.write("%d\n" % server.server_address[1])
os.replace(os.path.join(out_dir, "port.tmp"), os.path.join(out_dir, "port"))
server.serve_forever()
