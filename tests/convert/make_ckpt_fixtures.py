#!/usr/bin/env python3
"""make_ckpt_fixtures.py - small real-format checkpoint files for the reader unit tests
(tests/unit/test_safetensors.c, test_torchzip.c, test_onnx.c), written by the reference
writers: safetensors.torch.save_file, torch.save and onnx.save (inline and external data).

    python3 tests/convert/make_ckpt_fixtures.py [OUTDIR]   # default tests/data/ckpt

Needs torch, safetensors, onnx (PyPI). The outputs are committed; the tests never run this.
Every tensor holds known values: element k of a tensor is k * 0.25 - 1 (rounded to the
dtype), so the tests can check every value without a table.
"""
import os
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from safetensors.torch import save_file

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data", "ckpt")
os.makedirs(OUT, exist_ok=True)


def ramp(shape, dtype):
    n = int(np.prod(shape)) if len(shape) else 1
    return (torch.arange(n, dtype=torch.float64) * 0.25 - 1).reshape(shape).to(dtype)


# ---- SafeTensors ------------------------------------------------------------------------
st = {
    "a.f32": ramp((2, 3), torch.float32),
    "b.f16": ramp((5,), torch.float16),
    "c.bf16": ramp((3, 2, 2), torch.bfloat16),
    "d.i64": torch.arange(4, dtype=torch.int64) - 2,
    "e.u8": torch.arange(7, dtype=torch.uint8),
    "f.scalar": torch.tensor(3.5, dtype=torch.float32),
    "g.empty": torch.zeros((0, 4), dtype=torch.float32),
}
save_file(st, os.path.join(OUT, "small.safetensors"), metadata={"format": "pt", "note": "bitnet test"})

# ---- PyTorch (zip + pickle) ---------------------------------------------------------------
w = ramp((4, 3), torch.float32)
sd = {
    "w": w,
    "w_tied": w,                      # the same tensor under two names
    "view": w[1:],                    # offset into a shared storage
    "t": w.t(),                       # a strided (transposed) view
    "h": ramp((6,), torch.float16),
    "bf": ramp((2, 2), torch.bfloat16),
    "i": torch.arange(5, dtype=torch.int32),
    "nested": {"inner": ramp((2,), torch.float64)},
    "epoch": 3,                       # a non-tensor value, skipped
}
torch.save(sd, os.path.join(OUT, "small.pt"))
lin = torch.nn.Linear(3, 2)
with torch.no_grad():
    lin.weight.copy_(ramp((2, 3), torch.float32))
    lin.bias.copy_(ramp((2,), torch.float32))
torch.save(lin.state_dict(), os.path.join(OUT, "linear.pt"))   # OrderedDict with _metadata
torch.save({"p": torch.nn.Parameter(ramp((3,), torch.float32))}, os.path.join(OUT, "param.pt"))

# ---- ONNX ------------------------------------------------------------------------------
def tiny_model():
    w = numpy_helper.from_array(ramp((2, 3), torch.float32).numpy(), "w")        # raw_data
    b = helper.make_tensor("b", TensorProto.FLOAT, [3], [0.5, -0.5, 1.0])        # float_data
    h = helper.make_tensor("h", TensorProto.FLOAT16, [2], [1.0, -2.0])          # int32_data (f16 bits)
    i = helper.make_tensor("i", TensorProto.INT64, [3], [7, -8, 9])              # int64_data
    c = helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(
        np.array([4.0, 5.0], np.float32), "kval"))
    mm = helper.make_node("MatMul", ["x", "w"], ["y0"], name="/model/layers.0/proj/MatMul")
    add = helper.make_node("Add", ["y0", "b"], ["y"])
    g = helper.make_graph([c, mm, add], "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                          initializer=[w, b, h, i])
    return helper.make_model(g, producer_name="bitnet-test", opset_imports=[helper.make_opsetid("", 17)])


m = tiny_model()
onnx.checker.check_model(m)
onnx.save(m, os.path.join(OUT, "tiny.onnx"))
m = tiny_model()
onnx.save(m, os.path.join(OUT, "tiny_ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
          location="tiny_ext.onnx.data", size_threshold=0)
print("wrote", sorted(os.listdir(OUT)))
