"""MobileNetV1 in PyTorch, built from the TF.js layers folder mnq-gpu loads, with the study's variants.

The network (Google's Keras export of the TF-slim checkpoint):
    conv1 3x3/2 -> BN -> ReLU6
    13 x (depthwise 3x3/s -> BN -> ReLU6 -> pointwise 1x1 -> BN -> ReLU6)
    global average pool -> classifier 1x1 (with bias) -> 1000 logits (sorted-synset order)
TF "SAME" padding: at stride 2 the extra row/column goes bottom/right (explicit F.pad, as src/model/mod.rs).

Variants ("A Quantization-Friendly Separable Convolution for MobileNets", Sheng et al. 2018), each made from the
original weights exactly as mnq-gpu's transforms make them (src/quant/transform.rs):
    original             as above
    dw-linear            no BN and no activation after each depthwise layer; that BN (y = s*z + t) is folded
                         forward into the next pointwise layer: W' = diag(s) W, b' = W^T t (`depthwise_linear`)
    dw-linear+relu       also ReLU instead of ReLU6 in conv1 and every pointwise layer (`relu_everywhere`)
    dw-linear+relu+l2    the same network; training adds L2 on the depthwise kernels (train.py)

Tensors are read and written by name in TF layouts (HWIO, channels-last); see read_tfjs / write_tfjs.
"""

import copy
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DW_STRIDES = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
BN_EPSILON = 1e-3  # every BatchNormalization of Google's export (model.json says so; read_tfjs checks it)
# A BN channel whose moving variance is below this saw a constant (transform.rs ZERO_VARIANCE).
ZERO_VARIANCE = 1e-10
VARIANTS = ["original", "dw-linear", "dw-linear+relu", "dw-linear+relu+l2"]


# ----------------------------------------------------------------------------------------------------------------
# TF.js layers format: model.json + raw little-endian float32 shards, tensors looked up by name.

