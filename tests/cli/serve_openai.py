"""The official openai Python client against `bitnet serve` (run by test_serve.sh).

usage: serve_openai.py BASE_URL GEN_TXT CHAT_TXT N_PROMPT
  GEN_TXT   `bitnet generate --temp 0 -n 24` of "Once upon a time" (the text, a newline)
  CHAT_TXT  the greedy reply to "Tell me a story" in the model's chat format (a line)
  N_PROMPT  `bitnet tokenize`'s count for "Once upon a time"
Prints one short line per check; exits 1 at the first failure."""
import sys

import openai

base, gen_path, chat_path, n_prompt = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
gen = open(gen_path, encoding="utf-8").read().rstrip("\n")
chat_want = open(chat_path, encoding="utf-8").read().rstrip("\n")
client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=120)
MSGS = [{"role": "user", "content": "Tell me a story"}]


def check(cond, what):
    if not cond:
        print("FAIL " + what)
        sys.exit(1)
    print(what)


r = client.completions.create(model="m", prompt="Once upon a time", max_tokens=24, temperature=0)
check(r.choices[0].text == gen, "completions: generate's text")
check(r.usage.prompt_tokens == n_prompt and r.usage.completion_tokens == 24
      and r.usage.total_tokens == n_prompt + 24, "completions: usage")

r = client.chat.completions.create(model="m", messages=MSGS, max_tokens=40, temperature=0)
check(r.choices[0].message.role == "assistant" and r.choices[0].message.content == chat_want,
      "chat: the greedy reply")
check(r.choices[0].finish_reason in ("stop", "length") and r.usage.completion_tokens > 0,
      "chat: finish_reason and usage")

parts, finish, usage = [], None, None
for ch in client.chat.completions.create(model="m", messages=MSGS, max_tokens=40, temperature=0,
                                         stream=True, stream_options={"include_usage": True}):
    if ch.usage:
        usage = ch.usage
    for c in ch.choices:
        parts.append(c.delta.content or "")
        finish = c.finish_reason or finish
check("".join(parts) == chat_want, "chat stream: the same reply")
check(finish in ("stop", "length") and usage and usage.completion_tokens > 0,
      "chat stream: finish_reason and usage")

try:
    client.chat.completions.create(model="m", messages=MSGS, n=2)
    check(False, "n=2 refused")
except openai.BadRequestError as e:
    check(e.status_code == 400, "n=2: BadRequestError")
