#!/usr/bin/env python3
"""gguf_f32_to_hf.py - a float bitnet-b1.58 GGUF as `bitnet train export --type f32` writes it
(the f32 twin of the bundled model: `bitnet train --fp32`) -> a Hugging Face BitNet directory
that `bitnet convert` and transformers read: config.json (BitNetForCausalLM, relu2, tied
embeddings), model.safetensors (f32, Hugging Face names), tokenizer.json (the GGUF's byte-level
BPE: tokens, merges, GPT-2 pre-tokenizer, BOS added) and tokenizer_config.json. The README's
ternarization table converts it (scripts/ternarize-table.sh TWIN=DIR).

    python3 tests/convert/gguf_f32_to_hf.py MODEL.gguf OUTDIR

Needs numpy, safetensors, tokenizers and torch (PyPI; the GGUF is read by tests/oracle's reader).
"""
import json
import os
import sys

import numpy as np
from safetensors.numpy import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
from check_fixture import read_gguf  # noqa: E402  (the GGUF reader of the oracle test)


LAYER = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj",
         "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
         "attn_output": "self_attn.o_proj", "attn_sub_norm": "self_attn.attn_sub_norm",
         "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj",
         "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj", "ffn_sub_norm": "mlp.ffn_sub_norm"}


def hf_name(g):
    top = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
           "output.weight": "lm_head.weight"}
    if g in top:
        return top[g]
    _, il, part, w = g.split(".")
    return f"model.layers.{il}.{LAYER[part]}.{w}"


def main():
    src, out = sys.argv[1], sys.argv[2]
    kv, raw = read_gguf(src)
    if any(sc is not None for _, sc in raw.values()):
        raise SystemExit(f"{src}: ternary tensors (export the twin with --type f32)")
    tensors = {k: a.astype(np.float32) for k, (a, _) in raw.items()}
    a = kv["general.architecture"]
    if a != "bitnet-b1.58":
        raise SystemExit(f"{src}: architecture {a}, bitnet-b1.58 expected")
    os.makedirs(out, exist_ok=True)
    E, nh = kv[a + ".embedding_length"], kv[a + ".attention.head_count"]
    bos, eos = kv["tokenizer.ggml.bos_token_id"], kv["tokenizer.ggml.eos_token_id"]
    cfg = {
        "architectures": ["BitNetForCausalLM"], "model_type": "bitnet",
        "hidden_size": E, "intermediate_size": kv[a + ".feed_forward_length"],
        "num_hidden_layers": kv[a + ".block_count"], "num_attention_heads": nh,
        "num_key_value_heads": kv[a + ".attention.head_count_kv"], "head_dim": E // nh,
        "max_position_embeddings": kv[a + ".context_length"],
        "rms_norm_eps": kv[a + ".attention.layer_norm_rms_epsilon"],
        "rope_theta": kv[a + ".rope.freq_base"], "vocab_size": kv[a + ".vocab_size"],
        "hidden_act": "relu2", "tie_word_embeddings": "output.weight" not in tensors,
        "bos_token_id": bos, "eos_token_id": eos, "attention_bias": False,
        "torch_dtype": "float32",
    }
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    save_file({hf_name(k): np.ascontiguousarray(v) for k, v in tensors.items()},
              os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    tokens = kv["tokenizer.ggml.tokens"]
    merges = [tuple(m.split(" ")) for m in kv["tokenizer.ggml.merges"]]
    tk = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(tokens[bos], special=True)])
    if kv.get("tokenizer.ggml.add_bos_token", False):
        tk.post_processor = processors.TemplateProcessing(
            single=f"{tokens[bos]} $A", special_tokens=[(tokens[bos], bos)])
    tk.save(os.path.join(out, "tokenizer.json"))
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": tokens[bos],
               "eos_token": tokens[eos],
               "add_bos_token": bool(kv.get("tokenizer.ggml.add_bos_token", False))},
              open(os.path.join(out, "tokenizer_config.json"), "w"), indent=2)
    print(f"{out}: {len(tensors)} tensors, {len(tokens)} tokens, {len(merges)} merges")


if __name__ == "__main__":
    main()
