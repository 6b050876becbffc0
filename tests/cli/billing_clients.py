"""The official openai Python client making completions for test_billing.sh.

usage: billing_clients.py BASE_URL N NAME=KEY...
Makes N completions with each key (one after another) and prints one JSON object: for each
NAME the requests and the prompt and completion tokens of the usage the client got."""
import json
import sys

import openai

base, n, pairs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
seen = {}
for pair in pairs:
    name, key = pair.split("=", 1)
    c = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)
    s = seen.setdefault(name, {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0})
    for i in range(n):
        r = c.completions.create(model="m", prompt="Once upon a time %d" % i, max_tokens=3 + i % 4,
                                 temperature=0)
        s["requests"] += 1
        s["prompt_tokens"] += r.usage.prompt_tokens
        s["completion_tokens"] += r.usage.completion_tokens
print(json.dumps(seen))