def read_tfjs(folder):
    """{tensor name: numpy array in TF layout} and the model.json dict."""
    with open(os.path.join(folder, "model.json")) as f:
        model_json = json.load(f)
    tensors = {}
    for group in model_json["weightsManifest"]:
        data = b"".join(open(os.path.join(folder, p), "rb").read() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            assert w["dtype"] == "float32", w
            count = int(np.prod(w["shape"], dtype=np.int64))
            tensors[w["name"]] = np.frombuffer(data, "<f4", count, offset).reshape(w["shape"]).copy()
            offset += 4 * count
    for layer in model_json["modelTopology"]["model_config"]["config"]["layers"]:
        if layer["class_name"] == "BatchNormalization":
            assert layer["config"]["epsilon"] == BN_EPSILON, layer["config"]
    return tensors, model_json


def _layer(class_name, name, inbound, **config):
    config = {"name": name, "trainable": True, **config}
    return {"class_name": class_name, "name": name, "config": config,
            "inbound_nodes": [[[inbound, 0, 0, {}]]] if inbound else []}


def _conv(name, inbound, kind, filters, kernel, stride, use_bias):
    config = dict(kernel_size=[kernel, kernel], strides=[stride, stride], padding="same", activation="linear",
                  use_bias=use_bias, data_format="channels_last", dilation_rate=[1, 1])
    if kind == "DepthwiseConv2D":
        config["depth_multiplier"] = 1
    else:
        config["filters"] = filters
    return _layer(kind, name, inbound, **config)


def write_tfjs(model, folder, shard_bytes=4 * 1024 * 1024):
    """Write `model` as a TF.js layers folder (Keras topology of its variant, float32 shards) mnq-gpu loads."""
    os.makedirs(folder, exist_ok=True)
    size = model.input_size
    layers = [_layer("InputLayer", "input_1", None, batch_input_shape=[None, size, size, 3], dtype="float32",
                     sparse=False)]
    tensors = []  # (name, TF-layout array), in manifest order

    def add(layer):
        layers.append(layer)
        return layer["name"]

    def conv_bn_act(name, conv, bn, act, kind, stride, last):
        if kind == "DepthwiseConv2D":
            kernel = conv.weight.detach().permute(2, 3, 0, 1)  # [C,1,3,3] -> [3,3,C,1]
        else:
            kernel = conv.weight.detach().permute(2, 3, 1, 0)  # [O,I,kh,kw] -> [kh,kw,I,O]
        k = conv.weight.shape[-1]
        last = add(_conv(name, last, kind, conv.out_channels, k, stride, conv.bias is not None))
        tensors.append((f"{name}/{'depthwise_kernel' if kind == 'DepthwiseConv2D' else 'kernel'}", kernel))
        if conv.bias is not None:
            tensors.append((f"{name}/bias", conv.bias.detach()))
        if bn is not None:
            last = add(_layer("BatchNormalization", f"{name}_bn", last, axis=-1, momentum=0.99, epsilon=bn.eps,
                              center=True, scale=True))
            for keras, t in [("gamma", bn.weight), ("beta", bn.bias), ("moving_mean", bn.running_mean),
                             ("moving_variance", bn.running_var)]:
                tensors.append((f"{name}_bn/{keras}", t.detach()))
        if act is not None:
            last = add(_layer("Activation", f"{name}_relu", last, activation=act))
        return last

    last = conv_bn_act("conv1", model.conv1, model.conv1_bn, model.act, "Conv2D", 2, "input_1")
    for i, block in enumerate(model.blocks, start=1):
        last = conv_bn_act(f"conv_dw_{i}", block.dw, block.dw_bn, model.dw_act, "DepthwiseConv2D", block.stride, last)
        last = conv_bn_act(f"conv_pw_{i}", block.pw, block.pw_bn, model.act, "Conv2D", 1, last)
    channels = model.classifier.in_channels
    last = add(_layer("GlobalAveragePooling2D", "global_average_pooling2d_1", last, data_format="channels_last"))
    last = add(_layer("Reshape", "reshape_1", last, target_shape=[1, 1, channels]))
    last = add(_layer("Dropout", "dropout", last, rate=0.001, noise_shape=None, seed=None))
    last = conv_bn_act("conv_preds", model.classifier, None, None, "Conv2D", 1, last)
    last = add(_layer("Activation", "act_softmax", last, activation="softmax"))
    last = add(_layer("Reshape", "reshape_2", last, target_shape=[1000]))

    # One manifest group, split into shards of at most shard_bytes (TF.js's own 4 MB convention).
    data = b"".join(t.float().cpu().contiguous().numpy().astype("<f4").tobytes() for _, t in tensors)
    count = max(1, math.ceil(len(data) / shard_bytes))
    paths = [f"group1-shard{i + 1}of{count}" for i in range(count)]
    for i, path in enumerate(paths):
        with open(os.path.join(folder, path), "wb") as f:
            f.write(data[i * shard_bytes:(i + 1) * shard_bytes])
    manifest = [{"paths": paths, "weights": [{"name": n, "shape": list(t.shape), "dtype": "float32"}
                                             for n, t in tensors]}]
    topology = {"keras_version": "2.1.4", "backend": "tensorflow", "model_config": {
        "class_name": "Model", "config": {"name": f"mobilenet_{model.variant}_{size}", "layers": layers,
                                          "input_layers": [["input_1", 0, 0]],
                                          "output_layers": [["reshape_2", 0, 0]]}}}
    with open(os.path.join(folder, "model.json"), "w") as f:
        json.dump({"modelTopology": topology, "weightsManifest": manifest}, f)


# ----------------------------------------------------------------------------------------------------------------
# The network.

def pad_same(x, stride, kernel=3):
    """TF SAME padding of a kernel x kernel window: the extra row/column at stride 2 goes bottom/right."""
    h, w = x.shape[-2:]
    pad_h = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
    pad_w = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


def activation(name):
    return {"relu6": F.relu6, "relu": F.relu, None: lambda x: x}[name]


def batch_norm(tensors, name, channels):
    bn = nn.BatchNorm2d(channels, eps=BN_EPSILON)
    for param, keras in [(bn.weight, "gamma"), (bn.bias, "beta"), (bn.running_mean, "moving_mean"),
                         (bn.running_var, "moving_variance")]:
        param.data.copy_(torch.from_numpy(tensors[f"{name}/{keras}"]))
    return bn


class Block(nn.Module):
    """depthwise 3x3 [-> BN -> act] -> pointwise 1x1 (+bias in the dw-linear variants) -> BN -> act."""

    def __init__(self, c_in, c_out, stride, dw_bn, pw_bias):
        super().__init__()
        self.stride = stride
        self.dw = nn.Conv2d(c_in, c_in, 3, stride, 0, groups=c_in, bias=False)
        self.dw_bn = nn.BatchNorm2d(c_in, eps=BN_EPSILON) if dw_bn else None
        self.pw = nn.Conv2d(c_in, c_out, 1, bias=pw_bias)
        self.pw_bn = nn.BatchNorm2d(c_out, eps=BN_EPSILON)


class MobileNetV1(nn.Module):
    def __init__(self, widths, variant="original", input_size=224):
        """widths: conv1's channels then each block's output channels (14 numbers)."""
        super().__init__()
        assert variant in VARIANTS, variant
        self.variant, self.input_size = variant, input_size
        self.path = None  # None: the variant itself; p in [0, 1]: on the path from the original (start_path)
        self.path_width = 64.0
        linear_dw = variant != "original"
        self.act = "relu" if "relu" in variant.split("+")[1:] else "relu6"  # conv1 and pointwise
        self.dw_act = None if linear_dw else "relu6"
        self.conv1 = nn.Conv2d(3, widths[0], 3, 2, 0, bias=False)
        self.conv1_bn = nn.BatchNorm2d(widths[0], eps=BN_EPSILON)
        self.blocks = nn.ModuleList(Block(widths[i], widths[i + 1], s, dw_bn=not linear_dw, pw_bias=linear_dw)
                                    for i, s in enumerate(DW_STRIDES))
        self.classifier = nn.Conv2d(widths[-1], 1000, 1, bias=True)

    def activations(self):
        """(conv1 and pointwise activation, depthwise activation) as functions. On the path from the original
        network to the variant (self.path = p in [0, 1), see start_path), each ReLU6 the variant removes has its
        clipping range widened by w = path_width * p^2 on the sides the variant opens: the depthwise ReLU6 becomes
        clamp(z, -w, 6 + w) (the variant: identity), a ReLU6 the variant makes a ReLU becomes clamp(z, 0, 6 + w).
        So each step along the path changes an activation by at most the step in w, and only where the clipping
        bit; values beyond path_width are still clipped until p = 1, where the variant's activation takes over."""
        act, dw_act = activation(self.act), activation(self.dw_act)
        if self.path is None or self.path >= 1:
            return act, dw_act
        w = self.path_width * self.path ** 2
        return (lambda z: z.clamp(0, 6 + w)) if self.act == "relu" else F.relu6, lambda z: z.clamp(-w, 6 + w)

    def block(self, b, x, acts=None):
        """One depthwise-separable block."""
        act, dw_act = acts or self.activations()
        x = b.dw(pad_same(x, b.stride))
        if b.dw_bn is not None:
            x = b.dw_bn(x)
        x = dw_act(x)
        return act(b.pw_bn(b.pw(x)))

    def features(self, x):
        """conv1's output, then each block's output (after the pointwise activation): 14 tensors."""
        acts = self.activations()
        outputs = [acts[0](self.conv1_bn(self.conv1(pad_same(x, 2))))]
        for b in self.blocks:
            outputs.append(self.block(b, outputs[-1], acts))
        return outputs

    def logits(self, last_features):
        return self.classifier(last_features.mean((2, 3), keepdim=True)).flatten(1)

    def forward(self, x, with_features=False):
        """x: [N, 3, H, W] in [-1, 1] -> logits [N, 1000] (and the 14 features(), with_features)."""
        features = self.features(x)
        logits = self.logits(features[-1])
        return (logits, features) if with_features else logits

    def forward_teacher_forced(self, x, teacher_features, mix=0.0):
        """Each block run on (1 - mix) * the teacher's input to it + mix * its own previous block's output
        (teacher_features as features() gives them). mix = 0: every block learns to reproduce its teacher block on
        its own; mix = 1: the ordinary forward pass. Returns (logits, the 14 outputs)."""
        acts = self.activations()
        outputs = [acts[0](self.conv1_bn(self.conv1(pad_same(x, 2))))]
        for b, teacher_input in zip(self.blocks, teacher_features[:-1]):
            block_input = teacher_input if mix == 0 else (1 - mix) * teacher_input + mix * outputs[-1]
            outputs.append(self.block(b, block_input, acts))
        return self.logits(outputs[-1]), outputs

    def depthwise_kernels(self):
        return [b.dw.weight for b in self.blocks]


def load_original(folder, input_size=224):
    """The float network exactly as the TF.js folder defines it (the teacher, and every variant's start)."""
    t, _ = read_tfjs(folder)
    widths = [t["conv1/kernel"].shape[3]] + [t[f"conv_pw_{i}/kernel"].shape[3] for i in range(1, 14)]
    model = MobileNetV1(widths, "original", input_size)
    model.conv1.weight.data.copy_(torch.from_numpy(t["conv1/kernel"]).permute(3, 2, 0, 1))
    model.conv1_bn = batch_norm(t, "conv1_bn", widths[0])
    for i, b in enumerate(model.blocks, start=1):
        b.dw.weight.data.copy_(torch.from_numpy(t[f"conv_dw_{i}/depthwise_kernel"]).permute(2, 3, 0, 1))
        b.dw_bn = batch_norm(t, f"conv_dw_{i}_bn", widths[i - 1])
        b.pw.weight.data.copy_(torch.from_numpy(t[f"conv_pw_{i}/kernel"]).permute(3, 2, 0, 1))
        b.pw_bn = batch_norm(t, f"conv_pw_{i}_bn", widths[i])
    model.classifier.weight.data.copy_(torch.from_numpy(t["conv_preds/kernel"]).permute(3, 2, 0, 1))
    model.classifier.bias.data.copy_(torch.from_numpy(t["conv_preds/bias"]))
    return model.eval()


def bn_scale_shift(bn):
    """BN(z) = s*z + t, as mnq-gpu computes it (BatchNorm::scale_shift)."""
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return s, bn.bias - bn.running_mean * s


@torch.no_grad()
def fold_batch_norm(conv, bn):
    """Fold bn's scale into conv's weight (and bias) and leave bn as a plain shift: BN(z) = s*z + t becomes
    gamma = 1, moving mean 0, moving variance 1 - eps (scale exactly 1), beta = t. The function is unchanged (so is
    what mnq-gpu folds); with BatchNorm frozen, training then steps the weights at their effective scale rather than
    at 1/s of it (fine-tuning with s outside the weights was unstable: a gradient step of norm 0.01 raised the KL)."""
    s, t = bn_scale_shift(bn)
    conv.weight.mul_(s.view(-1, 1, 1, 1))
    if conv.bias is not None:
        conv.bias.mul_(s)
    bn.weight.fill_(1.0)
    bn.bias.copy_(t)
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)


