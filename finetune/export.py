"""Write a fine-tuned model in a format mnq-gpu's --model reads.

    float variants -> a TF.js layers folder with the variant's topology (mobilenet.write_tfjs): Conv2D /
                      DepthwiseConv2D (use_bias where the variant has a bias), BatchNormalization, Activation
                      relu / relu6; float32 shards; exactly equalized first (equalize.py: the same function, with
                      channel ranges that per-tensor TF8 can resolve). mnq-gpu then quantizes it with any --scheme.
    qat-tf8         -> a uint8 TFLite flatbuffer with the trained ranges (tflite_writer.py), which mnq-gpu runs
                      with `--scheme tflite` (its default for a .tflite file), without recalibration.

    finetune/run.sh export.py --checkpoint /work/finetune-runs/dw-linear/checkpoint.pt --out DIR
"""

import argparse
import copy
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mobilenet  # noqa: E402


def export(student, out):
    student = student.to(memory_format=torch.contiguous_format)
    if getattr(student, "variant", None) == "qat-tf8":
        import tflite_writer
        tflite_writer.write(student, out)
    else:
        import equalize
        student = copy.deepcopy(student)
        equalize.equalize(student)
        mobilenet.write_tfjs(student, out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--model", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "models",
                                                         "mobilenet_v1_0.75_224"))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import train
    state = torch.load(args.checkpoint, weights_only=False)
    init = state["args"].get("init", "full")
    learn_weight_ranges = state["args"].get("learn_weight_ranges", False)
    student = train.build_student(state["variant"], mobilenet.load_original(args.model), init, learn_weight_ranges)
    student.load_state_dict(state["model"])
    if init == "path" and state["variant"] != "qat-tf8":
        student.path = state.get("path", 0.0)
        if student.path < 1:
            sys.exit(f"{args.checkpoint}: saved at {student.path:.2f} of the way along the path (--init path), so"
                     " its network is not yet the variant; export a checkpoint from past --path-fraction")
        mobilenet.end_path(student)
    export(student.eval(), args.out)
    print(f"wrote {args.out} ({state['variant']}, step {state['step']})")


if __name__ == "__main__":
    main()
