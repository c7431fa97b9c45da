"""Fine-tune a MobileNetV1 variant by distillation from the original float network.

    finetune/run.sh train.py --variant dw-linear+relu+l2 --run /work/finetune-runs/dw-linear+relu+l2 \
        --minutes 25 --export models/finetuned/dw-linear+relu+l2

The teacher is Google's float MobileNetV1 0.75 (ReLU6, BatchNorm), unchanged. The student starts from the same
weights transformed into the variant (mobilenet.make_variant), then, by default (--init full), each block's pointwise
layer refitted by ridge regression so that the block without its depthwise BN + ReLU6 reproduces the teacher's
pointwise input on the student's own input (refit.py, on --fit-images imagenette training images, first block to
last), and with --refit-classifier the classifier after them (ridge regression of the teacher's logits, shrunk toward
the teacher's classifier: refit.refit_classifier; tried and reverted, models/finetuned/README.md). For qat-tf8 the
student is the original network with mnq-gpu's TF8 fake quantization (qat.py). Both see the same augmented imagenette
batch (data.py); --holdout images are never trained on, and the top-1 agreement with the teacher on --agree-images of
them (whole photos at the model's 224 px) is logged at every checkpoint.

Loss: T^2 * KL(softmax(teacher/T) || softmax(student/T)) over all 1,000 classes, T = 2 (imagenette covers 20
classes, so its labels are never used), plus a weight times the feature loss: the mean over conv1 and the 13 blocks
of the squared error of the output (after its activation) relative to the teacher's mean square (every variant keeps
the teacher's channels, so the blocks correspond one to one), plus, for +l2, (l2/2) * sum of squared depthwise
weights (TF's l2_loss convention, the study's weight decay 4e-5 by default), plus, with --logit-mse W, W times the
mean squared error of all 1,000 raw logits against the teacher's (the softened KL hardly constrains the classes that
imagenette's photos give near-zero probability).
The student runs end to end on its own inputs throughout, feature weight --features-final (0.1).
(--init path, tried and not used for the models: the student starts as the original network itself, with each
depthwise BN as a bias, and over the first --path-fraction of the training each ReLU6 the variant removes has its
clipping widened step by step, to clamp(z, -w, 6 + w) with w up to --path-width, then removed; feature weight
--features on the path. The teacher's agreement falls as w grows faster than the training follows: README.md.) (Optional, off by
default, and what failed before the refit existed: for --teacher-forced of the training each block runs on the
teacher's input to it, then for --anneal its input moves linearly to the student's own; feature weight --features.)
BatchNorm: running statistics frozen (eval mode throughout: 20 classes of data would skew ImageNet's statistics);
gamma and beta train with the rest.
Optimizer: Adam, peak --lr warmed up linearly over --warmup steps, then cosine to 0 at the last step (or at
--minutes of training time: the CPU here is shared, so a time budget fixes the wall time and the speed the steps);
gradient norm clipped to --clip. (For qat-tf8, --weight-lr-steps F, tried and stopped: each layer's weights at peak
lr F times its median quantization step in their own units, so that the depthwise weights, whose step is ~0.3 where
--lr moves them 2e-5 a step, can change code.)
Every --checkpoint-every steps the state (model, optimizer, step) is written atomically to RUN/checkpoint.pt;
rerunning the same command resumes from it. The data order depends only on --seed and the step, so a resumed run
sees the same images as an uninterrupted one. RUN/log.jsonl has one line per --log-every steps.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import mobilenet  # noqa: E402
import refit  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(REPO, "..", "shared", "models", "mobilenet_v1_0.75_224")
DEFAULT_DATA = os.path.join(REPO, "..", "shared", "imagenette")
WARMUP_STEPS = 100


def build_student(variant, teacher, init, learn_weight_ranges=False):
    if variant == "qat-tf8":
        import qat
        return qat.QatMobileNetV1(teacher, learn_weight_ranges)
    if init == "path":
        return mobilenet.start_path(teacher, variant)
    return mobilenet.make_variant(teacher, variant)


def distillation_loss(student_logits, teacher_logits, temperature):
    """T^2 * KL(p_teacher || p_student) on temperature-softened logits, mean over the batch."""
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(1).mean()
    return temperature ** 2 * kl


def feature_loss(student_features, teacher_features):
    """Mean over conv1 and the 13 blocks of the output's squared error, relative to the teacher's mean square."""
    terms = [((s - t) ** 2).mean() / (t ** 2).mean().clamp(min=1e-6) for s, t in zip(student_features, teacher_features)]
    return sum(terms) / len(terms)


def learning_rate(step, progress, peak, warmup=WARMUP_STEPS):
    """Linear warm-up over `warmup` steps, then cosine from peak to 0 as progress goes from 0 to 1."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def batch_indices(step, batch, pool, seed):
    """The images of `step`, from the training pool (indices): epoch e's order is a permutation seeded by (seed, e),
    so it is the same on resume."""
    per_epoch = len(pool) // batch
    epoch, i = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(len(pool))
    return np.sort(pool[order[i * batch:(i + 1) * batch]])


