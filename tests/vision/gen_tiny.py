#!/usr/bin/env python3
"""gen_tiny.py - the tiny vision checkpoints of tests/data/vision/ that test_vision_cli.sh
converts: random (seeded) weights, torchvision's own BasicBlock / Bottleneck for the ResNets and
a timm-named ViT written here (timm is not needed), torchvision's own EfficientNet class with
three small MBConv stages, each with BitNet-style fake quantization
as docs/VISION.md fixes it, and PyTorch's eval-mode logits on random images as the reference.

    python3 tests/vision/gen_tiny.py [OUTDIR]     # default tests/data/vision

Writes OUTDIR/{tiny-resnet, tiny-bottleneck, tiny-vit, tiny-efficientnet}/ with config.json, the weights
(model.safetensors; tiny-bottleneck as model.pth, torch.save of the state_dict),
ref_inputs.f32 (N x C x H x W), ref_logits.f32 (N x classes) and ref_labels.u8 (random
labels, so that the accuracy fields are exercised); tiny-resnet also gets sample.png (a random
20x24 RGB image), sample.f32 (torchvision's Resize(16), CenterCrop(16), ToTensor, Normalize of
it) and sample_logits.f32 (PyTorch's logits on that tensor), so that classify's decoding and
transforms are checked end to end. Needs torch, torchvision, safetensors, Pillow (PyPI). The files are committed; the tests never run this script.
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision.models.efficientnet import EfficientNet, MBConvConfig
from torchvision.models.resnet import BasicBlock, Bottleneck

N_REF = 16


def act_q(x, dims):
    """int8 absmax fake quantization, one scale per slice over dims."""
    s = 127.0 / x.abs().amax(dim=dims, keepdim=True).clamp(min=1e-5)
    return (x * s).round().clamp(-128, 127) / s


def w_q(w):
    """ternary absmean per output channel."""
    dims = tuple(range(1, w.dim()))
    s = w.abs().mean(dim=dims, keepdim=True).clamp(min=1e-5)
    return (w / s).round().clamp(-1, 1) * s


class BitConv2d(nn.Conv2d):
    def forward(self, x):
        return self._conv_forward(act_q(x, (1, 2, 3)), w_q(self.weight), self.bias)


class BitLinear(nn.Linear):
    def forward(self, x):
        return F.linear(act_q(x, (-1,)), w_q(self.weight), self.bias)


def bitify_convs(module):
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d):
            b = BitConv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                          child.padding, groups=child.groups, bias=child.bias is not None)
            b.weight = child.weight
            b.bias = child.bias
            setattr(module, name, b)
        else:
            bitify_convs(child)


class TinyResNet(nn.Module):
    """torchvision's ResNet layout with free widths and a configurable stem."""

    def __init__(self, block, depths, widths, in_chans, classes, stem_k, stem_s, stem_pool):
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(in_chans, widths[0], stem_k, stem_s, stem_k // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem_pool else nn.Identity()
        for s, (d, w) in enumerate(zip(depths, widths)):
            setattr(self, "layer%d" % (s + 1), self._stage(block, w, d, 1 if s == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.inplanes, classes)
        self.n_stages = len(depths)

    def _stage(self, block, planes, depth, stride):
        layers = []
        for i in range(depth):
            s = stride if i == 0 else 1
            down = None
            if s != 1 or self.inplanes != planes * block.expansion:
                down = nn.Sequential(
                    nn.Conv2d(self.inplanes, planes * block.expansion, 1, s, bias=False),
                    nn.BatchNorm2d(planes * block.expansion))
            layers.append(block(self.inplanes, planes, s, down))
            self.inplanes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for s in range(self.n_stages):
            x = getattr(self, "layer%d" % (s + 1))(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = BitLinear(d, 3 * d)
        self.proj = BitLinear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        x = (a.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, t, d)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, d, f):
        super().__init__()
        self.fc1 = BitLinear(d, f)
        self.act = nn.GELU()
        self.fc2 = BitLinear(f, d)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, d, heads, f):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = Attention(d, heads)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = Mlp(d, f)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, p, c, d):
        super().__init__()
        self.proj = nn.Conv2d(c, d, p, p)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TinyViT(nn.Module):
    """timm's VisionTransformer naming: class token, pre-norm, head on the class token."""

    def __init__(self, size, p, c, d, depth, heads, f, classes):
        super().__init__()
        self.patch_embed = PatchEmbed(p, c, d)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + (size // p) ** 2, d) * 0.02)
        self.blocks = nn.Sequential(*[Block(d, heads, f) for _ in range(depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def randomize(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


def export(model, cfg, out, fmt):
    os.makedirs(out, exist_ok=True)
    model.eval()
    randomize(model)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if fmt == "safetensors":
        save_file(sd, os.path.join(out, "model.safetensors"))
    else:
        torch.save(sd, os.path.join(out, "model.pth"))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    g = torch.Generator().manual_seed(2)
    x = torch.randn(N_REF, cfg["in_chans"], cfg["image_size"], cfg["image_size"], generator=g)
    with torch.no_grad():
        logits = model(x)
    x.numpy().astype("<f4").tofile(os.path.join(out, "ref_inputs.f32"))
    logits.numpy().astype("<f4").tofile(os.path.join(out, "ref_logits.f32"))
    labels = torch.randint(0, cfg["num_classes"], (N_REF,), generator=g).to(torch.uint8)
    labels.numpy().tofile(os.path.join(out, "ref_labels.u8"))


def sample(model, cfg, out):
    """A PNG, torchvision's evaluation transform of it, and the model's logits on that."""
    from PIL import Image
    import torchvision.transforms as T
    g = torch.Generator().manual_seed(3)
    px = torch.randint(0, 256, (20, 24, 3), generator=g, dtype=torch.uint8).numpy()
    img = Image.fromarray(px, "RGB")
    img.save(os.path.join(out, "sample.png"))
    tf = T.Compose([T.Resize(cfg["image_size"]), T.CenterCrop(cfg["image_size"]), T.ToTensor(),
                    T.Normalize(cfg["mean"], cfg["std"])])
    x = tf(Image.open(os.path.join(out, "sample.png")).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        logits = model(x)
    x.numpy().astype("<f4").tofile(os.path.join(out, "sample.f32"))
    logits.numpy().astype("<f4").tofile(os.path.join(out, "sample_logits.f32"))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "tests/data/vision"
    torch.manual_seed(0)
    labels = ["class%d" % i for i in range(5)]
    rn = {"arch": "resnet", "name": "tiny-resnet", "block": "basic", "depths": [1, 2],
          "widths": [8, 16], "stem_kernel": 3, "stem_stride": 1, "stem_pool": True,
          "in_chans": 3, "num_classes": 5, "image_size": 16, "mean": [0.5, 0.4, 0.3],
          "std": [0.25, 0.25, 0.5], "labels": labels}
    m = TinyResNet(BasicBlock, rn["depths"], rn["widths"], 3, 5, 3, 1, True)
    bitify_convs(m.layer1), bitify_convs(m.layer2)
    export(m, rn, os.path.join(root, "tiny-resnet"), "safetensors")
    sample(m, rn, os.path.join(root, "tiny-resnet"))

    bt = dict(rn, name="tiny-bottleneck", block="bottleneck", depths=[1, 1], widths=[4, 8],
              stem_kernel=5, stem_stride=2, in_chans=1, mean=[0.5], std=[0.5])
    del bt["labels"]
    m = TinyResNet(Bottleneck, bt["depths"], bt["widths"], 1, 5, 5, 2, True)
    bitify_convs(m.layer1), bitify_convs(m.layer2)
    export(m, bt, os.path.join(root, "tiny-bottleneck"), "pth")

    vt = {"arch": "vit", "name": "tiny-vit", "patch_size": 4, "embed_dim": 16, "depth": 2,
          "num_heads": 2, "mlp_ratio": 2.0, "ln_eps": 1e-6, "in_chans": 1, "num_classes": 5,
          "image_size": 16, "mean": [0.5], "std": [0.5], "labels": labels}
    m = TinyViT(16, 4, 1, 16, 2, 2, 32, 5)
    export(m, vt, os.path.join(root, "tiny-vit"), "safetensors")

    blocks = [[1, 3, 1, 8, 8, 1], [4, 3, 2, 8, 16, 2], [4, 5, 2, 16, 24, 1]]
    ef = {"arch": "efficientnet", "name": "tiny-efficientnet", "blocks": blocks, "in_chans": 3,
          "num_classes": 5, "image_size": 16, "mean": [0.5, 0.4, 0.3], "std": [0.25, 0.25, 0.5]}
    m = EfficientNet([MBConvConfig(*b) for b in blocks], dropout=0.2, num_classes=5)
    bitify_convs(m.features[1:])
    export(m, ef, os.path.join(root, "tiny-efficientnet"), "safetensors")


if __name__ == "__main__":
    main()
