#!/usr/bin/env python3
"""make_fixtures.py - tiny trained models in the real Hugging Face / PyTorch / ONNX formats, the
inputs of tests/cli/test_convert.sh (`bitnet convert`).

    python3 tests/convert/make_fixtures.py [OUTDIR]      # default tests/data/convert

Needs torch, transformers, tokenizers, safetensors, onnx, onnxscript (PyPI); runs on a CPU in
about a minute. The outputs are committed; the tests never run this script.

What it writes (every model is trained for a few hundred steps on the GPL-3 text that Debian
ships in /usr/share/common-licenses, so that logits and perplexities mean something):

  tokenizer: a byte-level BPE (LLaMA-3 pre-tokenizer regex, 384 tokens) trained with
             `tokenizers`, saved by PreTrainedTokenizerFast (tokenizer.json and
             tokenizer_config.json with a chat template).
  bitnet-packed/   BitNetForCausalLM (hidden 256, FFN 512, 2 layers, 4 heads, 2 KV heads, tied
             embeddings), trained with BitNet b1.58 fake quantization (absmean ternary weights,
             per-token int8 activations, straight-through gradients), then saved the way
             microsoft/bitnet-b1.58-2B-4T is: quantization_config {quant_method bitnet,
             linear_class bitlinear, quantization_mode offline}, each projection's `weight`
             packed 4 ternary values per uint8 ([out/4, in]; row j + i*out/4 in bits 2i..2i+1,
             value = bits - 1) and `weight_scale` = 1 / mean|W| (BitLinear divides by it),
             everything else BF16, model.safetensors. The script checks that transformers'
             own BitNet loader gives the logits of the fake-quantized training model.
  llama-st/  LlamaForCausalLM (hidden 128, FFN 256, 2 layers, 2 heads, 1 KV head, untied head),
             trained in f32, saved by save_pretrained in F16 as two safetensors shards with
             model.safetensors.index.json.
  llama-pt/  the same weights in BF16 as pytorch_model.bin (torch.save of the state dict).
  llama-onnx/ the same model exported by torch.onnx.export (dynamo) with external data:
             model.onnx + model.onnx.data (the exporter names most weights val_N, transposed;
             bitnet maps them back through the nodes' name scopes).
  reference.json: per model, the token ids of a prompt and the top-5 next-token ids of the
             source model under transformers. tests/cli/test_convert.sh checks the converted
             tokenizers' ids against them and the packed BitNet model's next token against
             the top-1 (the LLaMA models are ternarized after training, so their logits are
             compared with bitnet's own f32 reference forward instead).
"""
import json
import os
import shutil
import sys

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # transformers' BitLinear uses torch.compile

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data", "convert")
TEXT = open("/usr/share/common-licenses/GPL-3", encoding="utf-8").read()
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
CHAT = ("{{ bos_token }}{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}"
        "<|eot_id|>{% endfor %}{% if add_generation_prompt %}Assistant: {% endif %}")
PROMPT = "This License applies to any program or other work"


def make_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=SPECIALS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT], trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)])
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIALS[0],
                                                eos_token=SPECIALS[1])
    fast.chat_template = CHAT
    return fast


def batches(ids, seq, bs, steps, seed):
    g = torch.Generator().manual_seed(seed)
    data = torch.tensor(ids)
    for _ in range(steps):
        starts = torch.randint(0, len(data) - seq - 1, (bs,), generator=g)
        x = torch.stack([data[s:s + seq] for s in starts])
        y = torch.stack([data[s + 1:s + seq + 1] for s in starts])
        yield x, y


def train(model, ids, steps, lr=3e-3, seq=48, bs=8, seed=1):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    for step, (x, y) in enumerate(batches(ids, seq, bs, steps, seed)):
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"  step {step:4d} loss {loss.item():.3f}", flush=True)
    model.eval()
    return loss.item()


# ---- BitNet b1.58 fake quantization (what QAT trains with) ---------------------------------

def weight_quant(w):
    s = 1.0 / w.abs().mean().clamp(min=1e-5)
    return (w * s).round().clamp(-1, 1) / s


def act_quant(x):
    s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return (x * s).round().clamp(-128, 127) / s


class QATLinear(torch.nn.Linear):
    def forward(self, x):
        w = self.weight + (weight_quant(self.weight) - self.weight).detach()
        xq = x + (act_quant(x) - x).detach()
        return F.linear(xq, w, self.bias)


def make_qat(model):
    for name, mod in list(model.model.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, torch.nn.Linear) and not isinstance(child, QATLinear):
                q = QATLinear(child.in_features, child.out_features, bias=child.bias is not None)
                q.weight = child.weight
                setattr(mod, cname, q)