@torch.no_grad()
def make_variant(original, variant, zero_variance_fix=True):
    """The variant's network from the original weights, as transform.rs `depthwise_linear` (+ `relu_everywhere`).

    With zero_variance_fix, the folded scale of a zero-variance depthwise channel is 0 (as the `-zero-var` schemes
    fold): that channel's depthwise output is the constant 0, so the function is the same either way, but its
    pointwise weights then start at 0 rather than blown up by gamma/sqrt(eps).
    """
    if variant == "original":
        return copy.deepcopy(original)
    widths = [original.conv1.out_channels] + [b.pw.out_channels for b in original.blocks]
    model = MobileNetV1(widths, variant, original.input_size)
    model.conv1.load_state_dict(original.conv1.state_dict())
    model.conv1_bn.load_state_dict(original.conv1_bn.state_dict())
    for b, o in zip(model.blocks, original.blocks):
        b.dw.weight.copy_(o.dw.weight)
        s, t = bn_scale_shift(o.dw_bn)
        if zero_variance_fix:
            s = torch.where(o.dw_bn.running_var < ZERO_VARIANCE, torch.zeros_like(s), s)
        w = o.pw.weight[:, :, 0, 0]  # [out, in]
        b.pw.bias.copy_(w @ t)
        b.pw.weight.copy_((w * s[None, :])[:, :, None, None])
        b.pw_bn.load_state_dict(o.pw_bn.state_dict())
    model.classifier.load_state_dict(original.classifier.state_dict())
    return model.eval()


