#!/usr/bin/env python3
"""gen_fashion.py - trains the small Fashion-MNIST vision models of issue 22 with BitNet-style
quantization-aware training (QAT) in PyTorch, and their f32 twins, and exports them in the
layout that `bitnet convert` reads (docs/VISION.md).

    nice -n 15 python3 tests/vision/gen_fashion.py MODEL VARIANT [--out DIR] [--epochs N]
                                                   [--threads N] [--limit N]
        MODEL: resnet | vit     VARIANT: qat | f32
        --limit N: train on the first N training images only (a quick check of the pipeline)
    python3 tests/vision/gen_fashion.py all        # the four runs, one after the other
    python3 tests/vision/gen_fashion.py samples    # DIR/fashion-samples/t10k-{0..3}.png

Needs torch (CPU), numpy and safetensors (PyPI) and Debian's dataset-fashion-mnist
(/usr/share/datasets/fashion-mnist, or FASHION_DIR). The exported files are committed
(tests/data/vision/; the f32 twins' weights and reference files are not kept); the tests
never run this script. Everything is seeded and runs on one thread (--threads), so a rerun on
the same machine and torch gives the same weights. The committed models took 20-30 minutes
each on one shared core (assets/vision/MODEL_CARD.md).

Quantization (docs/VISION.md, fixed with the engine): every conv but the first (the stem; for
ViT the patch embedding) and every linear but the classifier is ternary:
  weights  absmean per output channel: s = max(mean|W_row|, 1e-5), Wq = clamp(round(W/s),-1,1),
           effective weight s*Wq, straight-through gradient to the f32 master weight;
  inputs   int8 by absmax, m = max(max|x|, 1e-5), s = 127/m (f32), q = clamp(round(x*s),
           -128, 127), dequantized q/s: one m per image for a conv (its whole C*H*W input), one per
           token (row) for a linear; straight-through gradient.
Norms, biases, cls token and position embeddings stay float. The f32 twin is the same network
with no quantization at all.

Output, per run, in DIR/fashion-MODEL (qat) or DIR/fashion-MODEL-f32:
  model.safetensors   the f32 master weights with torchvision / timm names (BN running stats)
  config.json         docs/VISION.md's config, plus "quant" (the rule above) and "train"
  ref_inputs.f32      the first N_REF test images, normalised, N x 1 x 28 x 28 float32
  ref_logits.f32      PyTorch's eval-mode logits for them, N x 10 float32
  ref_labels.u8       their true classes
  test_pred.u8        PyTorch's top-1 prediction on each of the 10,000 test images
  metrics.json        test accuracy, training loss per epoch, time
and `samples` writes the first N_PNG test images as 8-bit greyscale PNG files (their pixels
unchanged, zlib-compressed here: no imaging library needed), which `bitnet classify` must
decode and normalise into exactly the tensors PyTorch got (the first ones of ref_inputs.f32).
"""
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

FASHION_DIR = os.environ.get("FASHION_DIR", "/usr/share/datasets/fashion-mnist")
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
          "Bag", "Ankle boot"]
MEAN, STD = 0.2860, 0.3530  # the training images' mean and std in [0,1]
N_REF = 64
N_PNG = 4
SEED = 1

RESNET = {"arch": "resnet", "block": "basic", "depths": [1, 1, 1], "widths": [16, 32, 64],
          "stem_kernel": 3, "stem_stride": 1, "stem_pool": False, "bn_eps": 1e-5}
VIT = {"arch": "vit", "patch_size": 7, "embed_dim": 64, "depth": 4, "num_heads": 4,
       "mlp_ratio": 2.0, "ln_eps": 1e-6}
# per model: epochs, batch, peak learning rate, weight decay
TRAIN = {"resnet": {"epochs": 3, "batch": 128, "lr": 2e-3, "wd": 0.05},
         "vit": {"epochs": 8, "batch": 128, "lr": 2e-3, "wd": 0.05}}


