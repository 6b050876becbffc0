#!/usr/bin/env python3
"""many_tensors.py - a model directory whose one model.safetensors holds the tensors of SRC's
safetensors files (shards merged) and N extra one-value F32 tensors that the model does not use,
as a checkpoint with a very large tensor catalog. Standard library only; run by
tests/cli/test_convert_truth.sh at test time (nothing is committed).

    python3 tests/convert/many_tensors.py SRC_DIR OUT_DIR N
"""
import glob
import json
import os
import shutil
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items()}


def main():
    src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(out, exist_ok=True)
    tensors = {}
    for p in sorted(glob.glob(os.path.join(src, "*.safetensors"))):
        tensors.update(read(p))
    for i in range(n):
        tensors[f"extra.unused.{i:07d}.weight"] = ("F32", [1], struct.pack("<f", 0.5))
    header, blobs, off = {}, [], 0
    for k, (dt, shape, raw) in tensors.items():
        header[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    for name in os.listdir(src):
        if name.endswith(".json") and not name.endswith(".index.json"):
            shutil.copy(os.path.join(src, name), out)


if __name__ == "__main__":
    main()
