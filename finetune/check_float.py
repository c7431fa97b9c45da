"""Check that PyTorch's MobileNetV1 (mobilenet.py) computes mnq-gpu's float function on real images.

mnq-gpu's float CPU reference (examples/float_logits.rs) writes each image's preprocessed input and its logits;
this runs the PyTorch model on the same input and prints the largest logit difference, failing above --tolerance.
It also compares data.preprocess_eval with mnq-gpu's preprocessing (Pillow's JPEG decoder against the `image`
crate's: a difference of a level or so in a few pixels is expected there, so that figure is printed, not checked).

    python finetune/check_float.py --model DIR [--float-logits BIN] IMAGE...
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import mobilenet  # noqa: E402

# Float32 logits of a 28-layer network, summed in different orders (mnq-gpu: plain loops; PyTorch: oneDNN/MKL
# blocked kernels): |difference| <= TOLERANCE * max(1, max |logit|). Google's 0.75 model's logits span about
# -10..25; its worst difference measured 4e-5. (Relative, because an untrained +relu variant's logits reach 1e4.)
TOLERANCE = 1e-5


def mnq_float_logits(binary, model_dir, images):
    """[(input [h, w, 3], logits [1000])] from mnq-gpu's float CPU reference."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([binary, model_dir, out, *images], check=True, stdout=subprocess.DEVNULL)
        results = []
        for i in range(len(images)):
            x = np.fromfile(os.path.join(out, f"{i}.input.f32"), "<f4")
            logits = np.fromfile(os.path.join(out, f"{i}.logits.f32"), "<f4")
            size = int(round((x.size / 3) ** 0.5))
            results.append((x.reshape(size, size, 3), logits))
        return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="TF.js folder (Google's or one export.py wrote)")
    parser.add_argument("--float-logits", default=os.environ.get("MNQ_FLOAT_LOGITS", "target/release/examples/float_logits"))
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    parser.add_argument("images", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = mobilenet.load_tfjs(args.model)
    worst = 0.0
    for path, (x, expected) in zip(args.images, mnq_float_logits(args.float_logits, args.model, args.images)):
        with torch.no_grad():
            logits = model(torch.from_numpy(x).permute(2, 0, 1)[None]).numpy()[0]
        diff = float(np.abs(logits - expected).max()) / max(1.0, float(np.abs(expected).max()))
        worst = max(worst, diff)
        ours = data.preprocess_eval(data.decode_rgb(path), x.shape[0])
        print(f"{os.path.basename(path)}: max |logit diff| / max(1, max |logit|) {diff:.2e} (logits span {expected.min():.1f}..{expected.max():.1f}),"
              f" top-1 {int(expected.argmax())}/{int(logits.argmax())}; Pillow preprocessing vs mnq-gpu's: max |diff|"
              f" {np.abs(ours - x).max():.4f}, mean {np.abs(ours - x).mean():.5f}")
    print(f"worst relative logit difference {worst:.2e}, tolerance {args.tolerance:.0e}: {'ok' if worst <= args.tolerance else 'FAIL'}")
    sys.exit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