# ---- data: the IDX files as Debian ships them ----

def read_idx(name):
    with gzip.open(os.path.join(FASHION_DIR, name), "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_split(prefix):
    x = read_idx(prefix + "-images-idx3-ubyte.gz")
    y = read_idx(prefix + "-labels-idx1-ubyte.gz")
    return x, y


def normalise(x_u8):
    """u8 N x 28 x 28 -> float32 N x 1 x 28 x 28, as ToTensor + Normalize(MEAN, STD)."""
    x = torch.from_numpy(x_u8.astype(np.float32) / np.float32(255.0))
    return ((x - MEAN) / STD).unsqueeze(1).contiguous()


# ---- BitNet-style quantization (straight-through) ----

def ste(x, q):
    return x + (q - x).detach()


def ternary_weight(w):
    """absmean per output channel (dim 0 over the rest)."""
    flat = w.reshape(w.shape[0], -1)
    s = flat.abs().mean(dim=1, keepdim=True).clamp(min=1e-5)
    q = (flat / s).round().clamp(-1, 1) * s
    return q.reshape(w.shape)


def int8_act(x, per_image):
    if per_image:  # a conv's input: one absmax per image over C*H*W
        m = x.detach().abs().flatten(1).amax(dim=1).clamp(min=1e-5)
        m = m.view(-1, *([1] * (x.dim() - 1)))
    else:  # a linear's input: one absmax per token (row)
        m = x.detach().abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    s = 127.0 / m  # f32, then exactly BitNet's (x * s).round().clamp(-128, 127) / s
    return (x * s).round().clamp(-128, 127) / s


class TConv2d(nn.Conv2d):
    """a ternary conv (same parameters and names as nn.Conv2d)."""

    def forward(self, x):
        xq = ste(x, int8_act(x, True))
        wq = ste(self.weight, ternary_weight(self.weight))
        return self._conv_forward(xq, wq, self.bias)


class TLinear(nn.Linear):
    def forward(self, x):
        xq = ste(x, int8_act(x, False))
        wq = ste(self.weight, ternary_weight(self.weight))
        return F.linear(xq, wq, self.bias)


# ---- ResNet with torchvision's names (BasicBlock) ----

class BasicBlock(nn.Module):
    def __init__(self, conv, cin, planes, stride):
        super().__init__()
        self.conv1 = conv(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(conv(cin, planes, 1, stride, 0, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class ResNet(nn.Module):
    def __init__(self, cfg, quant):
        super().__init__()
        conv = TConv2d if quant else nn.Conv2d
        w = cfg["widths"]
        k = cfg["stem_kernel"]
        self.conv1 = nn.Conv2d(cfg["in_chans"], w[0], k, cfg["stem_stride"], k // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if cfg["stem_pool"] else nn.Identity()
        cin = w[0]
        for s, (depth, planes) in enumerate(zip(cfg["depths"], w)):
            blocks = []
            for i in range(depth):
                stride = 2 if s > 0 and i == 0 else 1
                blocks.append(BasicBlock(conv, cin, planes, stride))
                cin = planes
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*blocks))
        self.nstages = len(w)
        self.fc = nn.Linear(cin, cfg["num_classes"])

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for s in range(self.nstages):
            x = getattr(self, "layer%d" % (s + 1))(x)
        return self.fc(x.mean(dim=(2, 3)))


# ---- ViT with timm's names (pre-norm, class token) ----

class PatchEmbed(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        p = cfg["patch_size"]
        self.proj = nn.Conv2d(cfg["in_chans"], cfg["embed_dim"], p, p)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # B, N, D


class Attention(nn.Module):
    def __init__(self, lin, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = lin(dim, 3 * dim)
        self.proj = lin(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        a = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, lin, dim, hidden):
        super().__init__()
        self.fc1 = lin(dim, hidden)
        self.act = nn.GELU()  # exact (erf)
        self.fc2 = lin(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, lin, cfg):
        super().__init__()
        d, eps = cfg["embed_dim"], cfg["ln_eps"]
        self.norm1 = nn.LayerNorm(d, eps=eps)
        self.attn = Attention(lin, d, cfg["num_heads"])
        self.norm2 = nn.LayerNorm(d, eps=eps)
        self.mlp = Mlp(lin, d, round(d * cfg["mlp_ratio"]))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, cfg, quant):
        super().__init__()
        lin = TLinear if quant else nn.Linear
        d = cfg["embed_dim"]
        n = (cfg["image_size"] // cfg["patch_size"]) ** 2
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + n, d) * 0.02)
        self.blocks = nn.Sequential(*[Block(lin, cfg) for _ in range(cfg["depth"])])
        self.norm = nn.LayerNorm(d, eps=cfg["ln_eps"])
        self.head = nn.Linear(d, cfg["num_classes"])
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


# ---- training and export ----

def make_config(model):
    cfg = dict(RESNET if model == "resnet" else VIT)
    cfg.update({"in_chans": 1, "num_classes": 10, "image_size": 28, "mean": [MEAN],
                "std": [STD], "labels": LABELS})
    return cfg


def evaluate(net, x, batch=500):
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            out.append(net(x[i:i + batch]))
    return torch.cat(out)


def augment(xb, gen):
    """random horizontal flip and a random shift of up to 2 pixels (zero padded)."""
    flip = torch.rand(xb.shape[0], generator=gen) < 0.5
    xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
    pad = F.pad(xb, (2, 2, 2, 2), value=-MEAN / STD)
    dx, dy = torch.randint(0, 5, (2,), generator=gen).tolist()
    return pad[:, :, dy:dy + 28, dx:dx + 28]


def train(model, variant, out_dir, epochs=None, threads=1, limit=0):
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(SEED)
    hp = dict(TRAIN[model])
    if epochs:
        hp["epochs"] = epochs
    cfg = make_config(model)
    quant = variant == "qat"
    net = (ResNet if model == "resnet" else ViT)(cfg, quant)

    xtr, ytr = load_split("train")
    xte, yte = load_split("t10k")
    if limit:
        xtr, ytr = xtr[:limit], ytr[:limit]
    xtr, xte = normalise(xtr), normalise(xte)
    ytr, yte = torch.from_numpy(ytr.astype(np.int64)), torch.from_numpy(yte.astype(np.int64))

    decay = [p for n, p in net.named_parameters() if p.dim() > 1 and "pos_embed" not in n
             and "cls_token" not in n]
    other = [p for n, p in net.named_parameters() if not any(p is q for q in decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp["wd"]},
                             {"params": other, "weight_decay": 0.0}], lr=hp["lr"])
    steps_per_epoch = xtr.shape[0] // hp["batch"]
    total = hp["epochs"] * steps_per_epoch
    warm = max(1, total // 20)

    def lr_at(step):
        if step < warm:
            return hp["lr"] * (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return hp["lr"] * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))

    t0 = time.time()
    losses = []
    step = 0
    for ep in range(hp["epochs"]):
        net.train()
        perm = torch.randperm(xtr.shape[0], generator=gen)
        run = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * hp["batch"]:(i + 1) * hp["batch"]]
            xb, yb = augment(xtr[idx], gen), ytr[idx]
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run += loss.item()
            step += 1
            if i % 100 == 0:
                print("%s-%s epoch %d step %d/%d loss %.4f (%.0f s)" %
                      (model, variant, ep + 1, i, steps_per_epoch, loss.item(), time.time() - t0),
                      flush=True)
        losses.append(run / steps_per_epoch)
    train_s = time.time() - t0

    logits = evaluate(net, xte)
    pred = logits.argmax(dim=1)
    acc = (pred == yte).float().mean().item()
    print("%s-%s: test accuracy %.4f, %.0f s" % (model, variant, acc, train_s), flush=True)
    export(net, cfg, hp, out_dir, logits, pred, xte, yte, acc, losses, train_s, threads, quant)
    return acc


def export(net, cfg, hp, out_dir, logits, pred, xte, yte, acc, losses, train_s, threads, quant):
    os.makedirs(out_dir, exist_ok=True)
    sd = {k: v.detach().contiguous() for k, v in net.state_dict().items()
          if not k.endswith("num_batches_tracked")}
    save_file(sd, os.path.join(out_dir, "model.safetensors"))
    cfg = dict(cfg)
    cfg["quant"] = ({"ternary": "every conv but the stem / patch embedding and every linear "
                                "but the classifier",
                     "weights": "absmean per output channel, s = max(mean|W_row|, 1e-5), "
                                "Wq = clamp(round(W/s), -1, 1)",
                     "activations": "int8 absmax, m = max(max|x|, 1e-5), s = 127/m, "
                                    "q = clamp(round(x*s), -128, 127), x' = q/s; per image for a "
                                    "conv, per token for a linear"}
                    if quant else None)
    cfg["train"] = {"script": "tests/vision/gen_fashion.py", "seed": SEED,
                    "epochs": hp["epochs"], "batch": hp["batch"], "lr": hp["lr"],
                    "weight_decay": hp["wd"], "optimizer": "AdamW, cosine to 2% after 5% warm-up",
                    "augment": "horizontal flip, shift up to 2 px"}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    xte[:N_REF].numpy().astype("<f4").tofile(os.path.join(out_dir, "ref_inputs.f32"))
    logits[:N_REF].numpy().astype("<f4").tofile(os.path.join(out_dir, "ref_logits.f32"))
    yte[:N_REF].numpy().astype(np.uint8).tofile(os.path.join(out_dir, "ref_labels.u8"))
    pred.numpy().astype(np.uint8).tofile(os.path.join(out_dir, "test_pred.u8"))
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump({"test_accuracy": round(acc, 4), "test_images": int(xte.shape[0]),
                   "correct": int((logits.argmax(1) == yte).sum()),
                   "train_loss_per_epoch": [round(v, 4) for v in losses],
                   "train_seconds": round(train_s), "threads": threads,
                   "params": sum(p.numel() for p in net.parameters()),
                   "torch": torch.__version__}, f, indent=1)
        f.write("\n")


def write_png(path, img):
    """an 8-bit greyscale PNG of img (u8, H x W), no filter, no interlace."""
    import struct
    import zlib

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    h, w = img.shape
    raw = b"".join(b"\0" + img[y].tobytes() for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def samples(out):
    d = os.path.join(out, "fashion-samples")
    os.makedirs(d, exist_ok=True)
    x, _ = load_split("t10k")
    for i in range(N_PNG):
        write_png(os.path.join(d, "t10k-%d.png" % i), x[i])


def main(argv):
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "vision")
    epochs = threads = limit = 0
    pos = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--out", "--epochs", "--threads", "--limit") and i + 1 < len(argv):
            v = argv[i + 1]
            i += 2
            if a == "--out":
                out = v
            elif a == "--epochs":
                epochs = int(v)
            elif a == "--threads":
                threads = int(v)
            else:
                limit = int(v)
            continue
        pos.append(a)
        i += 1
    if pos == ["samples"]:
        samples(out)
        return 0
    runs = ([(m, v) for m in ("resnet", "vit") for v in ("qat", "f32")] if pos == ["all"]
            else [tuple(pos)] if len(pos) == 2 else None)
    if not runs or any(m not in TRAIN or v not in ("qat", "f32") for m, v in runs):
        sys.stderr.write(__doc__)
        return 2
    for m, v in runs:
        d = os.path.join(out, "fashion-%s%s" % (m, "" if v == "qat" else "-f32"))
        train(m, v, d, epochs, threads or 1, limit)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
