"""export_onnx.py - the Fashion-MNIST classifiers of tests/data/vision (gen_fashion.py) as ONNX,
the way a user exports a torchvision/timm-style model: torch.onnx.export, TorchScript exporter,
opset 17, no constant folding (folding would merge each BatchNorm into its conv, so the tensors
lose their module names). The same weights as model.safetensors; the fake quantization is not
in the graph (bitnet convert reads the weights, and config.json says how to quantize them).

usage: python3 tests/vision/export_onnx.py SRC_DIR OUT.onnx
  e.g. tests/data/vision/fashion-resnet tests/data/vision/onnx/fashion-resnet.onnx
Needs torch and safetensors (PyPI). test_vision_fashion.sh converts the committed outputs.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_fashion as G  # noqa: E402


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-3].strip())
    src, out = argv[1], argv[2]
    cfg = json.load(open(os.path.join(src, "config.json")))
    cls = G.ResNet if cfg["arch"].startswith("resnet") else G.ViT
    net = cls(cfg, quant=False)
    net.load_state_dict(load_file(os.path.join(src, "model.safetensors")))
    net.eval()
    x = torch.zeros(1, cfg["in_chans"], cfg["image_size"], cfg["image_size"])
    torch.onnx.export(net, (x,), out, dynamo=False, do_constant_folding=False,
                      input_names=["input"], output_names=["logits"], opset_version=17)


if __name__ == "__main__":
    main(sys.argv)
