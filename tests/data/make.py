"""Regenerate the decoder test images: python3 make.py (needs Pillow and numpy)."""
from PIL import Image
import numpy as np

rng = np.random.default_rng(7)
base = (rng.random((40, 52, 3)) * 255).astype("uint8")
Image.fromarray(base, "RGB").convert("CMYK").save("cmyk.jpg", quality=95)
Image.fromarray(base, "RGB").convert("L").save("grey.jpg", quality=95)