@torch.no_grad()
def start_path(original, variant):
    """The start of a smooth path from the original network to `variant`, for distillation along it (train.py
    --init path): the variant's topology with a bias on each depthwise layer holding that layer's BatchNorm
    (kernel scaled by s, bias t; a zero-variance channel's s is 0, its output the constant t, as before), conv1's
    and every pointwise BatchNorm folded into its convolution (fold_batch_norm), and `path` = 0, where every
    activation is still the original's ReLU6: the same function as the original. Raising `path` to 1 moves each
    depthwise activation to the identity and, for +relu, each other ReLU6 to ReLU (MobileNetV1.activations);
    end_path then folds the depthwise biases away."""
    student = make_variant(original, variant)
    for b, o in zip(student.blocks, original.blocks):
        s, t = bn_scale_shift(o.dw_bn)
        s = torch.where(o.dw_bn.running_var < ZERO_VARIANCE, torch.zeros_like(s), s)
        b.dw = nn.Conv2d(b.dw.in_channels, b.dw.out_channels, 3, b.stride, 0, groups=b.dw.groups, bias=True)
        b.dw.weight.copy_(o.dw.weight * s.view(-1, 1, 1, 1))
        b.dw.bias.copy_(t)
        b.pw.weight.copy_(o.pw.weight)
        b.pw.bias.zero_()
    fold_batch_norm(student.conv1, student.conv1_bn)
    for b in student.blocks:
        fold_batch_norm(b.pw, b.pw_bn)
    student.path = 0.0
    return student


