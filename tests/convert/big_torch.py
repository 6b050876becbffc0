#!/usr/bin/env python3
"""big_torch.py - a LLaMA checkpoint in PyTorch's zip format (pytorch_model.bin, as torch.save
writes it: archive/data.pkl with _rebuild_tensor_v2 and persistent storages, archive/data/N
stored uncompressed) much larger than its largest tensor, written with the standard library
only; and the peak RSS of a command run on it. For tests/cli/test_convert_truth.sh (nothing is
committed).

    python3 tests/convert/big_torch.py write OUT_DIR     # prints the file's size in bytes
    python3 tests/convert/big_torch.py maxrss CMD...     # runs CMD, prints its peak RSS in KiB

The model: hidden 512, FFN 1024, 8 layers, 4 heads, vocabulary 4096, untied, F32 weights of a
repeating pattern of small values (about 70 MB; the largest tensor 8 MB).
"""
import collections
import io
import json
import os
import pickle
import resource
import struct
import subprocess
import sys
import types
import zipfile

E, F, L, H, V = 512, 1024, 8, 4, 4096


def fake_torch():
    """Module objects that pickle as the globals torch.save writes."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*a):
        return a

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2
    torch._utils = utils
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    return FloatStorage, _rebuild_tensor_v2


class Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


def tensors():
    yield "model.embed_tokens.weight", (V, E)
    for i in range(L):
        p = f"model.layers.{i}."
        for n, shape in (("self_attn.q_proj", (E, E)), ("self_attn.k_proj", (E, E)),
                         ("self_attn.v_proj", (E, E)), ("self_attn.o_proj", (E, E)),
                         ("mlp.gate_proj", (F, E)), ("mlp.up_proj", (F, E)),
                         ("mlp.down_proj", (E, F))):
            yield p + n + ".weight", shape
        yield p + "input_layernorm.weight", (E,)
        yield p + "post_attention_layernorm.weight", (E,)
    yield "model.norm.weight", (E,)
    yield "lm_head.weight", (V, E)


def write(out):
    FloatStorage, rebuild = fake_torch()

    class Tensor:
        def __init__(self, st, shape):
            self.st, self.shape = st, shape

        def __reduce__(self):
            stride = (self.shape[1], 1) if len(self.shape) == 2 else (1,)
            return rebuild, (self.st, 0, self.shape, stride, False, collections.OrderedDict())

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", FloatStorage, obj.key, "cpu", obj.numel)
            return None

    os.makedirs(out, exist_ok=True)
    sd, blobs = collections.OrderedDict(), []
    for k, (name, shape) in enumerate(tensors()):
        n = shape[0] * (shape[1] if len(shape) == 2 else 1)
        sd[name] = Tensor(Storage(str(k), n), shape)
        blobs.append((str(k), n, len(shape) == 1))
    buf = io.BytesIO()
    P(buf, protocol=2).dump(sd)
    pattern = struct.pack("<64f", *[((i * 37) % 17 - 8) / 64.0 for i in range(64)])
    ones = struct.pack("<64f", *([1.0] * 64))
    path = os.path.join(out, "pytorch_model.bin")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        for key, n, norm in blobs:
            with z.open(f"archive/data/{key}", "w", force_zip64=True) as f:
                block = (ones if norm else pattern) * 256
                for i in range(0, n * 4, len(block)):
                    f.write(block[:min(len(block), n * 4 - i)])
        z.writestr("archive/version", "3\n")
    cfg = {"architectures": ["LlamaForCausalLM"], "hidden_size": E, "intermediate_size": F,
           "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": H,
           "vocab_size": V, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False}
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"))
    print(os.path.getsize(path))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
