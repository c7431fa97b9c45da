#!/usr/bin/env python3
"""Build the fuzz seed corpus, fuzz/corpus/<target>/, from ../shared's real files and the committed fuzz/seeds/.

Usage: fuzz/seed.py SHARED CORPUS [MNQ_GPU]. Without SHARED (missing folder) only the committed seeds and the
generated PNGs go in. With the mnq-gpu binary MNQ_GPU, a tiny TF.js model (the 0.75 model's topology at 4
channels, 16x16 input, 5 classes, seeded random weights) is quantized and exported, giving small, valid
quantized-model and TFLite seeds that reach the whole loader, and its float ONNX export (the committed
fuzz/seeds/onnx/ hold a small QDQ file, written by tests/onnx_import.rs). Standard library only.
"""
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import zlib

SHARED, CORPUS = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
MNQ = sys.argv[3] if len(sys.argv) > 3 else None
HERE = os.path.dirname(os.path.abspath(__file__))
CHANNELS, CLASSES, SIZE = 4, 5, 16


def target(name):
    path = os.path.join(CORPUS, name)
    os.makedirs(path, exist_ok=True)
    return path


def write(folder, name, data):
    with open(os.path.join(target(folder), name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def tfjs_input(json_bytes, shards):
    """The tfjs target's input: model.json, NUL, then each shard as u32 LE length + bytes."""
    return json_bytes + b"\0" + b"".join(struct.pack("<I", len(s)) + s for s in shards)


def shard_names(model):
    return [p for group in model["weightsManifest"] for p in group["paths"]]


def tiny_model(model):
    """The topology of `model` at CHANNELS channels, SIZE x SIZE input and CLASSES classes, with random weights:
    (model.json bytes, {shard name: bytes})."""
    rng = random.Random(7)
    model = json.loads(json.dumps(model))
    layers = model["modelTopology"].get("model_config", model["modelTopology"])["config"]["layers"]
    for layer in layers:
        config = layer["config"]
        if layer["class_name"] == "InputLayer":
            config["batch_input_shape"] = [None, SIZE, SIZE, 3]
        if "filters" in config:
            config["filters"] = CLASSES if config["name"] == "conv_preds" else CHANNELS
        if config.get("name") == "reshape_1":
            config["target_shape"] = [1, 1, CHANNELS]
        if config.get("name") == "reshape_2":
            config["target_shape"] = [CLASSES]
    shards = {}
    for group in model["weightsManifest"]:
        data = b""
        for weight in group["weights"]:
            name = weight["name"]
            if name == "conv1/kernel":
                shape = [3, 3, 3, CHANNELS]
            elif name.endswith("/depthwise_kernel"):
                shape = [3, 3, CHANNELS, 1]
            elif name == "conv_preds/kernel":
                shape = [1, 1, CHANNELS, CLASSES]
            elif name == "conv_preds/bias":
                shape = [CLASSES]
            elif name.endswith("/kernel"):
                shape = [1, 1, CHANNELS, CHANNELS]
            else:
                shape = [CHANNELS]
            weight["shape"] = shape
            count = 1
            for d in shape:
                count *= d
            low, high = (0.5, 1.5) if name.endswith("moving_variance") else (-0.5, 0.5)
            data += struct.pack(f"<{count}f", *(rng.uniform(low, high) for _ in range(count)))
        paths = group["paths"]
        step = -(-len(data) // len(paths))
        for i, path in enumerate(paths):
            shards[path] = data[i * step : (i + 1) * step]
    return json.dumps(model).encode(), shards


def png(width, height, color_type, depth, rng):
    """A PNG of random pixels: color type 0 grey, 2 RGB, 6 RGBA; depth 8 or 16."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = width * channels * depth // 8
    raw = b"".join(b"\0" + bytes(rng.randrange(256) for _ in range(row)) for _ in range(height))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def strip_checksum(data):
    """A quantized-model file without its `sha256` (an older file: loads unchecked, so mutations reach
    validation instead of stopping at the checksum)."""
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    header.get("__metadata__", {}).pop("sha256", None)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + n :]


def main():
    for name in sorted(os.listdir(os.path.join(HERE, "seeds"))):
        source = os.path.join(HERE, "seeds", name)
        for seed in sorted(os.listdir(source)):
            write(name, seed, read(os.path.join(source, seed)))
    rng = random.Random(1)
    for i, (w, h, kind, depth) in enumerate([(16, 12, 2, 8), (5, 7, 0, 8), (9, 9, 6, 8), (6, 4, 2, 16), (3, 3, 4, 8)]):
        write("image", f"generated_{i}.png", png(w, h, kind, depth, rng))
    for name in ["scheme", "tfjs", "tflite", "quant_file", "image", "onnx"]:
        target(name)
    if not os.path.isdir(SHARED):
        print(f"seed: no {SHARED}; committed and generated seeds only", file=sys.stderr)
        return

    models = os.path.join(SHARED, "models")
    for model_dir in ["mobilenet_v1_0.75_224", "mobilenet_v1_1.0_224"]:
        text = read(os.path.join(models, model_dir, "model.json"))
        names = shard_names(json.loads(text))
        write("tfjs", f"{model_dir}_json_only", tfjs_input(text, []))
        # The first shards as they are, cut to 256 bytes: real data, the wrong size.
        shards = []
        for name in names[:4]:
            path = os.path.join(models, model_dir, name)
            shards.append(read(path)[:256] if os.path.exists(path) else b"")
        write("tfjs", f"{model_dir}_short_shards", tfjs_input(text, shards))
    real = json.loads(read(os.path.join(models, "mobilenet_v1_0.75_224", "model.json")))
    tiny_json, tiny_shards = tiny_model(real)
    write("tfjs", "tiny_complete", tfjs_input(tiny_json, [tiny_shards[n] for n in shard_names(real)]))

    tflite = os.path.join(models, "tflite")
    for name in sorted(os.listdir(tflite)):
        write("tflite", name, read(os.path.join(tflite, name)))

    images = os.path.join(SHARED, "imagenet", "val1300", "images")
    for name in sorted(os.listdir(images))[:6]:
        write("image", name, read(os.path.join(images, name)))
    write("image", "grace_hopper.jpg", read(os.path.join(SHARED, "images", "grace_hopper.jpg")))

    if not MNQ:
        print("seed: no mnq-gpu binary given; no quantized-model or exported TFLite seeds", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = os.path.join(tmp, "tiny")
        os.makedirs(model_dir)
        with open(os.path.join(model_dir, "model.json"), "wb") as f:
            f.write(tiny_json)
        for name, data in tiny_shards.items():
            with open(os.path.join(model_dir, name), "wb") as f:
                f.write(data)
        calibration = os.path.join(tmp, "calibration.txt")
        with open(calibration, "w") as f:
            for name in sorted(os.listdir(images))[:2]:
                f.write(f"{os.path.join(images, name)} 0\n")
        schemes = "tf8,per-channel+sym,cle-bc+w4"
        common = ["--model", model_dir, "--calibration", calibration, "--scheme"]
        quantized, exported = os.path.join(tmp, "quantized"), os.path.join(tmp, "exported")
        subprocess.run([MNQ, "quantize", *common, schemes, "-o", quantized], check=True)
        subprocess.run([MNQ, "export", *common, "tf8,tf8+sym,per-channel+sym", "-o", exported], check=True)
        for name in sorted(os.listdir(quantized)):
            data = read(os.path.join(quantized, name))
            write("quant_file", name, data)
            write("quant_file", "unchecked_" + name, strip_checksum(data))
        for name in sorted(os.listdir(exported)):
            write("tflite", name, read(os.path.join(exported, name)))
        onnx = os.path.join(tmp, "tiny_float.onnx")
        subprocess.run([MNQ, "export", "--model", model_dir, "--format", "onnx", "--float", "-o", onnx], check=True)
        write("onnx", "tiny_float.onnx", read(onnx))


main()
