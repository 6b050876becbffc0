#!/usr/bin/env python3
"""Compares `bitnet image prep` with Pillow and torchvision on the images of tests/images:
decoding (PIL's Image.open + ImageOps.exif_transpose + convert), greyscale (convert('L')),
alpha composited on a colour (Image.paste with the alpha as mask), Resize, CenterCrop,
ToTensor and Normalize (torchvision.transforms when installed, else the same formulas on
Pillow and numpy: the short side to S and the long int(S * long / short), PIL's bilinear
resize (antialiased), the crop at int(round((H - h) / 2)) padded with zeros, float32
(v / 255 - mean) / std).

Tolerance: 8-bit pixels at most 1 apart (0..255), tensors at most 1 / (255 * min(std)) + 1e-6
apart; the maximum difference seen is printed (0 for every case with Pillow 13.0.0 and
torchvision 0.29.2).

usage: image_ref.py BITNET IMAGES_DIR TMP_DIR   (exit 0: all within tolerance, 1: not)
"""
import os
import subprocess
import sys

import numpy as np
from PIL import Image, ImageOps

try:
    import torchvision.transforms as T
except Exception:  # torchvision is optional: the formulas below are what it does
    T = None

BITNET, IMAGES, TMP = sys.argv[1:4]
PHOTOS = ["chelsea.jpg", "coffee-progressive.jpg", "rocket.jpg", "astronaut.png",
          "camera-grey.png", "camera-grey.jpg"]
EDGE = ["cmyk.jpg", "rgb16.png", "rgba.png", "la.png", "palette.png", "palette4.png", "grey1.png",
        "interlaced.png", "1x1.png", "1x1.jpg", "exif-6.png"] + ["exif-%d.jpg" % o for o in range(1, 9)]
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
n_ok = n_bad = 0
worst_px = worst_t = 0.0


def report(name, ok, detail):
    global n_ok, n_bad
    if ok:
        n_ok += 1
    else:
        n_bad += 1
    print("  %s %s: %s" % ("ok  " if ok else "FAIL", name, detail))


