#!/usr/bin/env python3
"""make_ternary_fixture.py - llama-ternary/, a LlamaForCausalLM whose conversion loses nothing
in the weights, so that `bitnet convert`'s validation measures the structure of the converted
model (tests/cli/test_convert.sh).

    python3 tests/convert/make_ternary_fixture.py [DIR]     # default tests/data/convert

Needs numpy and safetensors (PyPI). The output is committed; the tests never run this script.

It reads llama-st/ (make_fixtures.py) and writes llama-ternary/ with the same config, tokenizer
and norms, and every projection W replaced by sign(W) * a, a = mean|W| rounded to f16: no zeros,
so absmean gives back exactly +-1 times a (the matrix sizes are powers of two, so the mean of
|W| is a exactly). Embeddings and the LM head are F16 as in llama-st, which is what `bitnet
convert` writes by default. The converted model then differs from the f32 reference only by
the engine's int8 activations, and by any step the two do not share: writing LLaMA's missing
sub-norms as constants, for one, drops the validation cosine far below what int8 activations
cost.
"""
import json
import os
import shutil
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

BASE = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data", "convert")
SRC = os.path.join(BASE, "llama-st")
DST = os.path.join(BASE, "llama-ternary")
PROJ = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def main():
    index = json.load(open(os.path.join(SRC, "model.safetensors.index.json")))
    tensors = {}
    for shard in sorted(set(index["weight_map"].values())):
        tensors.update(load_file(os.path.join(SRC, shard)))
    out = {}
    for name, w in sorted(tensors.items()):
        if name.endswith("_proj.weight") and name.split(".")[-2] in PROJ:
            a = np.float16(np.abs(w.astype(np.float64)).mean())
            t = np.where(w >= 0, a, -a).astype(np.float16)
            assert np.abs(t.astype(np.float64)).mean() == float(a)
            out[name] = t
        else:
            out[name] = w
    os.makedirs(DST, exist_ok=True)
    save_file(out, os.path.join(DST, "model.safetensors"), metadata={"format": "pt"})
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(os.path.join(SRC, f), DST)
    print(f"{DST}: {len(out)} tensors")


if __name__ == "__main__":
    main()
