#!/usr/bin/env python3
"""edit_fixture.py - small edits of a copied model directory for tests/cli/test_convert_truth.sh
(standard library only; the test skips what needs it when python3 is absent).

    edit_fixture.py value FILE.safetensors TENSOR INDEX VALUE   # one element (F32/F16/BF16),
                                                                 # or every one (INDEX all)
    edit_fixture.py config DIR KEY=JSON... -KEY...               # set or delete config.json keys
                                                                 # (KEY may be a.b for nested)
"""
import json
import math
import struct
import sys


def to_bits(dtype, v):
    if dtype == "F32":
        return struct.pack("<f", v)
    if dtype == "F16":
        return struct.pack("<e", v) if math.isfinite(v) or math.isnan(v) else \
            struct.pack("<H", 0x7C00 if v > 0 else 0xFC00)
    if dtype == "BF16":
        return struct.pack("<f", v)[2:]
    raise SystemExit(f"edit_fixture: dtype {dtype} not handled")


def set_value(path, name, index, value):
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        t = header[name]
        size = {"F32": 4, "F16": 2, "BF16": 2}[t["dtype"]]
        count = (t["data_offsets"][1] - t["data_offsets"][0]) // size
        f.seek(8 + n + t["data_offsets"][0] + (0 if index is None else index * size))
        f.write(to_bits(t["dtype"], value) * (count if index is None else 1))


def edit_config(d, edits):
    path = f"{d}/config.json"
    with open(path) as f:
        c = json.load(f)
    for e in edits:
        if e.startswith("-"):
            *parents, last = e[1:].split(".")
            obj = c
            for p in parents:
                obj = obj.get(p, {})
            obj.pop(last, None)
            continue
        key, val = e.split("=", 1)
        *parents, last = key.split(".")
        obj = c
        for p in parents:
            obj = obj.setdefault(p, {})
        obj[last] = json.loads(val)
    with open(path, "w") as f:
        json.dump(c, f, indent=2)


if __name__ == "__main__":
    if sys.argv[1] == "value":
        set_value(sys.argv[2], sys.argv[3], None if sys.argv[4] == "all" else int(sys.argv[4]),
                  float(sys.argv[5]))
    elif sys.argv[1] == "config":
        edit_config(sys.argv[2], sys.argv[3:])
    else:
        raise SystemExit(__doc__)
