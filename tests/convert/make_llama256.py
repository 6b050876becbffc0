#!/usr/bin/env python3
"""make_llama256.py - a float LLaMA whose every linear layer has a multiple of 256 inputs, so that
it converts to the TQ2_0 / TQ1_0 layouts (one scale per row) as well as to I2_S: the input of
the per-row scale tests and measurements of `bitnet convert --calibrate` (test_convert_calib.sh).

    python3 tests/convert/make_llama256.py [OUTDIR]      # default tests/data/convert/llama-256

Needs torch, transformers, safetensors. LlamaForCausalLM, hidden 256, FFN 512, 2 layers, 4 heads,
2 KV heads, untied head, the tokenizer of llama-st (384 tokens), trained in f32 for 300 steps on
the GPL-3 text Debian ships WITHOUT sections 1-3 (heldout-gpl3-s1-3.txt), so that perplexity on
those sections is measured on text the model never saw; saved in F16 as model.safetensors.
The output is committed; the tests never run this script.
"""
import os
import sys

import torch
import transformers

sys.path.insert(0, os.path.dirname(__file__))
from make_fixtures import TEXT, train  # noqa: E402  (the same text and training loop)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data", "convert")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(DATA, "llama-256")


def main():
    tok = transformers.PreTrainedTokenizerFast.from_pretrained(os.path.join(DATA, "llama-st"))
    held = open(os.path.join(DATA, "heldout-gpl3-s1-3.txt"), encoding="utf-8").read()
    assert held in TEXT, "the held-out sections are not verbatim in the GPL-3 text"
    train_text = TEXT.replace(held, "")
    ids = tok(train_text, add_special_tokens=False).input_ids
    print(f"training text: {len(train_text)} bytes, {len(ids)} tokens")
    cfg = transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=0, eos_token_id=1)
    cfg.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}
    torch.manual_seed(5)
    model = transformers.LlamaForCausalLM(cfg)
    train(model, ids, 300)
    model.to(torch.float16).save_pretrained(OUT)
    tok.save_pretrained(OUT)
    for name in sorted(os.listdir(OUT)):
        print(f"  {name:32s} {os.path.getsize(os.path.join(OUT, name)):9d}")


if __name__ == "__main__":
    main()
