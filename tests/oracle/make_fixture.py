#!/usr/bin/env python3
"""make_fixture.py - the independent oracle for bitnet's forward pass.

Builds a small random BitNet b1.58 model with Hugging Face transformers
(BitNetForCausalLM, model_type "bitnet"), loads it back through transformers' own
BitNet quantizer in online mode (AutoBitLinear: weights ternarized by absmean per tensor
and activations quantized per token to int8 on every forward pass), runs it on a few
prompts of token ids and writes one safetensors file holding

  - every weight as the model holds it (f32; tied embeddings once),
  - for each of the 28 BitLinear layers the ternary codes (int8, [out, in]) and the
    per-tensor dequantization scale exactly as transformers' WeightQuant computes them
    (q = clamp(round(W * s), -1, 1) with s = 1 / max(mean|W|, 1e-5) in f32, dequantized
    weight q / s, so the stored scale is the f32 value 1 / s),
  - the prompts (int32) and transformers' logits at every position (f32 [T, vocab]),
  - the hidden state after the embedding and after each layer, and the final-norm
    output (f32 [T, hidden]) - for layer-by-layer diagnosis, not for the C test,
  - the configuration in the metadata.

`test_oracle --generate FILE DIR` (tests/unit/test_oracle.c) turns that file into the
committed fixture: the model as a GGUF written by our writer, and the expected logits.

It also runs a plain-numpy model of the GGUF path (integer ternary x int8 dot products,
scales applied after, float64 elsewhere) and prints how far it lands from transformers:
that gap is what rounding alone produces and is the basis of the test's tolerance.

Usage: python3 tests/oracle/make_fixture.py OUT.safetensors   (see README.md)
"""
import json
import os
import sys
import tempfile

# transformers wraps WeightQuant/ActQuant in torch.compile; eager mode is the definition
# of what they compute and needs no C++ toolchain. Must be set before torch is imported.
os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import BitNetConfig, BitNetForCausalLM  # noqa: E402
from transformers.integrations.bitnet import AutoBitLinear  # noqa: E402

