#!/usr/bin/env python3
"""ONNX Runtime's own top-1/top-5 of ONNX MobileNetV1 files: ORT's default CPU session, untouched, on the float
inputs mnq-gpu's preprocessing makes (`cargo run --release --example preprocess_npy -- LIST 224 inputs.npy`),
against the list's labels. Top-k from the `probabilities` output (ties to the lower class index). The figure to set
beside `mnq-gpu eval --model FILE.onnx` on the same list.

  "$(scripts/ort-venv.sh | tail -n1)" scripts/ort_eval.py --models a.onnx,b.onnx --inputs inputs.npy \\
      --list ../shared/imagenet/val1300/evaluation.txt
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", required=True, help="comma-separated ONNX files")
    parser.add_argument("--inputs", required=True, type=Path, help="float32 [n, 3, h, w] .npy (preprocess_npy)")
    parser.add_argument("--list", required=True, type=Path, help="the FILE CLASS list the inputs were made from")
    args = parser.parse_args()
    inputs = np.load(args.inputs, mmap_mode="r")
    labels = np.array([int(line.split()[1]) for line in args.list.read_text().splitlines() if line.strip()])
    if len(labels) != len(inputs):
        sys.exit(f"error: {len(inputs)} inputs but {len(labels)} labels in {args.list}")
    for path in args.models.split(","):
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        top1 = top5 = 0
        for i in range(len(inputs)):
            scores = session.run(None, {name: np.ascontiguousarray(inputs[i : i + 1])})[0].reshape(-1)
            order = np.argsort(-scores, kind="stable")
            top1 += order[0] == labels[i]
            top5 += labels[i] in order[:5]
        n = len(inputs)
        print(f"{Path(path).stem}: ORT {ort.__version__} top-1 {100 * top1 / n:.2f} %, top-5 {100 * top5 / n:.2f} % "
              f"on {n} images of {args.list}")


if __name__ == "__main__":
    main()
