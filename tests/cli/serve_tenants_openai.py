"""The official openai Python client against `bitnet serve --tenants` (run by
test_serve_tenants.sh, which made the tenants, keys and the config's tiers).

usage: serve_tenants_openai.py BASE_URL BITNET KEYS_FILE
  KEYS_FILE  lines "NAME KEY ID": acme, globex (team: inference+usage), burst (developer with
             tiers.developer.requests_per_min 3), quota (business with monthly_tokens 30), admin
             (an admin key), victim (acme: inference, revoked halfway)
Prints one short line per check; exits 1 at the first failure."""
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import openai

base, bitnet, keys_path = sys.argv[1], sys.argv[2], sys.argv[3]
KEYS = {}
for line in open(keys_path, encoding="utf-8"):
    name, key, kid = line.split()
    KEYS[name] = (key, kid)
seen = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}  # usage the clients got


def check(cond, what):
    if not cond:
        print("FAIL " + what)
        sys.exit(1)
    print(what)


def client(name):
    return openai.OpenAI(base_url=base, api_key=KEYS[name][0], max_retries=0, timeout=120)


def count(usage):
    seen["requests"] += 1
    seen["prompt_tokens"] += usage.prompt_tokens
    seen["completion_tokens"] += usage.completion_tokens


def complete(c, n=4):
    r = c.completions.create(model="m", prompt="Once upon a time", max_tokens=n, temperature=0)
    count(r.usage)
    return r


def get(path, name):
    """GET path with name's key: (status, document)."""
    req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + KEYS[name][0]})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


# ---- two tenants, each its own usage ---------------------------------------------------------
acme, globex = client("acme"), client("globex")
for _ in range(2):
    complete(acme)
complete(globex, 6)
msgs = [{"role": "user", "content": "Tell me a story"}]
usage = None
for ch in acme.chat.completions.create(model="m", messages=msgs, max_tokens=8, temperature=0,
                                       stream=True, stream_options={"include_usage": True}):
    usage = ch.usage or usage
check(usage is not None and usage.completion_tokens > 0, "acme: a stream with its usage")
count(usage)
r = acme.completions.with_raw_response.create(model="m", prompt="Hi", max_tokens=2)
h = r.headers
check(h.get("x-ratelimit-limit-requests") == "600" and
      int(h.get("x-ratelimit-remaining-requests", "-1")) < 600 and
      h.get("x-ratelimit-reset-requests", "").endswith("s"),
      "x-ratelimit-*-requests on an answer: " + h.get("x-ratelimit-remaining-requests", "none"))
check("x-ratelimit-limit-tokens" in h and "x-ratelimit-remaining-tokens" in h and
      "x-ratelimit-reset-tokens" in h, "x-ratelimit-*-tokens on an answer")
count(r.parse().usage)

st, doc = get("/usage", "acme")
check(st == 200 and doc["data"] and all(row["tenant"] == "acme" for row in doc["data"]),
      "acme's usage key sees acme's rows only")
check(doc["total"]["requests"] == 4, "acme's ledger: 4 requests (got %s)" % doc["total"])
st, doc = get("/usage?tenant=globex", "acme")
check(st == 403 and doc["error"]["code"] == "insufficient_scope", "acme cannot read globex's usage")
st, doc = get("/usage", "globex")
check(st == 200 and [r["tenant"] for r in doc["data"]] == ["globex"] and
      doc["total"]["completion_tokens"] == 6, "globex sees its own 6 tokens")
st, doc = get("/tenants", "acme")
check(st == 403, "GET /v1/tenants with a usage key: 403")
st, doc = get("/tenants", "admin")
check(st == 200 and {"acme", "globex"} <= {t["name"] for t in doc["data"]},
      "GET /v1/tenants with the admin key lists them")
st, doc = get("/usage?from=yesterday", "admin")
check(st == 400 and doc["error"]["type"] == "invalid_request_error", "a bad from: 400")
st, doc = get("/usage?tenant=nobody", "admin")
check(st == 404, "an unknown tenant: 404")

# ---- a revoked key fails on its next request ------------------------------------------------
victim = client("victim")
complete(victim, 2)
subprocess.run([bitnet, "keys", "revoke", KEYS["victim"][1]], check=True, capture_output=True)
try:
    complete(victim, 2)
    check(False, "a revoked key refused")
except openai.AuthenticationError as e:
    check(e.status_code == 401 and e.code == "invalid_api_key", "a revoked key: 401 at once")
try:
    openai.OpenAI(base_url=base, api_key="bnk_nope", max_retries=0).models.list()
    check(False, "a malformed key refused")
except openai.AuthenticationError as e:
    check(e.status_code == 401, "a malformed key: AuthenticationError")
try:
    client("admin").completions.create(model="m", prompt="x", max_tokens=1)
    check(False, "an admin-only key cannot complete")
except openai.PermissionDeniedError as e:
    check(e.status_code == 403 and e.code == "insufficient_scope", "no inference scope: 403")

# ---- a burst beyond 3 requests a minute: GCRA admits 3, then one each 20 s -------------------
burst = client("burst")
ok = limited = 0
t0 = time.monotonic()
for _ in range(8):
    try:
        complete(burst, 1)
        ok += 1
    except openai.RateLimitError as e:
        limited += 1
        hd = e.response.headers
        good = (e.code == "rate_limit_exceeded" and int(hd["retry-after"]) >= 1 and
                hd["x-ratelimit-remaining-requests"] == "0" and
                hd["x-ratelimit-limit-requests"] == "3")
        check(good, "429 %d: rate_limit_exceeded, Retry-After %s, remaining 0" %
              (limited, hd.get("retry-after")))
elapsed = time.monotonic() - t0
most = 3 + int(elapsed // 20)  # what the bucket could have refilled meanwhile
check(ok >= 3 and ok <= most and ok + limited == 8,
      "burst of 8 in %.1f s: %d admitted, %d got 429 (GCRA: 3, at most %d)" %
      (elapsed, ok, limited, most))

# ---- the monthly quota: 30 tokens ------------------------------------------------------------
quota = client("quota")
complete(quota, 30)
try:
    complete(quota, 1)
    check(False, "past the quota refused")
except openai.RateLimitError as e:
    check(e.code == "insufficient_quota" and e.body["type"] == "insufficient_quota",
          "past the monthly quota: 429 insufficient_quota")

# ---- exact metering: what the clients got == the ledger == bitnet usage report ----------------
st, doc = get("/usage", "admin")
tot = doc["total"]
check(st == 200 and tot == seen, "GET /v1/usage total == the clients' usage %s" % seen)
rep = json.loads(subprocess.run([bitnet, "usage", "report", "--json"], check=True,
                                capture_output=True, text=True).stdout)["total"]
check({k: rep[k] for k in seen} == seen, "bitnet usage report total == the clients' usage")