SEED = 1234
CONFIG = dict(
    vocab_size=512,
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    hidden_act="relu2",
    max_position_embeddings=128,
    rms_norm_eps=1e-5,
    rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
    tie_word_embeddings=True,
    bos_token_id=1,
    eos_token_id=2,
)
QUANT = {"quant_method": "bitnet", "linear_class": "autobitlinear", "quantization_mode": "online"}
PROMPT_LENGTHS = [8, 17, 29, 40]
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def randomize(model, gen):
    """Weights with more structure than the default init, so a mix-up shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("embed_tokens.weight"):
                # std 0.1 so the tied LM head gives logits of a useful spread; values made
                # exactly representable in f16 so the GGUF's F16 token_embd loses nothing
                p.copy_((torch.randn(p.shape, generator=gen) * 0.1).half().float())
            elif "norm" in name:
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            else:
                # each linear gets its own scale, so a per-tensor scale mix-up shows
                f = 0.5 + 1.5 * torch.rand(1, generator=gen).item()
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02 * f)


def ternarize(w):
    """transformers.integrations.bitnet.WeightQuant.forward, split into codes and scale."""
    w = w.float()
    s = 1.0 / w.abs().mean().clamp_(min=1e-5)
    q = (w * s).round().clamp(-1, 1)
    deq = q / s
    scale = (torch.ones(1) / s).float()  # the value q = +1 dequantizes to
    assert torch.equal(q * scale, deq), "q * (1/s) must equal q / s bit for bit"
    return q.to(torch.int8), scale


def build():
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    config = BitNetConfig(**CONFIG)
    config.quantization_config = dict(QUANT)
    base = BitNetForCausalLM(config)
    randomize(base, gen)
    with tempfile.TemporaryDirectory() as d:
        base.save_pretrained(d)
        model = BitNetForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                  attn_implementation="eager")
    model.eval()
    # the quantizer really is in place: every linear but the LM head is an online
    # AutoBitLinear, and the weights came back unchanged
    n_auto = 0
    for name, mod in model.named_modules():
        if isinstance(mod, AutoBitLinear):
            assert mod.online_quant, name
            n_auto += 1
    assert n_auto == 7 * CONFIG["num_hidden_layers"], n_auto
    assert not isinstance(model.lm_head, AutoBitLinear)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    sd_base = base.state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd_base[k]), k
    return model, gen


def prompts(gen):
    out = []
    for i, n in enumerate(PROMPT_LENGTHS):
        t = torch.randint(0, CONFIG["vocab_size"], (n,), generator=gen, dtype=torch.int64)
        if i % 2 == 0:
            t[0] = CONFIG["bos_token_id"]
        out.append(t)
    return out


def run(model, toks):
    hidden = []
    hooks = [model.model.embed_tokens.register_forward_hook(
        lambda m, i, o: hidden.append(o[0].detach().clone()))]
    for layer in model.model.layers:
        hooks.append(layer.register_forward_hook(
            lambda m, i, o: hidden.append((o[0] if isinstance(o, tuple) else o)[0].detach().clone())))
    hooks.append(model.model.norm.register_forward_hook(
        lambda m, i, o: hidden.append(o[0].detach().clone())))
    with torch.no_grad():
        logits = model(input_ids=toks[None, :], use_cache=False).logits[0].float()
    for h in hooks:
        h.remove()
    return logits, hidden


# ---- a plain-numpy model of the GGUF path, for the size of rounding differences ----------

def np_rmsnorm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def np_act_quant(x):
    """f32 as transformers / bn_quantize_act_row: s = 127 / max|x|, ties to even."""
    x = x.astype(np.float32)
    s = np.float32(127) / np.maximum(np.abs(x).max(-1, keepdims=True), np.float32(1e-5))
    q = np.clip(np.rint(x * s), -128, 127)
    return q, s


def np_bitlinear(x, q, scale):
    xq, s = np_act_quant(x)
    acc = xq.astype(np.int64) @ q.astype(np.int64).T   # exact integer dot products
    return acc.astype(np.float64) / s.astype(np.float64) * float(scale)


def np_forward(W, toks, kv_f16=False, hidden=None):
    """hidden, when a list, receives the embeddings and the state after each layer."""
    c = CONFIG
    H, nh, nkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd, eps = H // nh, c["rms_norm_eps"]
    emb = W["model.embed_tokens.weight"].astype(np.float64)
    x = emb[toks]
    T = len(toks)
    inv = 1.0 / (c["rope_parameters"]["rope_theta"] ** (np.arange(0, hd, 2) / hd))
    ang = np.arange(T)[:, None] * inv[None, :]
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))
    if hidden is not None:
        hidden.append(x.copy())

    def rope(v):  # v: [T, heads, hd], rotate-half
        r = np.concatenate([-v[..., hd // 2:], v[..., :hd // 2]], -1)
        return v * cos[:, None, :] + r * sin[:, None, :]

    def lin(pfx, name, inp):
        return np_bitlinear(inp, W[f"{pfx}.{name}.qweight"], W[f"{pfx}.{name}.wscale"][0])

    for L in range(c["num_hidden_layers"]):
        p = f"model.layers.{L}"
        h = np_rmsnorm(x, W[f"{p}.input_layernorm.weight"], eps)
        q = rope(lin(p, "self_attn.q_proj", h).reshape(T, nh, hd))
        k = rope(lin(p, "self_attn.k_proj", h).reshape(T, nkv, hd))
        v = lin(p, "self_attn.v_proj", h).reshape(T, nkv, hd)
        if kv_f16:
            k, v = k.astype(np.float16).astype(np.float64), v.astype(np.float16).astype(np.float64)
        o = np.zeros((T, nh, hd))
        for hh in range(nh):
            kh, vh = k[:, hh // (nh // nkv)], v[:, hh // (nh // nkv)]
            sc = q[:, hh] @ kh.T / np.sqrt(hd)
            sc[np.triu(np.ones((T, T), bool), 1)] = -np.inf
            sc = np.exp(sc - sc.max(-1, keepdims=True))
            o[:, hh] = (sc / sc.sum(-1, keepdims=True)) @ vh
        o = np_rmsnorm(o.reshape(T, H), W[f"{p}.self_attn.attn_sub_norm.weight"], eps)
        x = x + lin(p, "self_attn.o_proj", o)
        h = np_rmsnorm(x, W[f"{p}.post_attention_layernorm.weight"], eps)
        g = np.maximum(lin(p, "mlp.gate_proj", h), 0) ** 2 * lin(p, "mlp.up_proj", h)
        g = np_rmsnorm(g, W[f"{p}.mlp.ffn_sub_norm.weight"], eps)
        x = x + lin(p, "mlp.down_proj", g)
        if hidden is not None:
            hidden.append(x.copy())
    x = np_rmsnorm(x, W["model.norm.weight"], eps)
    return x @ emb.T


def compare(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.abs(a - b).max(), cos.min(), (a.argmax(-1) == b.argmax(-1)).mean()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_fixture.py OUT.safetensors")
    torch.set_num_threads(1)  # one summation order
    model, gen = build()
    toks = prompts(gen)

    tensors = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight":
            continue  # tied: the same tensor as model.embed_tokens.weight
        tensors[k] = v.detach().float().contiguous()
    for L in range(CONFIG["num_hidden_layers"]):
        for lname in LINEARS:
            key = f"model.layers.{L}.{lname}"
            q, scale = ternarize(tensors[key + ".weight"])
            tensors[key + ".qweight"] = q.contiguous()
            tensors[key + ".wscale"] = scale
    W = {k: v.numpy() for k, v in tensors.items()}

    worst = []
    for i, t in enumerate(toks):
        logits, hidden = run(model, t)
        tensors[f"prompt.{i}.tokens"] = t.to(torch.int32)
        tensors[f"prompt.{i}.logits"] = logits.contiguous()
        for j, h in enumerate(hidden):
            tensors[f"prompt.{i}.hidden.{j}"] = h.float().contiguous()
        ref = np_forward(W, t.numpy())
        ref16 = np_forward(W, t.numpy(), kv_f16=True)
        d, c, a = compare(ref, logits.numpy())
        d16, c16, a16 = compare(ref16, logits.numpy())
        worst.append((d, c, d16, c16))
        print(f"prompt {i}: {len(t):2d} tokens, logits std {logits.std():.3f}; numpy GGUF path vs "
              f"transformers: max|d| {d:.2e} min cos {c:.8f} argmax {a:.3f}; "
              f"with f16 KV: max|d| {d16:.2e} min cos {c16:.8f} argmax {a16:.3f}")

    meta = {
        "config": json.dumps(CONFIG),
        "quantization_config": json.dumps(QUANT),
        "seed": str(SEED),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "n_prompts": str(len(toks)),
    }
    save_file(tensors, sys.argv[1], metadata=meta)
    print(f"wrote {sys.argv[1]}: {len(tensors)} tensors; torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    print("numpy vs transformers, worst over prompts: max|d| %.2e, min cos %.8f; "
          "f16 KV: max|d| %.2e, min cos %.8f" % (max(w[0] for w in worst), min(w[1] for w in worst),
                                                  max(w[2] for w in worst), min(w[3] for w in worst)))


if __name__ == "__main__":
    main()
