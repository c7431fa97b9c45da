"""How close QAT files are to the teacher on imagenette photos never trained on, through mnq-gpu's integer engine.

The held-out photos are train.py's (refit.split_imagenette: the first --images of the 500 never trained on). Each
is written as a PNG, and so is a blend of it with the next one (weight uniform in [0.2, 0.8], seeded): the blends
ask how the model behaves between the 20 classes' photos, nearer to what the other 980 classes need. mnq-gpu
gives the teacher's probabilities (the original float network, CPU reference: `run --float-only`) and each file's
int8 probabilities (`run --device cpu --json --top 1000`); printed per file: KL(teacher || int8) at T = 1 and top-1
agreement, on the photos and on the blends. This is how a QAT run is chosen (models/finetuned/README.md), never by
val1300.

    finetune/run.sh held_out_kl.py [--images 200] [--mnq-gpu BIN] FILE.tflite...
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import refit  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared")
BLEND_SEED = 7


def probabilities(mnq_gpu, model, images, int8):
    """[len(images), 1000] probabilities from `mnq-gpu run`: the float model's, or its first int8 result's."""
    mode = ["--device", "cpu"] if int8 else ["--float-only"]
    out = subprocess.run([mnq_gpu, "run", "--model", model, *mode, "--json", "--top", "1000", *images],
                         check=True, capture_output=True, text=True).stdout
    table = np.zeros((len(images), 1000))
    for i, result in enumerate(json.loads(out)):
        if int8 and not result["int8"]:
            sys.exit(f"held_out_kl: {model} ran no int8 pipeline (a quantized .tflite or ONNX file is expected)")
        for prediction in (result["int8"][0]["top"] if int8 else result["float"]):
            if prediction["class"] is not None:  # a TFLite model's background output
                table[i, prediction["class"]] = prediction["probability"]
    return table


def compare(teacher, student):
    """(KL(teacher || student) per image, averaged; top-1 agreement)."""
    kl = (teacher * (np.log(np.maximum(teacher, 1e-30)) - np.log(np.maximum(student, 1e-30)))).sum(1).mean()
    return kl, (teacher.argmax(1) == student.argmax(1)).mean()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--data", default=os.path.join(SHARED, "imagenette"))
    parser.add_argument("--cache", default="/work/finetune-runs")
    parser.add_argument("--limit-images", type=int, default=None,
                        help="only the first N imagenette photos (smoke runs; the held-out split then differs)")
    parser.add_argument("--model", default=os.path.join(SHARED, "models", "mobilenet_v1_0.75_224"))
    parser.add_argument("--mnq-gpu", default=os.path.join(REPO, "target", "release", "mnq-gpu"))
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    photos, _ = data.load_imagenette(args.data, args.cache, args.limit_images)
    _, held_out = refit.split_imagenette(len(photos))  # train.py's split at its default --holdout
    held_out = photos[held_out[:args.images]].astype(np.float32)
    weight = np.random.default_rng(BLEND_SEED).uniform(0.2, 0.8, len(held_out))[:, None, None, None]
    blends = weight * held_out + (1 - weight) * np.roll(held_out, -1, axis=0)
    with tempfile.TemporaryDirectory() as tmp:
        sets = {}
        for name, pixels in (("photos", held_out), ("blends", blends)):
            sets[name] = [os.path.join(tmp, f"{name}_{i:03}.png") for i in range(len(pixels))]
            for path, image in zip(sets[name], pixels):
                Image.fromarray(np.rint(image).astype(np.uint8)).save(path)
        teacher = {name: probabilities(args.mnq_gpu, args.model, paths, int8=False) for name, paths in sets.items()}
        results = {}
        for file in args.files:
            results[file] = {}
            for name, paths in sets.items():
                kl, agree = compare(teacher[name], probabilities(args.mnq_gpu, file, paths, int8=True))
                results[file][name] = {"kl": round(float(kl), 4), "agree_top1": round(float(agree), 4)}
            print(f"{file}: photos KL {results[file]['photos']['kl']:.4f} (agreement "
                  f"{results[file]['photos']['agree_top1']:.3f}), blends KL {results[file]['blends']['kl']:.4f} "
                  f"(agreement {results[file]['blends']['agree_top1']:.3f}); {len(held_out)} images each",
                  flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
