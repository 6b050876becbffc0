#!/usr/bin/env python3
"""heldout_ppl.py - perplexity of a Hugging Face model (float, as saved) on a text file,
computed the way `bitnet perplexity` computes it (llama.cpp's method): the text tokenized with
BOS, cut into non-overlapping chunks of CTX tokens, each chunk's first token replaced by BOS,
the predictions of tokens CTX/2+1 .. CTX-1 scored. The float reference of the README's
ternarization table (the engine cannot run a float model).

    python3 tests/convert/heldout_ppl.py MODEL_DIR TEXT [CTX]      # CTX default 128
"""
import math
import sys

import torch
import transformers


def main():
    d, path = sys.argv[1], sys.argv[2]
    ctx = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    tok = transformers.AutoTokenizer.from_pretrained(d)
    model = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    ids = tok(open(path, encoding="utf-8").read()).input_ids
    bos = tok.bos_token_id
    nll, n = 0.0, 0
    first = ctx // 2
    for c in range(len(ids) // ctx):
        chunk = list(ids[c * ctx:(c + 1) * ctx])
        chunk[0] = bos
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([chunk])).logits[0].double()
        lp = torch.log_softmax(logits, dim=-1)
        for i in range(first, ctx - 1):
            nll -= lp[i, chunk[i + 1]].item()
            n += 1
    print(f"{math.exp(nll / n):.4f} over {n} tokens ({len(ids)} in the text)")


if __name__ == "__main__":
    main()
