#!/usr/bin/env python3
"""check_fixture.py - checks the committed fixture without our C code.

Reads tests/data/oracle/bitnet-oracle.gguf with a small GGUF reader of its own, decodes
the I2_S and F16 tensors by the layouts in /work/shared/FORMATS.md (not with our
types.c), runs make_fixture.py's numpy model of the GGUF path on them and compares with
the expected logits in tests/data/oracle/expected.gguf. With --dump DIR it also writes
the numpy model's hidden state after each layer (f32 [T, hidden], raw little-endian,
prompt<i>.layer<L>.f32), to compare an engine's intermediate values with.

Usage: python3 tests/oracle/check_fixture.py [DIR] [--dump OUT]   (DIR: tests/data/oracle)
"""
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
import make_fixture as mf  # noqa: E402

GGUF_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
               10: "<Q", 11: "<q", 12: "<d"}


class Reader:
    def __init__(self, data):
        self.d, self.o = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.o)
        self.o += struct.calcsize(fmt)
        return v[0]

    def string(self):
        n = self.take("<Q")
        s = self.d[self.o:self.o + n].decode("utf-8", "replace")
        self.o += n
        return s

    def value(self, t):
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("<I"), self.take("<Q")
            return [self.value(et) for _ in range(n)]
        return self.take(GGUF_SCALAR[t])


def read_gguf(path):
    """-> (metadata dict, {name: (array shaped [ne[n-1], ..., ne[0]], scale or None)})"""
    data = open(path, "rb").read()
    r = Reader(data)
    assert data[:4] == b"GGUF", path
    r.o = 4
    version, n_t, n_kv = r.take("<I"), r.take("<Q"), r.take("<Q")
    assert version == 3
    meta = {}
    for _ in range(n_kv):
        k = r.string()
        meta[k] = r.value(r.take("<I"))
    infos = []
    for _ in range(n_t):
        name = r.string()
        nd = r.take("<I")
        ne = [r.take("<Q") for _ in range(nd)]
        infos.append((name, ne, r.take("<I"), r.take("<Q")))
    align = meta.get("general.alignment", 32)
    base = (r.o + align - 1) // align * align
    tensors = {}
    for name, ne, typ, off in infos:
        n = int(np.prod(ne))
        p = base + off
        scale = None
        if typ == 0:
            a = np.frombuffer(data, "<f4", n, p)
        elif typ == 1:
            a = np.frombuffer(data, "<f2", n, p).astype(np.float32)
        elif typ == 26:
            a = np.frombuffer(data, "<i4", n, p)
        elif typ == 36:
            a, scale = decode_i2s(data[p:p + n // 4 + 32], n)
        else:
            raise ValueError(f"{name}: type {typ}")
        tensors[name] = (a.reshape(list(reversed(ne))), scale)
    return meta, tensors


def decode_i2s(buf, n):
    """FORMATS.md: 128 weights in 32 bytes; byte j holds weights j, j+32, j+64, j+96 in
    bits 7:6, 5:4, 3:2, 1:0; code 0 = -1, 1 = 0, 2 = +1; then an f32 scale."""
    codes = np.frombuffer(buf, np.uint8, n // 4).reshape(-1, 32)
    parts = [(codes >> s) & 3 for s in (6, 4, 2, 0)]  # each [blocks, 32]
    q = np.stack(parts, 1).reshape(-1).astype(np.int8) - 1
    assert (q <= 1).all(), "code 3 in I2_S data"
    scale = struct.unpack_from("<f", buf, n // 4)[0]
    return q, np.float32(scale)


HF = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
      "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
      "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
      "attn_norm": "input_layernorm", "attn_sub_norm": "self_attn.attn_sub_norm",
      "ffn_norm": "post_attention_layernorm", "ffn_sub_norm": "mlp.ffn_sub_norm"}


def weights_from_gguf(t):
    """GGUF tensors -> the names make_fixture.np_forward reads."""
    W = {"model.embed_tokens.weight": t["token_embd.weight"][0],
         "model.norm.weight": t["output_norm.weight"][0]}
    for name, (a, scale) in t.items():
        if not name.startswith("blk."):
            continue
        _, L, kind, _ = name.split(".")
        key = f"model.layers.{L}.{HF[kind]}"
        if scale is not None:
            W[key + ".qweight"] = a
            W[key + ".wscale"] = np.array([scale], np.float32)
        else:
            W[key + ".weight"] = a
    return W


def main():
    args = sys.argv[1:]
    dump = None
    if "--dump" in args:
        i = args.index("--dump")
        dump = args[i + 1]
        del args[i:i + 2]
    d = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "data", "oracle")
    meta, t = read_gguf(os.path.join(d, "bitnet-oracle.gguf"))
    emeta, e = read_gguf(os.path.join(d, "expected.gguf"))
    print("oracle made with torch %s, transformers %s, seed %s" % (
        emeta.get("oracle.torch"), emeta.get("oracle.transformers"), emeta.get("oracle.seed")))
    W = weights_from_gguf(t)
    A = meta["general.architecture"]
    mf.CONFIG.update({
        "hidden_size": meta[A + ".embedding_length"],
        "num_attention_heads": meta[A + ".attention.head_count"],
        "num_key_value_heads": meta[A + ".attention.head_count_kv"],
        "num_hidden_layers": meta[A + ".block_count"],
        "rms_norm_eps": meta[A + ".attention.layer_norm_rms_epsilon"],
        "rope_parameters": {"rope_theta": meta[A + ".rope.freq_base"]},
    })
    worst = 0.0
    for i in range(emeta["oracle.n_prompts"]):
        toks = e[f"prompt.{i}.tokens"][0].astype(np.int64)
        exp = e[f"prompt.{i}.logits"][0]
        hidden = []
        ref = mf.np_forward(W, toks, hidden=hidden)
        dmax, cmin, agree = mf.compare(ref, exp)
        worst = max(worst, dmax)
        print(f"prompt {i}: {len(toks)} tokens: numpy on the GGUF vs transformers: "
              f"max|d| {dmax:.2e}, min cos {cmin:.8f}, argmax agreement {agree:.3f}")
        if dump:
            os.makedirs(dump, exist_ok=True)
            for L, h in enumerate(hidden):
                h.astype("<f4").tofile(os.path.join(dump, f"prompt{i}.layer{L}.f32"))
    print("worst max|d| %.3g" % worst)


if __name__ == "__main__":
    main()