def ours(path, args, raw):
    out = os.path.join(TMP, "ref.out")
    cmd = [BITNET, "image", "prep", path, "-o", out, "--force"] + args + (["--raw"] if raw else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return np.fromfile(out, dtype=np.uint8 if raw else "<f4"), ""


def open_pil(path, exif=True):
    im = Image.open(path)
    return ImageOps.exif_transpose(im) if exif else im


def to_rgb(im):
    if im.mode in ("I;16", "I;16B", "I"):  # PIL clips 16-bit grey at 255; we keep the high byte
        a = (np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    return im.convert("RGB")


def compare_px(name, path, args, ref):
    global worst_px
    got, err = ours(path, args, True)
    want = np.asarray(ref).astype(np.int16).reshape(-1)
    if got is None:
        return report(name, False, "bitnet failed: " + err)
    if got.size != want.size:
        return report(name, False, "%d values, wanted %d" % (got.size, want.size))
    d = int(np.abs(got.astype(np.int16) - want).max())
    worst_px = max(worst_px, d)
    report(name, d <= 1, "max |diff| %d of %d pixels" % (d, want.size))


def compare_tensor(name, path, args, ref, std):
    global worst_t
    got, err = ours(path, args, False)
    want = np.asarray(ref, dtype=np.float32).reshape(-1)
    if got is None:
        return report(name, False, "bitnet failed: " + err)
    if got.size != want.size:
        return report(name, False, "%d values, wanted %d" % (got.size, want.size))
    d = float(np.abs(got - want).max())
    worst_t = max(worst_t, d)
    tol = 1.0 / (255.0 * min(std)) + 1e-6
    report(name, d <= tol, "max |diff| %.3g (tolerance %.3g)" % (d, tol))


def resize_short(im, s):
    if T:
        return T.Resize(s)(im)
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    nl = int(s * long / short)
    return im.resize((s, nl) if w <= h else (nl, s), Image.BILINEAR)


def resize_exact(im, w, h):
    return T.Resize((h, w))(im) if T else im.resize((w, h), Image.BILINEAR)


def center_crop(im, w, h):
    if T:
        return T.CenterCrop((h, w))(im)
    W, H = im.size
    left, top = int(round((W - w) / 2.0)), int(round((H - h) / 2.0))
    if w > W or h > H:  # torchvision pads with zeros, then crops the middle
        pad = Image.new(im.mode, (max(w, W), max(h, H)))
        pad.paste(im, ((w - W) // 2 if w > W else 0, (h - H) // 2 if h > H else 0))
        return center_crop(pad, w, h)
    return im.crop((left, top, left + w, top + h))


def to_tensor(im, mean, std):
    a = np.asarray(im, dtype=np.uint8)
    a = a[:, :, None] if a.ndim == 2 else a
    x = a.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.asarray(std, np.float32)[:, None, None]
    return (x - m) / s


def decode_cases():
    for f in PHOTOS + EDGE:
        p = os.path.join(IMAGES, f)
        compare_px("decode " + f, p, [], to_rgb(open_pil(p)))
        compare_px("decode --grey " + f, p, ["--grey"], to_rgb(open_pil(p)).convert("L"))
    for f in ["exif-%d.jpg" % o for o in (3, 6, 8)] + ["exif-6.png"]:
        p = os.path.join(IMAGES, f)
        compare_px("decode --no-exif " + f, p, ["--no-exif"], to_rgb(open_pil(p, False)))
    bg = (40, 200, 90)
    for f in ["rgba.png", "la.png", "palette.png"]:
        p = os.path.join(IMAGES, f)
        im = open_pil(p).convert("RGBA")
        ref = Image.new("RGB", im.size, bg)
        ref.paste(im.convert("RGB"), mask=im.getchannel("A"))
        compare_px("decode --background " + f, p, ["--background", "28c85a"], ref)


def transform_cases():
    for f in PHOTOS + ["cmyk.jpg", "interlaced.png", "1x1.png", "exif-6.jpg"]:  # 24x40 upright
        p = os.path.join(IMAGES, f)
        im = to_rgb(open_pil(p))
        for s in (256, 224, 100, 33, 7):
            compare_px("Resize(%d) %s" % (s, f), p, ["--resize", str(s)], resize_short(im, s))
        for w, h in ((28, 28), (300, 17), (500, 501)):
            compare_px("Resize((%d, %d)) %s" % (h, w, f), p, ["--size", "%dx%d" % (w, h)],
                       resize_exact(im, w, h))
        r = resize_short(im, 64)
        for w, h in ((64, 64), (37, 30), (31, 63), (1, 1), (90, 70)):
            compare_px("Resize(64) CenterCrop((%d, %d)) %s" % (h, w, f), p,
                       ["--resize", "64", "--crop", "%dx%d" % (w, h)], center_crop(r, w, h))


def pipeline_cases():
    mean, std = IMAGENET
    for f in PHOTOS + ["cmyk.jpg", "rgba.png", "palette.png", "exif-6.jpg"]:
        p = os.path.join(IMAGES, f)
        im = to_rgb(open_pil(p))
        if T:
            ref = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                             T.Normalize(mean, std)])(im).numpy()
        else:
            ref = to_tensor(center_crop(resize_short(im, 256), 224, 224), mean, std)
        compare_tensor("ImageNet eval transform " + f, p, ["--imagenet"], ref, std)
        # Fashion-MNIST style: Grayscale, Resize((28, 28)), Normalize((0.2860,), (0.3530,))
        g = im.convert("L")
        if T:
            ref = T.Compose([T.Resize((28, 28)), T.ToTensor(),
                             T.Normalize((0.2860,), (0.3530,))])(g).numpy()
        else:
            ref = to_tensor(resize_exact(g, 28, 28), [0.2860], [0.3530])
        compare_tensor("grey 28x28 normalised " + f, p,
                       ["--grey", "--size", "28x28", "--mean", "0.2860", "--std", "0.3530"],
                       ref, [0.3530])


def large_cases():
    # a 12-megapixel photo (chelsea.jpg upscaled, re-encoded here): the long filters of a
    # strong reduction and the Resize of a camera-sized image
    big = os.path.join(TMP, "large.jpg")
    Image.open(os.path.join(IMAGES, "chelsea.jpg")).convert("RGB").resize(
        (4000, 3000), Image.BICUBIC).save(big, quality=90)
    im = Image.open(big).convert("RGB")
    mean, std = IMAGENET
    if T:
        ref = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                         T.Normalize(mean, std)])(im).numpy()
    else:
        ref = to_tensor(center_crop(resize_short(im, 256), 224, 224), mean, std)
    compare_tensor("ImageNet eval transform 4000x3000 JPEG", big, ["--imagenet"], ref, std)
    compare_px("Resize((28, 1000)) 4000x3000 JPEG", big, ["--size", "1000x28"],
               resize_exact(im, 1000, 28))


def main():
    print("  reference: Pillow %s, %s" % (Image.__version__,
                                          "torchvision " + __import__("torchvision").__version__
                                          if T else "torchvision absent (its formulas in numpy)"))
    decode_cases()
    transform_cases()
    pipeline_cases()
    large_cases()
    print("  worst: pixels %d, tensor %.3g; %d cases within tolerance, %d not" %
          (worst_px, worst_t, n_ok, n_bad))
    return 0 if n_bad == 0 else 1


sys.exit(main())
