"""Quantization-aware MobileNetV1 (the original architecture) whose fake quantization follows mnq-gpu's TF8
arithmetic, so that the uint8 TFLite file tflite_writer.py makes from it runs in mnq-gpu with exactly the trained
ranges (`--scheme tflite`, its default for a .tflite file).

What the engine does (src/calibrate.rs, src/quant/weights.rs, src/quant/params.rs, src/cpu_ref/) and what this
module does in float to mirror it:
- BatchNorm folded into each convolution as transform.rs folds it: s = gamma/sqrt(var + eps), W' = W*s,
  b' = beta - mean*s (no zero-variance fix in the folding: this is TF8). gamma and beta train; the statistics stay
  frozen. The starting point differs from Google's weights in one respect: gamma = 0 for the BatchNorm channels
  whose moving variance is ~0 (the "dead" channels, 43 of them). Such a channel saw a constant, so its BN output is
  beta either way; its folded weights, otherwise blown up by gamma/sqrt(eps) (up to ~50x, the TF8 collapse), start
  at 0. Without it the weight ranges cannot shrink: min/max ranges pass no gradient.
- Weights: per-tensor asymmetric uint8, parameters from the folded kernel's min/max extended to 0 with gemmlowp's
  nudged zero point (QuantParams::from_range), codes round(w/scale) + zp (ties away from zero), clamped to [0, 255].
  With `learn_weight_ranges` (train.py --learn-weight-ranges) each layer's range trains instead, as factors of its
  starting min and max, with LSQ's gradient for the scale; weights beyond it clamp to the end codes.
- Bias: int32 at scale s_in*s_w, round(b'/(s_in*s_w)).
- Activations quantized where the engine holds uint8: the input, each convolution's output after its ReLU6, the
  pool's output (which keeps its input's parameters; the integer pool rounds (sum + n/2)/n), the logits.
- The input: Google's uint8 pixel convention (scale 1/128, zero point 128), as mnq-gpu feeds a TFLite file's input:
  the code is the resized pixel value rounded. The float images in [-1, 1] that data.py makes are turned back into
  pixels for it.
- Activation ranges: exponential moving averages (momentum 0.99) of each batch's min and max, the first batch's
  values to start; frozen (`freeze_ranges`) for the last part of training, so the weights settle on them.
- Straight-through gradients: rounding passes the gradient unchanged; clamping to the codes [0, 255] passes it
  inside and stops it outside (as TF's fake quantization), ReLU6 as in float.
What differs: the engine rescales each accumulator with a Q31 fixed-point multiplier and two roundings, this module
with a float division and one rounding; so a code can differ by one where a value lies near a rounding boundary
(finetune/check_qat.py measures it).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mobilenet

INPUT_SCALE, INPUT_ZERO_POINT = 1 / 128, 128  # Google's quantized MobileNets' input
EMA_MOMENTUM = 0.99


def round_away(x):
    """Round half away from zero (Rust's f64::round, which mnq-gpu's quantize uses); torch.round rounds to even."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def ste(x, rounded):
    """rounded in the forward pass, the identity's gradient in the backward pass."""
    return x + (rounded - x).detach()


