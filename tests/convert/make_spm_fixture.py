#!/usr/bin/env python3
"""make_spm_fixture.py - a tiny SentencePiece BPE tokenizer in the files a Hugging Face model
directory carries, with expected ids from SentencePiece itself: the inputs of the
SentencePiece cases of tests/cli/test_convert.sh (`bitnet convert` + `bitnet tokenize`).

    python3 tests/convert/make_spm_fixture.py [CORPUS] [OUTDIR]
    # defaults: ../shared/data/corpora/tinystories-small.txt, tests/data/convert/spm

Needs sentencepiece, transformers and tokenizers (PyPI); runs in a few seconds. The outputs are
committed; the tests never run this script. Written with sentencepiece 0.2.3, transformers
5.24.0, tokenizers 0.23.3.

What it writes:
  tokenizer.model        a BPE SentencePiece model of 384 pieces (<unk> <s> </s>, the 256
                         byte pieces <0x00>..<0xFF> of byte_fallback, the characters of the
                         corpus, and merges) trained on the TinyStories sample with LLaMA's
                         settings: identity normalizer, no removal of extra spaces, a dummy
                         space prefix, split digits, whitespace-only pieces allowed.
  tokenizer.json         what transformers' LlamaTokenizerFast writes for it (BPE with
                         byte_fallback and a Metaspace pre-tokenizer, no scores), and
  tokenizer_config.json  its tokenizer_config.json.
  tokenizer-legacy.json  the same vocabulary and merges in the form of LLaMA-2's own
                         tokenizer.json (a Prepend("▁") + Replace(" ", "▁") normalizer, no
                         pre-tokenizer, "<s> $A" post-processor).
  cases/NN.txt           a dozen texts, byte for byte (spaces, newlines, tabs, unicode,
                         characters that are not pieces and fall back to bytes), and
  expected.txt           per case "NN [ids]": SentencePiece's ids (no BOS). The script checks
                         that Hugging Face's tokenizers gives the same from both tokenizer.json
                         files, but for one known difference: a text that starts with a space
                         gets no extra "▁" from Metaspace(prepend_scheme="first"), while
                         SentencePiece and llama.cpp put one in front of every text (bitnet
                         follows the source: expected-json.txt, make_spm_hf_ids.py).
"""
import json
import os
import shutil
import sys
import tempfile

import sentencepiece as spm
import transformers
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    HERE, "..", "..", "..", "shared", "data", "corpora", "tinystories-small.txt")
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "data", "convert", "spm")

CASES = [
    "Once upon a time, there was a little girl named Lily.",
    "Hello world",
    " leading space",
    "two  spaces and   three",
    "trailing space ",
    "line one\nline two\n\n",
    "tab\tseparated\tvalues",
    "na\u00efve caf\u00e9, \u00dcn\u00efc\u00f6d\u00e9",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "emoji \U0001f999\U0001f680 and symbols \u00a9\u00ae",
    "digits 12345 and 3.14",
    "   ",
    "\x01 control \x7f bytes",
    "THE END. the end! The End?",
]


def train(model_path):
    lines = [l for l in open(CORPUS, encoding="utf-8").read().split("\n") if l.strip()]
    prefix = model_path[:-len(".model")]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=prefix, model_type="bpe", vocab_size=384,
        byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, split_digits=True,
        allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=1, minloglevel=2)
    # the temporary path the trainer records would make every run's file differ
    from sentencepiece import sentencepiece_model_pb2
    m = sentencepiece_model_pb2.ModelProto()
    m.ParseFromString(open(model_path, "rb").read())
    m.trainer_spec.model_prefix = "tokenizer"
    open(model_path, "wb").write(m.SerializeToString())


def legacy(tj):
    """LLaMA-2's tokenizer.json layout around the same model."""
    tj = json.loads(json.dumps(tj))
    tj["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    tj["pre_tokenizer"] = None
    tj["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    return tj


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(os.path.join(OUT, "cases"))
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        train(os.path.join(src, "tokenizer.model"))
        shutil.copy(os.path.join(src, "tokenizer.model"), OUT)
        fast = transformers.LlamaTokenizerFast.from_pretrained(src)
        fast.save_pretrained(os.path.join(tmp, "hf"))
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(tmp, "hf", f), OUT)
    tj = json.load(open(os.path.join(OUT, "tokenizer.json"), encoding="utf-8"))
    with open(os.path.join(OUT, "tokenizer-legacy.json"), "w", encoding="utf-8") as f:
        json.dump(legacy(tj), f, ensure_ascii=False, indent=2)

    sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, "tokenizer.model"))
    hf = [Tokenizer.from_file(os.path.join(OUT, f)) for f in ("tokenizer.json", "tokenizer-legacy.json")]
    n_diff = 0
    with open(os.path.join(OUT, "expected.txt"), "w") as exp:
        for i, text in enumerate(CASES, 1):
            ids = sp.encode(text)
            for name, t in zip(("tokenizer.json", "tokenizer-legacy.json"), hf):
                got = t.encode(text, add_special_tokens=False).ids
                if name == "tokenizer.json" and text.startswith(" "):
                    # Metaspace(prepend_scheme="first") adds no "▁" to a text that starts with
                    # a space; SentencePiece (and llama.cpp) always add one
                    assert got == ids[1:] and sp.id_to_piece(ids[0]) == "\u2581", (text, got, ids)
                    n_diff += 1
                    continue
                assert got == ids, f"case {i} {text!r}: {name} gives {got}, sentencepiece {ids}"
            with open(os.path.join(OUT, "cases", f"{i:02d}.txt"), "wb") as f:
                f.write(text.encode("utf-8"))
            exp.write(f"{i:02d} [{','.join(map(str, ids))}]\n")
    print(f"{OUT}: {sp.vocab_size()} pieces, {len(CASES)} cases; Hugging Face agrees on all but "
          f"{n_diff} (a leading space under Metaspace, as expected)")


if __name__ == "__main__":
    main()