def pack_ternary(w):
    """[out, in] float -> (uint8 [out/4, in], weight_scale) as transformers' BitLinear reads."""
    s = 1.0 / w.abs().mean().clamp(min=1e-5)
    q = ((w * s).round().clamp(-1, 1) + 1).to(torch.uint8)   # codes 0, 1, 2
    r = w.shape[0] // 4
    packed = torch.zeros((r, w.shape[1]), dtype=torch.uint8)
    for i in range(4):
        packed |= q[i * r:(i + 1) * r] << (2 * i)
    return packed, s


def top5(model, tok):
    ids = tok(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1].float()
    return ids[0].tolist(), torch.topk(logits, 5).indices.tolist(), logits


def bitnet(tok, ids, ref):
    d = os.path.join(OUT, "bitnet-packed")
    cfg = transformers.BitNetConfig(
        vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, hidden_act="relu2",
        max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=True,
        bos_token_id=0, eos_token_id=1)
    cfg.rope_parameters = {"rope_type": "default", "rope_theta": 500000.0}
    torch.manual_seed(2)
    model = transformers.BitNetForCausalLM(cfg)
    make_qat(model)
    print("bitnet (QAT):")
    train(model, ids, 200, lr=4e-3)
    want_ids, want_top, want_logits = top5(model, tok)
    sd = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight":
            continue                                   # tied
        if k.endswith("proj.weight"):
            packed, s = pack_ternary(v.float())
            sd[k] = packed
            sd[k.replace(".weight", ".weight_scale")] = s.reshape(1).to(torch.bfloat16)
        else:
            sd[k] = v.to(torch.bfloat16).contiguous()
    os.makedirs(d, exist_ok=True)
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    c = cfg.to_dict()
    c["architectures"] = ["BitNetForCausalLM"]
    c["quantization_config"] = {"quant_method": "bitnet", "linear_class": "bitlinear",
                                "quantization_mode": "offline"}
    c["torch_dtype"] = "bfloat16"
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    tok.save_pretrained(d)
    # transformers' own loader of the packed layout must agree with the training model
    loaded = transformers.BitNetForCausalLM.from_pretrained(d, dtype=torch.float32)
    got_ids, got_top, got_logits = top5(loaded, tok)
    cos = F.cosine_similarity(want_logits, got_logits, dim=0).item()
    print(f"  transformers loader vs training model: top-5 {got_top} vs {want_top}, cosine {cos:.5f}")
    assert got_top[0] == want_top[0] and cos > 0.99, "packed layout does not round-trip"
    ref["bitnet-packed"] = {"prompt_ids": got_ids, "top5": got_top}


def llama(tok, ids, ref):
    cfg = transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
        rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=0, eos_token_id=1)
    cfg.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}
    torch.manual_seed(3)
    model = transformers.LlamaForCausalLM(cfg)
    print("llama (f32):")
    train(model, ids, 200)
    p, top, _ = top5(model, tok)
    ref["llama"] = {"prompt_ids": p, "top5": top}
    # sharded safetensors, F16
    d = os.path.join(OUT, "llama-st")
    model.to(torch.float16).save_pretrained(d, max_shard_size="300KB")
    tok.save_pretrained(d)
    model.to(torch.float32)
    # pytorch_model.bin, BF16
    d = os.path.join(OUT, "llama-pt")
    os.makedirs(d, exist_ok=True)
    sd = {k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    shutil.copy(os.path.join(OUT, "llama-st", "config.json"), d)
    tok.save_pretrained(d)
    # ONNX (dynamo exporter), external data
    d = os.path.join(OUT, "llama-onnx")
    os.makedirs(d, exist_ok=True)
    model.config.use_cache = False
    x = torch.tensor([p])
    torch.onnx.export(model, (x,), os.path.join(d, "model.onnx"), dynamo=True, external_data=True,
                      input_names=["input_ids"], output_names=["logits"])
    shutil.copy(os.path.join(OUT, "llama-st", "config.json"), d)
    tok.save_pretrained(d)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    tok = make_tokenizer()
    ids = tok(TEXT, add_special_tokens=False).input_ids
    print(f"tokenizer: {len(tok)} tokens; text: {len(TEXT)} bytes, {len(ids)} tokens")
    ref = {"prompt": PROMPT}
    bitnet(tok, ids, ref)
    llama(tok, ids, ref)
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
    for root, _, files in sorted(os.walk(OUT)):
        for name in sorted(files):
            path = os.path.join(root, name)
            print(f"  {os.path.relpath(path, OUT):40s} {os.path.getsize(path):9d}")


if __name__ == "__main__":
    main()