def quant_params(lo, hi, qmax=255):
    """gemmlowp's ChooseQuantizationParams as QuantParams::from_range: (float32 scale, zero point)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo <= 0.0:
        return 1.0, 0
    scale = (hi - lo) / qmax
    from_min, from_max = -lo / scale, qmax - hi / scale
    zero_point = from_min if abs(lo / scale) < qmax + abs(hi / scale) else from_max
    zero_point = int(min(max(math.floor(abs(zero_point) + 0.5) * (1 if zero_point >= 0 else -1), 0), qmax))
    return float(torch.tensor(scale, dtype=torch.float32)), zero_point


def fake_quant(x, scale, zero_point, lowest=0, highest=255):
    """scale * (clamp(round(x/scale) + zp, lowest, highest) - zp), straight-through."""
    codes = ste(x / scale, round_away(x / scale)) + zero_point
    return (codes.clamp(lowest, highest) - zero_point) * scale


def to_codes(x_q, scale, zero_point):
    """The integer codes (as floats) of an already fake-quantized tensor."""
    return torch.round(x_q / scale) + zero_point


class QatConv(nn.Module):
    """A convolution with its BatchNorm folded, fake-quantized weights and bias, ReLU6 or none, and a tracked
    output range. `kind`: conv (3x3 on the image), depthwise, pointwise or classifier."""

    def __init__(self, name, conv, bn, kind, stride, relu6, learn_weight_range=False):
        super().__init__()
        self.name, self.kind, self.stride, self.relu6 = name, kind, stride, relu6
        self.weight = nn.Parameter(conv.weight.detach().clone())
        self.groups = conv.groups
        if bn is not None:
            # Zero-variance channels saw a constant: BN(z) = beta whatever gamma is, so gamma = 0 leaves the
            # function as it was and their folded weights, blown up by gamma/sqrt(eps) otherwise, at 0.
            dead = bn.running_var < mobilenet.ZERO_VARIANCE
            self.gamma = nn.Parameter(torch.where(dead, torch.zeros_like(bn.weight), bn.weight).detach().clone())
            self.beta = nn.Parameter(bn.bias.detach().clone())
            self.register_buffer("mean", bn.running_mean.detach().clone())
            self.register_buffer("var", bn.running_var.detach().clone())
            self.eps = bn.eps
            self.bias = None
        else:
            self.gamma = None
            self.bias = nn.Parameter(conv.bias.detach().clone())
        self.register_buffer("range", torch.tensor([0.0, 0.0]))
        # Each output channel's s from QatMobileNetV1.equalize: the output times it is in the teacher's units.
        self.register_buffer("unequalize", torch.ones(conv.weight.shape[0]))
        self.register_buffer("range_seen", torch.tensor(False))
        if learn_weight_range:
            # The weights' range learnt: the folded kernel's starting min and max times factors that train (so
            # Adam steps them relative to each layer's range); weights beyond it clamp to the end codes.
            w, _ = self.folded()
            self.register_buffer("start_range", torch.stack([w.detach().min(), w.detach().max()]))
            self.weight_range_factor = nn.Parameter(torch.ones(2))
        else:
            self.weight_range_factor = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints from before equalization existed: their channels are in the teacher's units.
        state_dict.setdefault(prefix + "unequalize", torch.ones_like(self.unequalize))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def weight_range(self):
        """The weights' (lo, hi) as tensors: learnt (weight_range_factor), or the folded kernel's min and max."""
        if self.weight_range_factor is None:
            w, _ = self.folded()
            return w.detach().min(), w.detach().max()
        lo, hi = self.start_range * self.weight_range_factor.clamp(min=0.01)
        return lo, hi

    def folded(self):
        """(W', b'), BatchNorm folded as transform::fold_batch_norms (float32)."""
        if self.gamma is None:
            return self.weight, self.bias
        s = self.gamma / torch.sqrt(self.var + self.eps)
        return self.weight * s[:, None, None, None], self.beta - self.mean * s

    @torch.no_grad()
    def median_raw_step(self):
        """The quantization step of the folded kernel in the units of the trained (unfolded) weights, median over
        the live channels: how far a weight must move to change its code (train.py --weight-lr-steps)."""
        step, _ = self.weight_params()
        if self.gamma is None:
            return step
        s = (self.gamma / torch.sqrt(self.var + self.eps)).abs()
        return (step / s[s > 0]).median().item()

    def weight_params(self):
        lo, hi = self.weight_range()
        return quant_params(lo.detach(), hi.detach())

    def output_params(self):
        return quant_params(self.range[0], self.range[1])

    def quantized(self, input_scale):
        """Fake-quantized (W, b) and their parameters: weights (scale, zp), bias scale."""
        w, b = self.folded()
        w_scale, w_zero = self.weight_params()
        if self.weight_range_factor is None:
            w_q = fake_quant(w, w_scale, w_zero)
        else:
            # The scale's value exactly as the file holds it; its gradient that of (hi - lo)/255 (LSQ's: the
            # rounding error inside the range, the end code's distance from the zero point beyond it).
            lo, hi = self.weight_range()
            span = (hi.clamp(min=0) - lo.clamp(max=0)) / 255
            w_q = fake_quant(w, w_scale + (span - span.detach()), w_zero)
        bias_scale = float(torch.tensor(input_scale, dtype=torch.float32) * torch.tensor(w_scale, dtype=torch.float32))
        b_q = ste(b / bias_scale, round_away(b / bias_scale).clamp(-(1 << 30), 1 << 30)) * bias_scale
        return w_q, b_q, (w_scale, w_zero, bias_scale)

    def forward(self, x, input_scale, track):
        w_q, b_q, _ = self.quantized(input_scale)
        if self.kind in ("conv", "depthwise"):
            x = mobilenet.pad_same(x, self.stride)
        y = F.conv2d(x, w_q, b_q, self.stride, 0, 1, self.groups)
        if self.relu6:
            y = F.relu6(y)
        if track:
            lo, hi = y.detach().min(), y.detach().max()
            if not bool(self.range_seen):
                self.range.copy_(torch.stack([lo, hi]))
                self.range_seen.fill_(True)
            else:
                self.range.mul_(EMA_MOMENTUM).add_((1 - EMA_MOMENTUM) * torch.stack([lo, hi]))
        scale, zero = self.output_params()
        highest = min(255, zero + int(round_away(torch.tensor(6.0 / scale)))) if self.relu6 else 255
        return fake_quant(y, scale, zero, lowest=zero if self.relu6 else 0, highest=highest), scale


class QatMobileNetV1(nn.Module):
    variant = "qat-tf8"

    def __init__(self, original, learn_weight_ranges=False):
        super().__init__()
        assert original.variant == "original"
        self.input_size = original.input_size
        learn = learn_weight_ranges
        layers = [QatConv("conv1", original.conv1, original.conv1_bn, "conv", 2, True, learn)]
        for i, b in enumerate(original.blocks, start=1):
            layers.append(QatConv(f"conv_dw_{i}", b.dw, b.dw_bn, "depthwise", b.stride, True, learn))
            layers.append(QatConv(f"conv_pw_{i}", b.pw, b.pw_bn, "pointwise", 1, True, learn))
        self.convs = nn.ModuleList(layers)
        self.classifier = QatConv("conv_preds", original.classifier, None, "classifier", 1, False, learn)
        self.freeze_ranges = False

    def quantize_input(self, x):
        """[-1, 1] floats (p/127.5 - 1) -> the pixel codes round(p) at scale 1/128, zero point 128."""
        pixels = (x + 1.0) * 127.5
        codes = ste(pixels, round_away(pixels)).clamp(0, 255)
        return (codes - INPUT_ZERO_POINT) * INPUT_SCALE

    def forward(self, x, with_features=False, trace=None):
        """x: [-1, 1] floats -> dequantized uint8 logits (and conv1's and the pointwise outputs, with_features). trace: a list
        that receives (layer name, integer codes) of every layer the engine runs, as mnq-gpu --dump names them."""
        track = self.training_ranges()
        x, scale = self.quantize_input(x), INPUT_SCALE
        features = []
        for layer in self.convs:
            x, scale = layer(x, scale, track)
            if layer.kind in ("conv", "pointwise"):
                features.append(x * layer.unequalize[:, None, None])  # in the teacher's units
            if trace is not None:
                trace.append((layer.name, to_codes(x, *layer.output_params())))
        # The integer pool: codes (sum + n/2) // n, same parameters as its input.
        zero = self.convs[-1].output_params()[1]
        codes = to_codes(x, scale, zero)
        n = codes.shape[2] * codes.shape[3]
        pooled_codes = torch.floor((codes.sum((2, 3), keepdim=True) + n // 2) / n)
        mean = x.mean((2, 3), keepdim=True)
        x = ste(mean, (pooled_codes - zero) * scale)
        logits, _ = self.classifier(x, scale, track)
        if trace is not None:
            trace.append(("pool", pooled_codes))
            trace.append(("conv_preds", to_codes(logits, *self.classifier.output_params())))
        logits = logits.flatten(1)
        return (logits, features) if with_features else logits

    def training_ranges(self):
        return torch.is_grad_enabled() and not self.freeze_ranges

    def depthwise_kernels(self):
        return [layer.weight for layer in self.convs if layer.kind == "depthwise"]

    @torch.no_grad()
    def equalize(self, iterations=4):
        """Cross-layer equalization (Nagel et al., 2019, "Data-Free Quantization") of each pair of consecutive
        convolutions, conv1 -> dw1 -> pw1 -> ... -> pw13, limited to scales s >= 1 (train.py --equalize).

        Output channel c of the first layer is divided by s_c (its BatchNorm gamma and beta) and the second layer's
        input channel c multiplied by s_c, s_c = sqrt(r1_c / r2_c) with r the largest |folded weight| of that
        channel in each, so that per-tensor weight ranges no longer follow the outlier channels. Between the two
        sits a ReLU6, which does not commute with the scaling: the file keeps one clip at 6 per tensor, which for a
        channel scaled by 1/s lies at 6s of its original units. With s >= 1 the clip only loosens, so a channel
        passes values above 6 that the original clipped; the distillation has to train that away. The feature loss
        compares each channel in the teacher's units (QatConv.unequalize). (Unlimited scales also tighten clips below
        the values channels reach: on the held-out photos that start agrees with the teacher on 0 %, against 73 %
        (float) with s >= 1.) Dead channels (gamma = 0) keep s = 1. Tried and stopped: models/finetuned/README.md."""

        def bn_scale(layer):
            return layer.gamma / torch.sqrt(layer.var + layer.eps)

        for _ in range(iterations):
            for first, second in zip(self.convs[:-1], self.convs[1:]):
                r1 = first.folded()[0].abs().amax((1, 2, 3))
                if second.kind == "depthwise":
                    r2 = second.weight.abs().amax((1, 2, 3)) * bn_scale(second).abs()
                else:
                    r2 = (second.weight * bn_scale(second)[:, None, None, None]).abs().amax((0, 2, 3))
                s = torch.sqrt(r1 / r2).clamp(min=1.0)
                s = torch.where((r1 > 0) & (r2 > 0) & torch.isfinite(s), s, torch.ones_like(s))
                first.gamma.div_(s)
                first.beta.div_(s)
                first.unequalize.mul_(s)
                if second.kind == "depthwise":
                    second.weight.mul_(s[:, None, None, None])
                else:
                    second.weight.mul_(s[None, :, None, None])
