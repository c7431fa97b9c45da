"""How far the QAT training graph (qat.py) is from mnq-gpu's integer engine on the TFLite file written from it.

For each image, mnq-gpu runs the file on its CPU integer reference and dumps the uint8 input and every layer's
uint8 output (`mnq-gpu run --device cpu --dump`); the training graph (eval mode, frozen ranges) runs on the same
uint8 input. Printed per layer: the share of bytes that differ and the largest difference in codes; for the logits
also the top-1 agreement. Then `mnq-gpu run --check` on the file (GPU against the CPU reference, bit for bit).

    finetune/run.sh check_qat.py --checkpoint RUN/checkpoint.pt [--tflite FILE] [--mnq-gpu BIN] IMAGE...
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mobilenet  # noqa: E402
import qat  # noqa: E402
import tflite_writer  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a qat-tf8 checkpoint.pt of train.py")
    parser.add_argument("--tflite", default=None, help="the file written from it (default: write one now)")
    parser.add_argument("--model", default=os.path.join(REPO, "..", "shared", "models", "mobilenet_v1_0.75_224"))
    parser.add_argument("--mnq-gpu", default=os.path.join(REPO, "target", "release", "mnq-gpu"))
    parser.add_argument("images", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(2)
    state = torch.load(args.checkpoint, weights_only=False)
    model = qat.QatMobileNetV1(mobilenet.load_original(args.model), state["args"].get("learn_weight_ranges", False))
    model.load_state_dict(state["model"])
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.tflite or os.path.join(tmp, "qat-tf8.tflite")
        if not args.tflite:
            tflite_writer.write(model, path)
        dump = os.path.join(tmp, "dump")
        subprocess.run([args.mnq_gpu, "run", "--model", path, "--device", "cpu", "--dump", dump, *args.images],
                       check=True, stdout=subprocess.DEVNULL)
        manifest = json.load(open(os.path.join(dump, "manifest.json")))
        totals = {}
        agree = 0
        for run in manifest["runs"]:
            codes = np.load(os.path.join(dump, run["input"])).astype(np.float32)
            x = torch.from_numpy(codes.reshape(1, *codes.shape[-3:])).permute(0, 3, 1, 2) / 127.5 - 1.0
            trace = []
            with torch.no_grad():
                model(x, trace=trace)
            ours = dict(trace)
            # Each layer again on the engine's own input codes: its arithmetic alone, without what came before.
            alone = {}
            engine_input, in_scale, in_zero = x, None, None
            layers = list(model.convs) + [None, model.classifier]
            for layer, entry in zip(layers, run["layers"]):
                engine_out = torch.from_numpy(np.load(os.path.join(dump, entry["file"])).astype(np.float32))
                engine_out = engine_out.reshape(1, *engine_out.shape[-3:]).permute(0, 3, 1, 2)
                with torch.no_grad():
                    if in_scale is None:
                        prev = model.quantize_input(engine_input)
                        in_scale = qat.INPUT_SCALE
                    else:
                        prev = (engine_input - in_zero) * in_scale
                    if layer is None:  # the pool
                        n = engine_input.shape[2] * engine_input.shape[3]
                        codes = torch.floor((engine_input.sum((2, 3), keepdim=True) + n // 2) / n)
                        alone["pool"] = codes
                    else:
                        y, _ = layer(prev, in_scale, False)
                        alone[layer.name] = qat.to_codes(y, *layer.output_params())
                        in_scale, in_zero = layer.output_params()
                engine_input = engine_out
            for layer in run["layers"]:
                name = "pool" if layer["name"].startswith("global_average") else layer["name"]
                engine = np.load(os.path.join(dump, layer["file"])).astype(np.int32).reshape(-1)
                mine = ours[name].permute(0, 2, 3, 1).reshape(-1).numpy().astype(np.int32)
                diff = np.abs(engine - mine)
                alone_diff = np.abs(engine - alone[name].permute(0, 2, 3, 1).reshape(-1).numpy().astype(np.int32))
                t = totals.setdefault(name, [0, 0, 0, 0, 0])
                t[0] += int((diff > 0).sum())
                t[1] += diff.size
                t[2] = max(t[2], int(diff.max()))
                t[3] += int((alone_diff > 0).sum())
                t[4] = max(t[4], int(alone_diff.max()))
                if name == "conv_preds":
                    agree += int(engine.argmax() == mine.argmax())
                    print(f"{os.path.basename(run['image'])}: logits differ in {int((diff > 0).sum())} of {diff.size}"
                          f" bytes (max {int(diff.max())} codes), top-1 engine {engine.argmax()} / graph {mine.argmax()}")
        print("per layer, whole graph | the layer alone on the engine's input:")
        for name, (differ, count, worst, alone_differ, alone_worst) in totals.items():
            print(f"  {name:12s} {differ:8d} of {count:9d} bytes differ ({100 * differ / count:.3f} %), max {worst}"
                  f" | alone {alone_differ:7d} ({100 * alone_differ / count:.4f} %), max {alone_worst}")
        print(f"top-1 agreement graph/engine: {agree} of {len(manifest['runs'])}")
        check = subprocess.run([args.mnq_gpu, "run", "--model", path, "--check", *args.images],
                               capture_output=True, text=True)
        print(check.stdout.strip().splitlines()[-1] if check.stdout.strip() else check.stderr[-500:])
        sys.exit(check.returncode)


if __name__ == "__main__":
    main()
