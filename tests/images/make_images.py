#!/usr/bin/env python3
"""Makes the test images of tests/images/ (see SOURCES.md) from scikit-image's bundled
photos: python3 tests/images/make_images.py DIR, with DIR the skimage/data folder of a
scikit-image wheel (pip download --no-deps scikit-image; unzip 'skimage/data/*').
Needs Pillow and numpy. The outputs are committed; this script says how they were made."""
import io
import os
import random
import struct
import sys
import zlib

import numpy as np
from PIL import Image

OUT = os.path.dirname(os.path.abspath(__file__))


def out(name):
    return os.path.join(OUT, name)


def png_chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png_bytes(w, h, depth, ctype, raw_rows, interlace=0, extra=b""):
    """A PNG from rows of raw sample bytes (filter 0), Adam7 when interlace=1."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra +
            png_chunk(b"IDAT", zlib.compress(raw_rows, 9)) + png_chunk(b"IEND", b""))


def rows_of(a):
    """numpy (h, w, c) uint8/uint16 to filter-0 rows (big-endian samples)."""
    a = a.astype(">u2") if a.dtype == np.uint16 else a
    return b"".join(b"\x00" + a[y].tobytes() for y in range(a.shape[0]))


def adam7_rows(a):
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)]
    data = b""
    for x0, y0, dx, dy in passes:
        sub = a[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:
            data += rows_of(sub)
    return data


def main(src):
    chelsea = Image.open(os.path.join(src, "chelsea.png")).convert("RGB")
    coffee = Image.open(os.path.join(src, "coffee.png")).convert("RGB")
    astro = Image.open(os.path.join(src, "astronaut.png")).convert("RGB")
    camera = Image.open(os.path.join(src, "camera.png")).convert("L")
    rocket = Image.open(os.path.join(src, "rocket.jpg")).convert("RGB")

    # real photos
    chelsea.save(out("chelsea.jpg"), quality=90)
    coffee.save(out("coffee-progressive.jpg"), quality=85, progressive=True)
    rocket.resize((320, 214), Image.LANCZOS).save(out("rocket.jpg"), quality=88)
    astro.resize((192, 192), Image.LANCZOS).save(out("astronaut.png"))
    camera.resize((256, 256), Image.LANCZOS).save(out("camera-grey.png"))
    camera.resize((160, 160), Image.LANCZOS).save(out("camera-grey.jpg"), quality=90)

    small = chelsea.resize((150, 100), Image.LANCZOS)
    small.convert("CMYK").save(out("cmyk.jpg"), quality=92)

    # 16-bit: the high byte is the photo, the low byte noise (it must not matter)
    rng = np.random.default_rng(22)
    a = np.asarray(astro.resize((64, 48), Image.LANCZOS)).astype(np.uint16)
    a16 = (a << 8) | rng.integers(0, 256, a.shape, dtype=np.uint16)
    open(out("rgb16.png"), "wb").write(png_bytes(64, 48, 16, 2, rows_of(a16)))
    g = np.asarray(camera.resize((40, 30), Image.LANCZOS)).astype(np.uint16)[:, :, None]
    g16 = (g << 8) | rng.integers(0, 256, g.shape, dtype=np.uint16)
    open(out("grey16.png"), "wb").write(png_bytes(40, 30, 16, 0, rows_of(g16)))

    # alpha: a gradient, fully transparent at the left, opaque at the right
    rgba = small.resize((120, 80), Image.LANCZOS).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, 120).astype(np.uint8), (80, 1))
    rgba.putalpha(Image.fromarray(alpha, "L"))
    rgba.save(out("rgba.png"))
    la = camera.resize((64, 64), Image.LANCZOS).convert("LA")
    la.putalpha(Image.fromarray(np.tile(np.linspace(255, 0, 64).astype(np.uint8), (64, 1)), "L"))
    la.save(out("la.png"))
    pal = small.resize((120, 80), Image.LANCZOS).quantize(64)
    pal.save(out("palette.png"), transparency=5)
    small.resize((60, 40), Image.LANCZOS).quantize(16).save(out("palette4.png"), bits=4)
    camera.resize((64, 64), Image.LANCZOS).convert("1").save(out("grey1.png"))

    # Adam7
    ai = np.asarray(astro.resize((37, 29), Image.LANCZOS))
    open(out("interlaced.png"), "wb").write(png_bytes(37, 29, 8, 2, adam7_rows(ai), 1))

    # EXIF orientation 1-8 on a small asymmetric crop, and one PNG eXIf
    crop = chelsea.crop((200, 60, 240, 84))
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        crop.save(out("exif-%d.jpg" % o), quality=95, exif=ex.tobytes())
    ex = Image.Exif()
    ex[0x0112] = 6
    crop.save(out("exif-6.png"), exif=ex.tobytes())

    # 1x1
    Image.new("RGB", (1, 1), (200, 30, 90)).save(out("1x1.png"))
    Image.new("RGB", (1, 1), (200, 30, 90)).save(out("1x1.jpg"), quality=95)

    # hostile: bombs (a huge size in the header, a few bytes of data), truncated, garbage
    open(out("bomb.png"), "wb").write(png_bytes(100000, 100000, 8, 2, b"\x00" * 64))
    one = open(out("1x1.jpg"), "rb").read()
    sof = one.index(b"\xff\xc0")
    bomb = bytearray(one)
    bomb[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)
    open(out("bomb.jpg"), "wb").write(bytes(bomb))
    j = open(out("chelsea.jpg"), "rb").read()
    open(out("truncated.jpg"), "wb").write(j[:len(j) // 2])
    p = open(out("astronaut.png"), "rb").read()
    open(out("truncated.png"), "wb").write(p[:len(p) // 2])
    small_rows = rows_of(np.asarray(astro.resize((32, 32), Image.LANCZOS)))
    open(out("wrongsize.png"), "wb").write(png_bytes(64, 64, 8, 2, small_rows))
    r = random.Random(22)
    open(out("garbage.bin"), "wb").write(bytes(r.randrange(256) for _ in range(4096)))
    open(out("empty.jpg"), "wb").close()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(out("notjpeg.gif"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_images.py SKIMAGE_DATA_DIR")
    main(sys.argv[1])
