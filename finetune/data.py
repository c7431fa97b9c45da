"""Images: mnq-gpu's evaluation preprocessing, and the fine-tuning set (../shared/imagenette) with its augmentation.

Evaluation preprocessing (src/preprocess.rs, TF-slim's preprocess_for_eval): central crop 87.5 % (start offset
truncated), TF 1 bilinear resize (align_corners=False, no half-pixel centres), x/127.5 - 1.

Training: every imagenette photo (25,328, all 160x160) is decoded once into a uint8 array cached on disk
(<cache>/imagenette160.npy, 1.9 GB), so a step spends no time on JPEG decoding. Augmentation, per image, on the
batch: a random crop of 35-100 % of the area with aspect 3/4-4/3 (Inception-style), bilinear resize to the training
size, a random horizontal flip, and x/127.5 - 1; optionally (`mix`) part of the batch blended with other photos of
it (mixup, as the "patient and consistent" teacher's function matching: Beyer et al., 2022), so that the student
matches the teacher also between the 20 classes' photos. The teacher sees the same augmented image as the student.
"""

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CENTRAL_FRACTION = 0.875


def decode_rgb(path):
    """RGB floats in [0, 1], [h, w, 3] (Pillow's JPEG decoder; mnq-gpu's may differ by a level in a few pixels)."""
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def resize_coordinates(size_in, size_out):
    """TF 1 resize_bilinear source coordinates: (lower, upper, fraction) per output index, as preprocess.rs."""
    scale = np.float32(size_in) / np.float32(size_out)
    source = np.arange(size_out, dtype=np.float32) * scale
    lower = np.minimum(np.floor(source).astype(np.int64), size_in - 1)
    upper = np.minimum(lower + 1, size_in - 1)
    return lower, upper, (source - lower).astype(np.float32)


def preprocess_eval(rgb, size):
    """mnq-gpu's float input [size, size, 3] in [-1, 1] from RGB floats [h, w, 3] in [0, 1]."""
    h, w, _ = rgb.shape
    top = int((h - h * CENTRAL_FRACTION) / 2)
    left = int((w - w * CENTRAL_FRACTION) / 2)
    crop = rgb[top:h - top, left:w - left]
    y0, y1, fy = resize_coordinates(crop.shape[0], size)
    x0, x1, fx = resize_coordinates(crop.shape[1], size)
    fx = fx[None, :, None]
    upper = crop[y0][:, x0] + (crop[y0][:, x1] - crop[y0][:, x0]) * fx
    lower = crop[y1][:, x0] + (crop[y1][:, x1] - crop[y1][:, x0]) * fx
    return (upper + (lower - upper) * fy[:, None, None]) * 2.0 - 1.0


def read_list(path):
    """`FILE CLASS` lines -> [(file, class)]."""
    with open(path) as f:
        return [(name, int(label)) for name, label in (line.split() for line in f if line.strip())]


def load_imagenette(root, cache_dir, limit=None):
    """(images uint8 [N, 160, 160, 3], labels int64 [N]), decoded once and cached as .npy in cache_dir."""
    entries = read_list(os.path.join(root, "labels.txt"))[:limit]
    labels = np.array([c for _, c in entries], dtype=np.int64)
    cache = os.path.join(cache_dir, f"imagenette160_{len(entries)}.npy")
    if os.path.exists(cache):
        return np.load(cache, mmap_mode="r"), labels
    images = np.empty((len(entries), 160, 160, 3), dtype=np.uint8)
    for i, (name, _) in enumerate(entries):
        image = Image.open(os.path.join(root, "images", name)).convert("RGB")
        if image.size != (160, 160):
            image = image.resize((160, 160), Image.BILINEAR)
        images[i] = np.asarray(image)
    os.makedirs(cache_dir, exist_ok=True)
    np.save(cache + ".tmp.npy", images)
    os.replace(cache + ".tmp.npy", cache)
    return images, labels


def augment(batch_uint8, size, generator):
    """Random-resized crop (area 35-100 %, aspect 3/4-4/3), bilinear to size x size, random flip, to [-1, 1].

    One affine grid_sample for the whole batch. batch_uint8: uint8 [N, H, W, 3] -> float [N, 3, size, size]
    (channels_last memory)."""
    n, h, w, _ = batch_uint8.shape
    x = torch.from_numpy(np.array(batch_uint8)).permute(0, 3, 1, 2).float()
    r = torch.rand(n, 5, generator=generator, dtype=torch.float64)
    area = h * w * (0.35 + 0.65 * r[:, 0])
    aspect = torch.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * r[:, 1])
    ch = torch.sqrt(area / aspect).clamp(max=h)
    cw = torch.sqrt(area * aspect).clamp(max=w)
    top = r[:, 2] * (h - ch)
    left = r[:, 3] * (w - cw)
    flip = torch.where(r[:, 4] < 0.5, -1.0, 1.0)
    # Normalized source coordinate = a * normalized output coordinate + b (align_corners=False convention).
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = cw / w * flip
    theta[:, 0, 2] = (2 * left + cw) / w - 1
    theta[:, 1, 1] = ch / h
    theta[:, 1, 2] = (2 * top + ch) / h - 1
    grid = F.affine_grid(theta.float(), [n, 3, size, size], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (out / 127.5 - 1.0).contiguous(memory_format=torch.channels_last)


def mix(x, fraction, generator):
    """Mixup for distillation: the first round(fraction * N) images of the batch x [N, 3, S, S] each blended with
    a random image of the batch (a random permutation's; now and then itself), weight uniform in [0, 1]; the rest
    unchanged. No labels are mixed: the teacher labels the blended image itself."""
    n = x.shape[0]
    count = round(fraction * n)
    if count == 0:
        return x
    partner = torch.randperm(n, generator=generator)[:count]
    weight = torch.rand(count, 1, 1, 1, generator=generator)
    mixed = x.clone()
    mixed[:count] = weight * x[:count] + (1 - weight) * x[partner]
    return mixed.contiguous(memory_format=torch.channels_last)