@torch.no_grad()
def end_path(student):
    """The variant at the end of the path (path = 1): each depthwise bias t folded into the next pointwise bias
    (W (z + t) + b = W z + (W t + b), exact as nothing lies between them), the depthwise layers bias-free as the
    variant's topology has them."""
    assert student.path is None or student.path >= 1, student.path
    for b in student.blocks:
        if b.dw.bias is None:
            continue
        b.pw.bias.add_(b.pw.weight[:, :, 0, 0] @ b.dw.bias)
        dw = nn.Conv2d(b.dw.in_channels, b.dw.out_channels, 3, b.stride, 0, groups=b.dw.groups, bias=False)
        dw.weight.copy_(b.dw.weight)
        b.dw = dw
    student.path = None
    return student


def load_tfjs(folder):
    """A TF.js folder written by write_tfjs (any variant) or Google's original."""
    t, model_json = read_tfjs(folder)
    layers = model_json["modelTopology"]["model_config"]["config"]["layers"]
    size = layers[0]["config"]["batch_input_shape"][1]
    if "conv_dw_1_bn/gamma" in t:
        return load_original(folder, size)
    acts = {l["config"]["name"]: l["config"]["activation"] for l in layers if l["class_name"] == "Activation"}
    variant = "dw-linear+relu" if acts["conv1_relu"] == "relu" else "dw-linear"
    named = model_json["modelTopology"]["model_config"]["config"]["name"]  # write_tfjs: mobilenet_VARIANT_SIZE
    if named == f"mobilenet_{variant}+l2_{size}":  # the same topology, trained with L2
        variant += "+l2"
    widths = [t["conv1/kernel"].shape[3]] + [t[f"conv_pw_{i}/kernel"].shape[3] for i in range(1, 14)]
    model = MobileNetV1(widths, variant, size)
    with torch.no_grad():
        model.conv1.weight.copy_(torch.from_numpy(t["conv1/kernel"]).permute(3, 2, 0, 1))
        model.conv1_bn = batch_norm(t, "conv1_bn", widths[0])
        for i, b in enumerate(model.blocks, start=1):
            b.dw.weight.copy_(torch.from_numpy(t[f"conv_dw_{i}/depthwise_kernel"]).permute(2, 3, 0, 1))
            b.pw.weight.copy_(torch.from_numpy(t[f"conv_pw_{i}/kernel"]).permute(3, 2, 0, 1))
            b.pw.bias.copy_(torch.from_numpy(t[f"conv_pw_{i}/bias"]))
            b.pw_bn = batch_norm(t, f"conv_pw_{i}_bn", widths[i])
        model.classifier.weight.copy_(torch.from_numpy(t["conv_preds/kernel"]).permute(3, 2, 0, 1))
        model.classifier.bias.copy_(torch.from_numpy(t["conv_preds/bias"]))
    return model.eval()