def write_summary(args, steps, elapsed):
    """RUN/summary.json: the run's cost as finetune/training.json records it (report's fine-tuning section)."""
    start = {"path": "original weights, activations moved to the variant's (path)", "fold": "folded variant",
             "diag": "per-channel refit", "full": "ridge refit"}[args.init] if args.variant != "qat-tf8" else \
        ("original weights cross-layer equalized (scales >= 1), TF8 fake quantization" if args.equalize else
         "original weights, TF8 fake quantization")
    if args.refit_classifier is not None:
        start += f", then the classifier (ridge {args.refit_classifier:g})"
    if args.start_from:
        start = f"{args.start_from} ({start})"
    log_times = [json.loads(line)["time"] for line in open(os.path.join(args.run, "log.jsonl")) if '"time"' in line]
    summary = {"model": args.variant, "start": start, "minutes": round(elapsed / 60, 1), "steps": steps,
               "batch": args.batch, "size": args.size, "images_seen": steps * args.batch,
               "wall": f"{log_times[0]}–{log_times[-1]}" if log_times else "",
               "machine": f"{os.cpu_count()} CPU cores, PyTorch {torch.__version__}, {args.threads} threads"}
    with open(os.path.join(args.run, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)


def save_atomic(obj, path):
    torch.save(obj, path + ".tmp")
    os.replace(path + ".tmp", path)


def parameter_groups(student, args):
    """Adam's groups, each with its peak lr: the learnt weight ranges at --range-lr; with --weight-lr-steps each
    QAT layer's weights at that many of its quantization steps; everything else at --lr."""
    ranges = [p for name, p in student.named_parameters() if name.endswith("weight_range_factor")]
    layers = [m for m in student.modules() if hasattr(m, "median_raw_step")] if args.weight_lr_steps else []
    apart = {id(p) for p in ranges} | {id(layer.weight) for layer in layers}
    groups = [{"params": [p for p in student.parameters() if id(p) not in apart], "peak": args.lr}]
    if ranges:
        groups.append({"params": ranges, "peak": args.range_lr})
    for layer in layers:  # computed on the start, before any checkpoint is resumed: the same on every resume
        groups.append({"params": [layer.weight], "peak": args.weight_lr_steps * layer.median_raw_step()})
    return groups


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", required=True, choices=mobilenet.VARIANTS[1:] + ["qat-tf8"])
    parser.add_argument("--run", required=True, help="folder for checkpoint.pt, log.jsonl (resumes from it)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the original TF.js folder (teacher and start)")
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--cache", default="/work/finetune-runs", help="where the decoded imagenette array goes")
    parser.add_argument("--limit-images", type=int, default=None, help="only the first N images (smoke runs)")
    parser.add_argument("--steps", type=int, default=None, help="training length in steps")
    parser.add_argument("--minutes", type=float, default=None,
                        help="training length in minutes of training time instead (the CPU is shared, so the step"
                             " count follows from the speed; the schedule's progress is elapsed/minutes)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=160, help="training resolution")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup", type=int, default=WARMUP_STEPS, help="steps of linear lr warm-up")
    parser.add_argument("--mixup", type=float, default=0.0,
                        help="the fraction of each batch blended with another photo of it (data.mix); 0: none")
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--logit-mse", type=float, default=0.0,
                        help="weight of the mean squared error of all 1,000 logits against the teacher's, beside"
                             " the KL (which, softened at T = 2, hardly constrains the classes absent from"
                             " imagenette's photos); 0: none")
    parser.add_argument("--l2", type=float, default=None, help="depthwise L2 weight (default: 4e-5 for +l2, else 0)")
    parser.add_argument("--features", type=float, default=1.0,
                        help="weight of the block-output (feature) loss; 0 distils the logits only")
    parser.add_argument("--freeze-ranges", type=float, default=0.8,
                        help="qat-tf8: activation ranges stop tracking at this fraction of the training")
    parser.add_argument("--learn-weight-ranges", action="store_true",
                        help="qat-tf8: each layer's weight range trains (qat.QatConv.weight_range), from its"
                             " folded kernel's min and max, at peak lr --range-lr; else it follows min and max")
    parser.add_argument("--equalize", action="store_true",
                        help="qat-tf8: start from cross-layer equalized weights, scales >= 1"
                             " (qat.QatMobileNetV1.equalize; tried and stopped, models/finetuned/README.md)")
    parser.add_argument("--weight-lr-steps", type=float, default=None, metavar="F",
                        help="qat-tf8: each layer's weights at peak lr F times its median quantization step in"
                             " their own units (qat.QatConv.median_raw_step), so that every layer's weights can"
                             " move across codes; the rest at --lr. Default: every parameter at --lr")
    parser.add_argument("--range-lr", type=float, default=3e-4,
                        help="peak lr of the learnt weight ranges (relative: they train as factors of the start)")
    parser.add_argument("--start-from", default=None,
                        help="start from this checkpoint's model (another run's checkpoint.pt: a second stage with"
                             " its own schedule; its optimizer state and step are not taken)")
    parser.add_argument("--init", default="full", choices=["full", "diag", "fold", "path"],
                        help="float variants' start: full / diag = refit.py's ridge or per-channel refit of each"
                             " pointwise layer on --fit-images training images; fold = make_variant only; path ="
                             " the original network, each removed clipping then widened step by step to the"
                             " variant's activation over the first --path-fraction of the training"
                             " (mobilenet.start_path; tried, see finetune/README.md)")
    parser.add_argument("--path-width", type=float, default=64.0,
                        help="--init path: how far (in activation units) the removed clipping has been widened"
                             " just before the path's end, where it is removed (mobilenet.MobileNetV1.activations)")
    parser.add_argument("--path-fraction", type=float, default=0.6,
                        help="--init path: the fraction of the training over which the activations move from the"
                             " original's to the variant's (linearly); the rest trains the variant itself")
    parser.add_argument("--fit-images", type=int, default=512)
    parser.add_argument("--refit-classifier", type=float, default=None, metavar="RIDGE",
                        help="float variants, --init full/diag: after the blocks, refit the classifier on the same"
                             " images (refit.refit_classifier), ridge RIDGE toward the teacher's classifier (tried"
                             " and reverted: it cost the classes imagenette does not hold)")
    parser.add_argument("--holdout", type=int, default=refit.HOLDOUT,
                        help="imagenette images never trained on (refit.split_imagenette); agreement with the"
                             " teacher on the first --agree-images of them is logged at every checkpoint")
    parser.add_argument("--agree-images", type=int, default=200)
    parser.add_argument("--clip", type=float, default=2.0, help="gradient norm clipping (0: none)")
    parser.add_argument("--teacher-forced", type=float, default=0.0,
                        help="float variants: for this fraction of the training, each block runs on the teacher's"
                             " input to it (block-wise distillation)")
    parser.add_argument("--anneal", type=float, default=0.0,
                        help="float variants: then for this fraction, each block's input moves linearly from the"
                             " teacher's to the student's own; end to end after it")
    parser.add_argument("--features-final", type=float, default=0.1,
                        help="the feature loss weight once end to end (the variants cannot match every block)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--export", default=None, help="write the final model here (TF.js folder or .tflite)")
    args = parser.parse_args()
    if (args.steps is None) == (args.minutes is None):
        parser.error("give exactly one of --steps and --minutes")
    if args.equalize and args.variant != "qat-tf8":
        parser.error("--equalize is for --variant qat-tf8")
    if args.refit_classifier is not None and (args.variant == "qat-tf8" or args.init not in ("full", "diag")):
        parser.error("--refit-classifier is for the float variants with --init full or diag")
    if args.weight_lr_steps is not None and args.variant != "qat-tf8":
        parser.error("--weight-lr-steps is for --variant qat-tf8")
    l2 = args.l2 if args.l2 is not None else (4e-5 if args.variant.endswith("+l2") else 0.0)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    os.makedirs(args.run, exist_ok=True)
    teacher = mobilenet.load_original(args.model).to(memory_format=torch.channels_last)
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = build_student(args.variant, teacher, args.init, args.learn_weight_ranges)
    student = student.to(memory_format=torch.channels_last)
    student.path_width = args.path_width
    student.eval()  # BatchNorm statistics frozen; no dropout anywhere
    optimizer = torch.optim.Adam(parameter_groups(student, args), lr=args.lr)
    images, _ = data.load_imagenette(args.data, args.cache, args.limit_images)
    pool, held_out = refit.split_imagenette(len(images), args.holdout)
    held_out = images[held_out[:args.agree_images]]

    checkpoint_path = os.path.join(args.run, "checkpoint.pt")
    step, elapsed = 0, 0.0
    if os.path.exists(checkpoint_path):
        state = torch.load(checkpoint_path, weights_only=False)
        student.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed = state["step"], state["elapsed"]
        print(f"resumed {args.variant} at step {step} ({elapsed / 60:.1f} min trained)", flush=True)
    elif args.start_from:
        start = torch.load(args.start_from, weights_only=False)
        assert start["variant"] == args.variant, f"{args.start_from} holds {start['variant']}, not {args.variant}"
        student.load_state_dict(start["model"])
        print(f"started from {args.start_from} (step {start['step']} of its run)", flush=True)
    elif args.variant == "qat-tf8" and args.equalize:
        student.equalize()
        print("equalized (cross-layer, scales >= 1)", flush=True)
    elif args.variant != "qat-tf8" and args.init in ("diag", "full"):
        fit = np.sort(np.random.default_rng(args.seed).choice(pool, min(args.fit_images, len(pool)), replace=False))
        refit.refit(student, teacher, images[fit], teacher.input_size, args.init)
        print(f"refitted {args.variant} ({args.init}) on {len(fit)} training images", flush=True)
        if args.refit_classifier is not None:
            rows = refit.refit_classifier(student, teacher, images[fit], teacher.input_size, args.refit_classifier)
            print(f"refitted the classifier (ridge {args.refit_classifier:g}, {rows} rows)", flush=True)
    with open(os.path.join(args.run, "args.json"), "w") as f:
        json.dump(vars(args) | {"l2": l2}, f, indent=1)

    def checkpoint():
        if len(held_out):
            agree, kl = refit.agreement(student, teacher, held_out, teacher.input_size)
            log.write(json.dumps({"step": step, "held_out_agree_top1": agree, "held_out_kl": kl,
                                  "images": len(held_out), "size": teacher.input_size}) + "\n")
            bar.write(f"step {step}: held-out agreement {agree:.3f}, KL {kl:.3f} ({len(held_out)} images)")
        save_atomic({"model": student.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                     "elapsed": elapsed, "variant": args.variant, "args": vars(args),
                     "path": getattr(student, "path", None)}, checkpoint_path)

    log = open(os.path.join(args.run, "log.jsonl"), "a")

    def progress():
        if args.minutes is not None:
            return elapsed / (60 * args.minutes)
        return max(0, step - args.warmup) / max(1, args.steps - args.warmup)

    bar = tqdm(total=args.steps, initial=step, desc=args.variant, mininterval=5, file=sys.stdout)
    if step == 0:
        checkpoint()  # the start, and its held-out agreement
    window_start, window_images = time.time(), 0
    while progress() < 1:
        start = time.time()
        idx = batch_indices(step, args.batch, pool, args.seed)
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        x = data.mix(data.augment(images[idx], args.size, generator), args.mixup, generator)
        if hasattr(student, "freeze_ranges"):
            student.freeze_ranges = progress() >= args.freeze_ranges
        if getattr(student, "path", None) is not None:
            student.path = min(1.0, progress() / args.path_fraction)
        on_path = getattr(student, "path", None) is not None and student.path < 1
        with torch.no_grad():
            teacher_logits, teacher_features = teacher(x, with_features=True)
        done = progress() - args.teacher_forced
        mix = 1.0 if done >= args.anneal else max(0.0, done / args.anneal)
        if args.variant != "qat-tf8" and mix < 1:
            logits, features = student.forward_teacher_forced(x, teacher_features, mix)
        else:
            logits, features = student(x, with_features=True)
        kl = distillation_loss(logits, teacher_logits, args.temperature)
        loss = kl
        feature_weight = args.features if mix < 1 or on_path or args.variant == "qat-tf8" else args.features_final
        if feature_weight > 0:
            feat = feature_loss(features, teacher_features)
            loss = loss + feature_weight * feat
        if args.logit_mse > 0:
            mse = ((logits - teacher_logits) ** 2).mean()
            loss = loss + args.logit_mse * mse
        if l2 > 0:
            loss = loss + 0.5 * l2 * sum((w ** 2).sum() for w in student.depthwise_kernels())
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, progress(), group["peak"], args.warmup)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(student.parameters(), args.clip)
        optimizer.step()
        step += 1
        elapsed += time.time() - start
        window_images += len(idx)
        if step % args.log_every == 0 or progress() >= 1:
            rate = window_images / (time.time() - window_start)
            agree = (logits.argmax(1) == teacher_logits.argmax(1)).float().mean().item()
            record = {"step": step, "loss": loss.item(), "kl": kl.item(),
                      "features": feat.item() if feature_weight > 0 else None,
                      "logit_mse": mse.item() if args.logit_mse > 0 else None, "mix": mix,
                      "path": getattr(student, "path", None), "agree_top1": agree,
                      "lr": lr, "img_per_s": rate,
                      "elapsed_s": elapsed, "time": time.strftime("%H:%M:%S")}
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{loss.item():.4f}", agree=f"{agree:.2f}", img_s=f"{rate:.1f}")
            window_start, window_images = time.time(), 0
        bar.update(1)
        if step % args.checkpoint_every == 0 or progress() >= 1:
            checkpoint()
    bar.close()
    print(f"{args.variant}: {step} steps, {step * args.batch} images seen, {elapsed / 60:.1f} min", flush=True)
    write_summary(args, step, elapsed)
    if getattr(student, "path", None) is not None:
        mobilenet.end_path(student)
    if args.export:
        import export
        export.export(student, args.export)
        print(f"wrote {args.export}", flush=True)


if __name__ == "__main__":
    main()
