#!/usr/bin/env python3
"""make_bad_fixtures.py - malformed conversion inputs for tests/cli/test_convert.sh: each a model
directory (a config.json of the tiny LLaMA fixture plus one broken weights file) that
`bitnet convert` must refuse with one line and exit status 1.

    python3 tests/convert/make_bad_fixtures.py [OUTDIR]   # default tests/data/convert/bad

Only the standard library: the files are written byte by byte (nothing is unpickled or run).
"""
import json
import os
import pickle
import struct
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "data", "convert", "bad")
CONFIG = os.path.join(HERE, "..", "data", "convert", "llama-st", "config.json")


def model_dir(name, files):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(CONFIG) as f:
        cfg = json.load(f)
    if "config.json" in files:
        cfg.update(files.pop("config.json"))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    for fname, data in files.items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)


def st(header, data=b""):
    h = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(h)) + h + data


def torch_zip(pkl):
    import io
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", b"\0" * 16)
        z.writestr("archive/version", "3\n")
    return b.getvalue()


os.makedirs(OUT, exist_ok=True)
# a pickle that would call os.system("echo pwned") if it were unpickled by Python
evil = b"\x80\x02cos\nsystem\nq\x00X\x0b\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."
model_dir("evil-pickle", {"pytorch_model.bin": torch_zip(evil)})
model_dir("legacy-pickle", {"pytorch_model.bin": pickle.dumps({"a": 1}, protocol=2)})
model_dir("bad-json", {"model.safetensors": st(b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]', b"\0" * 4)})
model_dir("huge-header", {"model.safetensors": struct.pack("<Q", 200 * 1000 * 1000) + b"{}"})
model_dir("overlap", {"model.safetensors": st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
                                               b"\0" * 12)})
model_dir("out-of-file", {"model.safetensors": st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
                                                   b"\0" * 8)})
real = open(os.path.join(HERE, "..", "data", "convert", "llama-st", "model-00001-of-00003.safetensors"), "rb").read()
model_dir("truncated", {"model.safetensors": real[:3000]})
model_dir("missing-tensor", {"model.safetensors": st({"model.norm.weight": {"dtype": "F32", "shape": [128],
                                                                            "data_offsets": [0, 512]}},
                                                      b"\0" * 512)})
model_dir("unsupported-arch", {"config.json": {"architectures": ["GPT2LMHeadModel"]},
                               "model.safetensors": st({})})
# ONNX: field 7 (graph) with wire type 0 instead of 2
model_dir("onnx-wire-type", {"model.onnx": bytes([0x08, 0x08, 0x38, 0x05])})
print("wrote", sorted(os.listdir(OUT)))
