"""Exact cross-layer equalization of a fine-tuned float variant: the same function, balanced channel ranges.

The refit (refit.py) starts each variant from the teacher's weights with every depthwise kernel multiplied by its
BatchNorm scale, and fine-tuning keeps them near there, so the depthwise channels' weights and outputs differ by
orders of magnitude, and per-tensor TF8 quantization gives most channels a few codes (`mnq-gpu sqnr`: 17-20 dB local
at conv_dw_2/3 under `tf8` and `per-channel` weights alike). The study's networks, trained from scratch without
BatchNorm after the depthwise layers, never have that spread.

Nagel et al. 2019 (§4.1), as mnq-gpu's `cle` schemes do it (src/quant/transform.rs `equalize`): for a pair of
consecutive layers, output channel c of the first is divided by s_c and the weights reading it in the second are
multiplied by s_c, with s_c = sqrt(r1_c / r2_c) (r: max |w| of the BatchNorm-folded kernels), so both ranges become
sqrt(r1_c * r2_c); a few sweeps converge. Here only the pairs where that leaves the float function exactly as it was,
with nothing a TF.js or TFLite file cannot express (mnq-gpu's `cle` also rescales across ReLU6 by giving each
channel its own clip bound):
    conv_dw_k -> conv_pw_k                    every variant: nothing lies between them;
    conv1 -> conv_dw_1, conv_pw_k -> conv_dw_k+1, conv_pw_13 -> the classifier
                                              the +relu variants: ReLU and the average pool commute with a positive
                                              scale (in `dw-linear` these layers end in ReLU6, which does not).

    finetune/run.sh equalize.py IN_FOLDER OUT_FOLDER
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mobilenet  # noqa: E402

SWEEPS = 20  # as transform.rs EQUALIZATION_SWEEPS
# Float64 logits before and after, on random inputs in the model's [-1, 1] range: |difference| <= this * max(1,
# max |logit|). The products are the same up to a rounding per multiply (measured: ~1e-14).
TOLERANCE = 1e-4


class Unit:
    """A convolution and the BatchNorm after it (or None), seen as one BN-folded kernel."""

    def __init__(self, conv, bn=None):
        self.conv, self.bn = conv, bn

    def folded(self):
        """The kernel [out, in/groups, kh, kw] with the BatchNorm scale folded in, as mnq-gpu folds it."""
        if self.bn is None:
            return self.conv.weight
        return self.conv.weight * mobilenet.bn_scale_shift(self.bn)[0].view(-1, 1, 1, 1)

    def output_ranges(self):
        return self.folded().abs().amax((1, 2, 3))

    def input_ranges(self):
        kernel = self.folded().abs()
        return kernel.amax((1, 2, 3)) if self.conv.groups > 1 else kernel.amax((0, 2, 3))

    def scale_outputs(self, factors):
        """Output channel c times factors[c]: through the BatchNorm's gamma and beta where there is one."""
        if self.bn is not None:
            self.bn.weight.mul_(factors)
            self.bn.bias.mul_(factors)
        else:
            self.conv.weight.mul_(factors.view(-1, 1, 1, 1))
            if self.conv.bias is not None:
                self.conv.bias.mul_(factors)

    def scale_inputs(self, factors):
        """The weights reading input channel c times factors[c]."""
        shape = (-1, 1, 1, 1) if self.conv.groups > 1 else (1, -1, 1, 1)
        self.conv.weight.mul_(factors.view(shape))


def exact_pairs(model):
    """The (first, second) unit pairs across which a positive per-channel scale leaves the function unchanged."""
    conv1 = Unit(model.conv1, model.conv1_bn)
    pairs, previous = [], conv1
    for block in model.blocks:
        dw, pw = Unit(block.dw, block.dw_bn), Unit(block.pw, block.pw_bn)
        assert block.dw_bn is None and model.dw_act is None, "only the dw-linear variants"
        if model.act == "relu":
            pairs.append((previous, dw))
        pairs.append((dw, pw))
        previous = pw
    if model.act == "relu":
        pairs.append((previous, Unit(model.classifier)))
    return pairs


@torch.no_grad()
def equalize(model):
    """Equalize `model` (a dw-linear variant) in place; returns the largest and smallest scale of the last sweep."""
    pairs = exact_pairs(model)
    for _ in range(SWEEPS):
        extremes = []
        for first, second in pairs:
            r1, r2 = first.output_ranges(), second.input_ranges()
            scales = torch.where((r1 > 0) & (r2 > 0), (r1 / r2.clamp_min(1e-30)).sqrt(), torch.ones_like(r1))
            first.scale_outputs(1 / scales)
            second.scale_inputs(scales)
            extremes += [scales.max().item(), scales.min().item()]
    return max(extremes), min(extremes)


def spread(ranges):
    """The largest channel range over the smallest nonzero one."""
    return (ranges.max() / ranges[ranges > 0].min()).item()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="a TF.js folder of a dw-linear variant (train.py --export wrote it)")
    parser.add_argument("output", help="the equalized folder to write")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = mobilenet.load_tfjs(args.input)
    if model.variant == "original":
        sys.exit("equalize: the original network has ReLU6 after every layer; nothing equalizes exactly")
    x = torch.rand(4, 3, model.input_size, model.input_size, dtype=torch.float64) * 2 - 1
    before = model.double()(x)
    pairs = exact_pairs(model)  # views of the model's layers: their ranges read after equalize() are the new ones
    ranges_before = [first.output_ranges() for first, _ in pairs]
    largest, smallest = equalize(model)
    after = model(x)
    difference = (after - before).abs().max().item() / max(1.0, before.abs().max().item())
    if difference > TOLERANCE:
        sys.exit(f"equalize: the logits moved by {difference:.2e} of their range (tolerance {TOLERANCE:.0e})")
    for (first, _), r in zip(pairs, ranges_before):
        print(f"{first.conv.weight.shape[0]:5} channels: max/min range {spread(r):12.1f} -> "
              f"{spread(first.output_ranges()):8.1f}")
    print(f"{model.variant}: {len(pairs)} pairs, last sweep's scales {smallest:.4f}..{largest:.4f}, "
          f"logits moved by {difference:.1e} of their range")
    mobilenet.write_tfjs(model.float(), args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
