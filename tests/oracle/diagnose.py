#!/usr/bin/env python3
"""diagnose.py - where does an engine's forward pass leave the oracle?

The engine has no hooks for intermediate values, so this narrows a disagreement from
the outside: it patches the fixture GGUF's block_count to 1, 2, ... n_layer (the engine
then runs only the first layers; tensors of later layers are ignored), runs the engine
(`test_oracle --eval`) and the numpy model of the GGUF path (make_fixture.np_forward) on
the same truncated model, and prints per depth and prompt the max |difference| and the
lowest cosine of the logits, separately for position 0 (no attention mixing; RoPE is the
identity there) and for the later positions.

Usage: python3 tests/oracle/diagnose.py [ENGINE] [DIR]
  ENGINE: build/tests/test_oracle (default); DIR: tests/data/oracle (default)
"""
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
import check_fixture as cf  # noqa: E402
import make_fixture as mf  # noqa: E402


def patch_u32(data, key, value):
    """The GGUF bytes with the u32 value of metadata key replaced."""
    k = key.encode()
    pat = struct.pack("<Q", len(k)) + k + struct.pack("<I", 4)
    i = data.index(pat) + len(pat)
    return data[:i] + struct.pack("<I", value) + data[i + 4:]


def stats(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.abs(a - b).max(), cos.min()


def main():
    engine = sys.argv[1] if len(sys.argv) > 1 else "build/tests/test_oracle"
    d = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "data",
                                                           "oracle")
    path = os.path.join(d, "bitnet-oracle.gguf")
    meta, t = cf.read_gguf(path)
    emeta, e = cf.read_gguf(os.path.join(d, "expected.gguf"))
    W = cf.weights_from_gguf(t)
    A = meta["general.architecture"]
    n_layer = meta[A + ".block_count"]
    mf.CONFIG.update({"rms_norm_eps": meta[A + ".attention.layer_norm_rms_epsilon"],
                      "rope_parameters": {"rope_theta": meta[A + ".rope.freq_base"]}})
    raw = open(path, "rb").read()
    prompts = [e[f"prompt.{i}.tokens"][0].astype(np.int64) for i in range(emeta["oracle.n_prompts"])]
    with tempfile.TemporaryDirectory() as tmp:
        for L in range(1, n_layer + 1):
            g = os.path.join(tmp, f"L{L}.gguf")
            open(g, "wb").write(patch_u32(raw, A + ".block_count", L))
            mf.CONFIG["num_hidden_layers"] = L
            line = []
            for i, toks in enumerate(prompts):
                out = os.path.join(tmp, "out.f32")
                r = subprocess.run([engine, "--eval", g, out] + [str(x) for x in toks],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    line.append(f"p{i}: engine failed: {r.stderr.strip()}")
                    continue
                ours = np.fromfile(out, "<f4").reshape(len(toks), -1)
                ref = mf.np_forward(W, toks)
                d0, c0 = stats(ours[:1], ref[:1])
                d1, c1 = stats(ours[1:], ref[1:])
                line.append(f"p{i}: pos0 {d0:.1e}/{c0:.5f} later {d1:.1e}/{c1:.5f}")
            print(f"{L} layers: " + "  ".join(line))
    print("(max|d| / min cos of the logits, engine vs numpy model of the GGUF path)")


if __name__ == "__main__":
    main()
