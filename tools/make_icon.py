"""Makes difflab's icon (assets/icon/difflab-*.png): an MNIST digit that comes out of noise
from its top-left corner to its bottom-right one, on a dark rounded square. Reproducible:
fixed digit, fixed seed. Needs Pillow and NumPy (pip install pillow numpy)."""
import gzip
import pathlib

import numpy as np
from PIL import Image, ImageDraw

root = pathlib.Path(__file__).resolve().parent.parent
with gzip.open(root / "assets/mnist/images-idx3-ubyte.gz") as f:
    data = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
with gzip.open(root / "assets/mnist/labels-idx1-ubyte.gz") as f:
    labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
digit = data[np.flatnonzero(labels == 2)[3]].astype(np.float64) / 127.5 - 1.0

rng = np.random.default_rng(0)
noise = rng.standard_normal((28, 28))
yy, xx = np.mgrid[0:28, 0:28]
# Along the diagonal, t falls from near T to 0: x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps.
abar = np.clip((xx + yy - 8) / 28.0, 0.08, 1.0)
x = np.sqrt(abar) * digit + np.sqrt(1.0 - abar) * noise
grey = np.clip((x + 1.0) * 127.5, 0, 255).astype(np.uint8)

size = 256
tile = Image.fromarray(grey, "L").resize((176, 176), Image.NEAREST)
# Warm colour map: black → orange → white, as the app's own pictures are grey on dark.
lut = []
for v in range(256):
    t = v / 255.0
    lut += [int(255 * min(1, 1.6 * t)), int(255 * min(1, max(0, 1.4 * t - 0.25))), int(255 * max(0, 2 * t - 1))]
tile = tile.convert("L").convert("P")
tile.putpalette(lut)
tile = tile.convert("RGBA")

icon = Image.new("RGBA", (size, size), (0, 0, 0, 0))
mask = Image.new("L", (size, size), 0)
ImageDraw.Draw(mask).rounded_rectangle([8, 8, size - 9, size - 9], radius=44, fill=255)
bg = Image.new("RGBA", (size, size), (24, 28, 40, 255))
icon.paste(bg, (0, 0), mask)
icon.paste(tile, (40, 40))
out = root / "assets/icon"
out.mkdir(exist_ok=True)
for px in (256, 128, 64, 32):
    icon.resize((px, px), Image.LANCZOS).save(out / f"difflab-{px}.png", optimize=True)
print("wrote", ", ".join(f"difflab-{px}.png" for px in (256, 128, 64, 32)))
