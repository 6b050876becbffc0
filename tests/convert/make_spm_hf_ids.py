#!/usr/bin/env python3
"""make_spm_hf_ids.py - tests/data/convert/spm/expected-json.txt: per case of
tests/data/convert/spm/cases, "NN [ids]" as Hugging Face's tokenizers gives them from
tokenizer.json (Metaspace, prepend_scheme "first", as transformers' LlamaTokenizerFast writes it),
no special tokens. They differ from SentencePiece's (expected.txt) for a text that starts with a
space: Metaspace puts no "▁" in front of it. tests/cli/test_convert.sh checks that a vocabulary
converted from that tokenizer.json gives these ids.

    python3 tests/convert/make_spm_hf_ids.py [SPM_DIR]    # default tests/data/convert/spm

Needs tokenizers (PyPI); written with tokenizers 0.23. The output is committed.
"""
import glob
import os
import sys

from tokenizers import Tokenizer

D = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data",
                                                       "convert", "spm")
tok = Tokenizer.from_file(os.path.join(D, "tokenizer.json"))
with open(os.path.join(D, "expected-json.txt"), "w") as out:
    for path in sorted(glob.glob(os.path.join(D, "cases", "*.txt"))):
        text = open(path, "rb").read().decode("utf-8")
        ids = tok.encode(text, add_special_tokens=False).ids
        out.write(f"{os.path.basename(path)[:-4]} [{','.join(map(str, ids))}]\n")
