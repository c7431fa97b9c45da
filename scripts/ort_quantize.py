#!/usr/bin/env python3
"""Quantize a float ONNX MobileNetV1 with ONNX Runtime's `quantize_static`, as its users do, into the models that
scripts/ort_crosscheck.py checks mnq-gpu against:

  qdq           QDQ, quantize_static's defaults: int8 activations, symmetric int8 weights per tensor
  qdq_pc        QDQ, the same with per-channel weights (per_channel=True)
  qdq_u8        QDQ, uint8 activations and uint8 (asymmetric) weights
  qop           QOperator (QLinearConv, QLinearGlobalAveragePool, QGemm), int8 activations and weights

Calibration (MinMax, quantize_static's default) runs on a float32 [n, 3, h, w] .npy of preprocessed images,
which `cargo run --release --example preprocess_npy -- LIST SIZE OUT.npy` writes exactly as mnq-gpu preprocesses.

  cargo run --release -- export --model ../shared/models/mobilenet_v1_0.75_224 --format onnx --float -o m.onnx
  cargo run --release --example preprocess_npy -- ../shared/imagenet/val1300/calibration.txt 224 calibration.npy
  "$(scripts/ort-venv.sh | tail -n1)" scripts/ort_quantize.py --float m.onnx --calibration calibration.npy --out DIR
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

VARIANTS = {
    "qdq": dict(quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8),
    "qdq_pc": dict(
        quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True
    ),
    "qdq_u8": dict(quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8),
    "qop": dict(quant_format=QuantFormat.QOperator, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8),
}


class Images(CalibrationDataReader):
    def __init__(self, images, input_name):
        self.items = iter([{input_name: images[i : i + 1]} for i in range(len(images))])

    def get_next(self):
        return next(self.items, None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--float", required=True, type=Path, help="float ONNX model (mnq-gpu export --format onnx --float)")
    parser.add_argument("--calibration", required=True, type=Path, help="float32 [n, 3, h, w] .npy")
    parser.add_argument("--out", required=True, type=Path, help="folder for <stem>_<variant>.onnx")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {','.join(VARIANTS)}")
    args = parser.parse_args()
    images = np.load(args.calibration)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.variants.split(","):
        if name not in VARIANTS:
            sys.exit(f"error: unknown variant {name}; variants: {', '.join(VARIANTS)}")
        output = args.out / f"{args.float.stem}_{name}.onnx"
        quantize_static(str(args.float), str(output), Images(images, "input"), **VARIANTS[name])
        print(f"wrote {output} ({name}: {VARIANTS[name]}, calibrated on {len(images)} images)", file=sys.stderr)


if __name__ == "__main__":
    main()
