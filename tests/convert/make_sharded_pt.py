#!/usr/bin/env python3
"""make_sharded_pt.py - tests/data/convert/llama-pt-sharded: the llama-pt fixture's state dict
split into two torch.save shards with pytorch_model.bin.index.json, as save_pretrained writes
large PyTorch checkpoints. Run after make_fixtures.py (needs torch)."""
import json
import os
import shutil

import torch

D = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "convert")
src, out = os.path.join(D, "llama-pt"), os.path.join(D, "llama-pt-sharded")
sd = torch.load(os.path.join(src, "pytorch_model.bin"), weights_only=True)
os.makedirs(out, exist_ok=True)
names = list(sd)
half = len(names) // 2
shards = {"pytorch_model-00001-of-00002.bin": names[:half], "pytorch_model-00002-of-00002.bin": names[half:]}
wmap = {}
for fname, keys in shards.items():
    torch.save({k: sd[k] for k in keys}, os.path.join(out, fname))
    wmap.update({k: fname for k in keys})
with open(os.path.join(out, "pytorch_model.bin.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": sum(v.numel() * v.element_size() for v in sd.values())},
               "weight_map": wmap}, f, indent=1)
for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
    shutil.copy(os.path.join(src, f), out)
print(sorted(os.listdir(out)))
