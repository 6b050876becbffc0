#!/usr/bin/env python3
"""make_autobit_fixture.py - tests/data/convert/bitnet-autobit: a small BitNetForCausalLM saved
the way an AutoBitLinear checkpoint is (quantization_config linear_class autobitlinear,
quantization_mode offline): each projection's weight as ternary BF16 values (-1, 0, 1), about
a third of them zero, and a weight_scale (which AutoBitLinear multiplies by) drawn per layer,
with the numbers transformers computes from it in reference.json beside it.

    python3 tests/convert/make_autobit_fixture.py [DATA_DIR]    # default tests/data/convert

Needs torch, transformers, accelerate, safetensors (PyPI); runs in seconds on a CPU. The
outputs are committed (about 300 KB); the tests never run this script.

The model: hidden 128, FFN 128, 1 layer, 2 heads, 1 KV head, vocabulary 384 with the
byte-level BPE tokenizer of bitnet-packed, tied embeddings; random weights (seeded), the
embeddings large enough that the logits are far from uniform. Its weights are ternary as
stored, so the conversion is exact and bitnet must compute what transformers computes.

reference.json (from transformers' BitNetForCausalLM, loaded in float32):
  prompt, prompt_ids, top5     the next-token ids after the prompt, best first
  text_ids                     the ids of bitnet's built-in validation text (cv_builtin_text in
                               app/convert/convert_validate.c, read from there), BOS first, cut at 128
                               tokens as the validation cuts it
  ppl_text                     the perplexity transformers gives those ids: what `bitnet
                               convert` must report as validation.ppl_ref (its reference) and,
                               the conversion being lossless, as ppl_conv
  ppl_text_online              the same with quantization_mode online (absmean ternarization at
                               every forward, weight_scale unused)
"""
import json
import os
import re
import shutil
import sys
import tempfile

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # transformers' ActQuant uses torch.compile

import torch
import transformers
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "data", "convert")
SRC = os.path.join(DATA, "bitnet-packed")
OUT = os.path.join(DATA, "bitnet-autobit")
PROMPT = "This License applies to any program or other work"
MAX_TEXT_TOKENS = 128


def builtin_text():
    c = open(os.path.join(HERE, "..", "..", "app", "convert_validate.c"), encoding="utf-8").read()
    body = c[c.index("const char cv_builtin_text[] ="):]
    body = body[:body.index(";")]
    return "".join(json.loads(f'"{s}"') for s in re.findall(r'"((?:[^"\\]|\\.)*)"', body))


def make_model():
    """The checkpoint: ternary BF16 weights, weight_scale per projection, BF16 norms."""
    g = torch.Generator().manual_seed(12)
    E, F, V, KV = 128, 128, 384, 64
    sd = {"model.embed_tokens.weight": (torch.randn(V, E, generator=g) * 0.15).to(torch.bfloat16),
          "model.norm.weight": (1 + 0.1 * torch.randn(E, generator=g)).to(torch.bfloat16)}
    shapes = {"self_attn.q_proj": (E, E), "self_attn.k_proj": (KV, E), "self_attn.v_proj": (KV, E),
              "self_attn.o_proj": (E, E), "mlp.gate_proj": (F, E), "mlp.up_proj": (F, E),
              "mlp.down_proj": (E, F)}
    p = "model.layers.0."
    for name, shape in shapes.items():
        w = torch.randint(-1, 2, shape, generator=g).to(torch.bfloat16)
        sd[p + name + ".weight"] = w
        sd[p + name + ".weight_scale"] = (0.05 + 0.2 * torch.rand(1, generator=g)).to(torch.bfloat16)
    for name, n in (("input_layernorm", E), ("post_attention_layernorm", E),
                    ("self_attn.attn_sub_norm", E), ("mlp.ffn_sub_norm", F)):
        sd[p + name + ".weight"] = (1 + 0.1 * torch.randn(n, generator=g)).to(torch.bfloat16)
    return sd


def load(d):
    model = transformers.BitNetForCausalLM.from_pretrained(d, dtype=torch.float32)
    model.eval()
    for m in model.modules():  # the BF16 weights as they are (exactly) in f32, as bitnet computes
        for name, t in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
            if t.is_floating_point() and t.dtype != torch.float32:
                t.data = t.data.float()
    return model


def main():
    os.makedirs(OUT, exist_ok=True)
    out = make_model()
    save_file(out, os.path.join(OUT, "model.safetensors"), metadata={"format": "pt"})
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(SRC, f), OUT)
    cfg = json.load(open(os.path.join(SRC, "config.json")))
    cfg.update({"hidden_size": 128, "intermediate_size": 128, "num_hidden_layers": 1,
                "num_attention_heads": 2, "num_key_value_heads": 1})
    cfg["quantization_config"] = {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                  "quantization_mode": "offline"}
    json.dump(cfg, open(os.path.join(OUT, "config.json"), "w"), indent=2)

    tok = transformers.AutoTokenizer.from_pretrained(OUT)
    model = load(OUT)
    lin = model.model.layers[0].self_attn.q_proj
    assert type(lin).__name__ == "AutoBitLinear" and not lin.online_quant, type(lin)
    want = out["model.layers.0.self_attn.q_proj.weight_scale"].float()
    assert torch.equal(lin.weight_scale.float().reshape(-1), want.reshape(-1)), "weight_scale not loaded"
    ref = {"prompt": PROMPT}
    with torch.no_grad():
        ids = tok(PROMPT)["input_ids"]
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        ref["prompt_ids"] = ids
        ref["top5"] = torch.topk(logits, 5).indices.tolist()
        tids = tok(builtin_text())["input_ids"][:MAX_TEXT_TOKENS]
        x = torch.tensor([tids])
        loss = model(input_ids=x, labels=x).loss
        ref["text_ids"] = tids
        ref["ppl_text"] = float(torch.exp(loss))
    # the same checkpoint read with quantization_mode online: AutoBitLinear ternarizes the
    # weights by absmean at every forward and has no weight_scale (the stored one is unused)
    cfg["quantization_config"]["quantization_mode"] = "online"
    with tempfile.TemporaryDirectory() as tmp:
        for f in os.listdir(OUT):
            shutil.copy(os.path.join(OUT, f), tmp)
        json.dump(cfg, open(os.path.join(tmp, "config.json"), "w"), indent=2)
        online = load(tmp)
        assert online.model.layers[0].self_attn.q_proj.online_quant
        with torch.no_grad():
            ref["ppl_text_online"] = float(torch.exp(online(input_ids=x, labels=x).loss))
    json.dump(ref, open(os.path.join(OUT, "reference.json"), "w"), indent=1)
    print(f"transformers {transformers.__version__}: top-1 {ref['top5'][0]}, "
          f"perplexity {ref['ppl_text']:.4f} over {len(tids)} tokens")


if __name__ == "__main__":
    main()
