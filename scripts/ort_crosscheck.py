#!/usr/bin/env python3
"""Cross-check mnq-gpu against ONNX Runtime: every layer, every byte, on the same integer input.

mnq-gpu claims to run an int8 ONNX MobileNetV1 (QDQ or QOperator, as `quantize_static` writes it) bit-exactly as
ONNX Runtime's CPU execution provider does. This script runs `mnq-gpu run --model M --device D --dump DIR IMAGE...`
(the file's own quantization, scheme `onnx`, requantization `fp32`), then feeds each dumped input to ORT's
default session (all graph optimizations, so the QDQ groups are fused into QLinearConv, QLinearGlobalAveragePool
and QGemm as ORT runs them) and compares every dumped layer with the ORT tensor its manifest names, byte for byte.

ORT first fuses the file itself (see OrtModel); in that fused graph the input QuantizeLinear is removed (its output
becomes the graph's input, fed mnq-gpu's dumped integers) and every fused integer op's output is made a graph
output. The fused graph's operators are printed, so that a comparison against unfused float ops cannot pass unseen.

ORT's x86 integer kernels: with AVX-512 VNNI or AVX-VNNI (vpdpbusd) the int32 sums are exact; on AVX2 or AVX-512
without VNNI the u8×s8 path (vpmaddubsw) saturates int16 pair sums (onnxruntime#16105). The path is read from
/proc/cpuinfo and printed. On such a CPU, where a model that ORT runs u8×s8 (uint8 activations, int8 weights: a
QDQ file with int8 weights, whose int8 activations ORT turns into uint8 on x86) differs, its differences are
printed but excused: ORT's own sums are not exact there, and mnq-gpu follows the exact arithmetic. Every other
model (u8×u8, s8×s8) must match on every CPU, and every model on a VNNI CPU.

Run it with the interpreter that scripts/ort-venv.sh makes:

  py="$(scripts/ort-venv.sh | tail -n1)"
  "$py" scripts/ort_crosscheck.py --mnq target/release/mnq-gpu --models m_qdq.onnx,m_qop.onnx --images 5

Exit status: 0 when every byte matches but the excused ones, 1 when any other differs, 2 on a usage error (missing
binary, model, list or package), 3 when mnq-gpu fails or writes a dump this script cannot read.
"""

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as missing:
    print(
        f"error: Python package '{missing.name}' is not installed for {sys.executable}; run this script with the "
        'interpreter that scripts/ort-venv.sh prints: "$(scripts/ort-venv.sh | tail -n1)" scripts/ort_crosscheck.py',
        file=sys.stderr,
    )
    sys.exit(2)

EXIT_DIFFERS, EXIT_USAGE, EXIT_RUN_FAILED = 1, 2, 3
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LIST = REPO_ROOT.parent / "shared" / "imagenet" / "val1300" / "evaluation.txt"
IMAGES_PER_MNQ_CALL = 25
DEVICES = ("gpu", "cpu")
ONNX_TYPES = {onnx.TensorProto.UINT8: np.uint8, onnx.TensorProto.INT8: np.int8}


class CheckError(Exception):
    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


SATURATING_PATH = "AVX2 without VNNI"


def kernel_path():
    """Which of ORT's x86 integer GEMM paths this CPU takes, from its flags."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown (no /proc/cpuinfo)"
    if "avx512_vnni" in flags:
        return "AVX-512 VNNI (vpdpbusd: exact int32 sums)"
    if "avx_vnni" in flags:
        return "AVX-VNNI (vpdpbusd: exact int32 sums)"
    if "avx2" in flags:
        return f"{SATURATING_PATH} (vpmaddubsw: int16 pair sums can saturate, onnxruntime#16105)"
    return "no AVX2 (SSE kernels)"


QLINEAR_OPS = {"QLinearConv": 7, "QLinearMatMul": 7, "QGemm": 8, "QLinearGlobalAveragePool": 4}  # -> y_zero_point
# The ops with a weight operand: inputs 2 and 5 are the zero points of the activation and of the weights.
WEIGHTED_OPS = {"QLinearConv", "QLinearMatMul", "QGemm"}


class OrtModel:
    """An ONNX file as ORT runs it, with its integer input fed directly and every layer's output readable.

    ORT fuses a QDQ file's DequantizeLinear → op → QuantizeLinear groups only where the QuantizeLinear's output is
    no graph output (and the input's DequantizeLinear reads no graph input), so the tensors cannot simply be
    exposed in the file. Instead ORT itself fuses the file first (ORT_ENABLE_EXTENDED: the QDQ fusions and, on
    x86, the int8 → uint8 activation conversion), and that fused graph, with its input QuantizeLinear removed and
    each fused op's output made a graph output, runs in a default session (ORT_ENABLE_ALL): the kernels that ORT's
    default session runs on the file. The fused ops' outputs are mnq-gpu's layers, in chain order.
    """

    def __init__(self, path):
        self.path = Path(path).resolve()
        self.name = self.path.stem
        if not self.path.is_file():
            raise CheckError(f"no ONNX file at {self.path}", EXIT_USAGE)
        self.session = None
        with tempfile.TemporaryDirectory() as tmp:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            options.optimized_model_filepath = str(Path(tmp) / "fused.onnx")
            try:
                ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            except Exception as error:  # ORT raises several types for a model it cannot load
                raise CheckError(f"ORT cannot load {self.path}: {error}", EXIT_USAGE) from error
            self.model = onnx.load(options.optimized_model_filepath)
        self.fused = collections.Counter(n.op_type for n in self.model.graph.node)
        self.initializers = {t.name: t for t in self.model.graph.initializer}
        self.u8s8 = any(self._zero_point_type(n, 2) == onnx.TensorProto.UINT8
                        and self._zero_point_type(n, 5) == onnx.TensorProto.INT8
                        for n in self.model.graph.node if n.op_type in WEIGHTED_OPS)

    def _zero_point_type(self, node, index=None):
        """The element type of `node`'s zero point at input `index` (default: its output's)."""
        if index is None:
            index = QLINEAR_OPS.get(node.op_type, 2)  # QuantizeLinear: input 2
        if index >= len(node.input) or node.input[index] not in self.initializers:
            raise CheckError(f"{self.path}: {node.op_type} {node.name} has no constant zero point at input {index}",
                             EXIT_RUN_FAILED)
        return self.initializers[node.input[index]].data_type

    def prepare(self, layer_count):
        """The session: input QuantizeLinear removed, the `layer_count` fused ops' outputs exposed."""
        if self.session is not None:
            return
        graph = self.model.graph
        consumers = collections.defaultdict(list)
        for node in graph.node:
            for name in node.input:
                consumers[name].append(node)
        (float_input,) = [i for i in graph.input if i.name not in self.initializers]
        quantize = consumers[float_input.name]
        if len(quantize) != 1 or quantize[0].op_type != "QuantizeLinear":
            raise CheckError(f"{self.path}: the input is not quantized by one QuantizeLinear", EXIT_USAGE)
        quantize = quantize[0]
        self.input_name = quantize.output[0]
        self.input_type = self._zero_point_type(quantize)
        shape = [d.dim_value or 1 for d in float_input.type.tensor_type.shape.dim]
        graph.node.remove(quantize)
        graph.input.remove(float_input)
        graph.input.append(onnx.helper.make_tensor_value_info(self.input_name, self.input_type, shape))
        layers, current = [], self.input_name
        while len(consumers[current]) == 1:
            node = consumers[current][0]
            if node.op_type in QLINEAR_OPS:
                layers.append((node.output[0], self._zero_point_type(node)))
            current = node.output[0]
        if len(layers) != layer_count:
            raise CheckError(f"{self.path}: ORT's fused graph has {len(layers)} integer ops "
                             f"({dict(self.fused)}), mnq-gpu {layer_count} layers", EXIT_RUN_FAILED)
        present = {o.name for o in graph.output}
        for name, element_type in layers:
            if name not in present:
                graph.output.append(onnx.helper.make_tensor_value_info(name, element_type, None))
        self.layer_tensors = [name for name, _ in layers]
        try:
            self.session = ort.InferenceSession(self.model.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception as error:
            raise CheckError(f"ORT cannot load the fused {self.path}: {error}", EXIT_RUN_FAILED) from error

    def run(self, input_nhwc_u8):
        """ORT's layer outputs for mnq-gpu's u8 input [1, h, w, 3], each as mnq-gpu's u8 NHWC view."""
        feed = input_nhwc_u8.transpose(0, 3, 1, 2)
        if self.input_type == onnx.TensorProto.INT8:
            feed = (feed.astype(np.int16) - 128).astype(np.int8)
        values = self.session.run(self.layer_tensors, {self.input_name: np.ascontiguousarray(feed)})
        return [as_u8_nhwc(value) for value in values]


def as_u8_nhwc(tensor):
    """mnq-gpu's view of an ORT tensor: NCHW → NHWC ([1, c] → [1, 1, 1, c]), int8 + 128."""
    if tensor.dtype == np.int8:
        tensor = (tensor.astype(np.int16) + 128).astype(np.uint8)
    if tensor.ndim == 2:
        tensor = tensor.reshape(tensor.shape[0], 1, 1, tensor.shape[1])
    elif tensor.ndim == 4:
        tensor = tensor.transpose(0, 2, 3, 1)
    return tensor


def load_npy(path):
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise CheckError(f"cannot read {path}: {error}", EXIT_RUN_FAILED) from error
    if array.dtype != np.uint8:
        raise CheckError(f"{path}: dtype {array.dtype}, expected uint8", EXIT_RUN_FAILED)
    return array


def run_mnq(mnq, model, device, images, dump_dir):
    command = [str(mnq), "run", "--model", str(model.path), "--scheme", "onnx", "--requant", "fp32",
               "--device", device, "--dump", str(dump_dir), *map(str, images)]
    completed = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-15:])
        raise CheckError(f"mnq-gpu exited with status {completed.returncode}: {' '.join(command[:10])} ...\n{tail}",
                         EXIT_RUN_FAILED)


def read_image_list(list_path, count):
    try:
        lines = [line.split() for line in list_path.read_text().splitlines() if line.strip()]
    except OSError as error:
        raise CheckError(f"cannot read image list {list_path}: {error}", EXIT_USAGE) from error
    images = [list_path.parent / "images" / line[0] for line in lines[:count]]
    missing = [str(i) for i in images if not i.is_file()]
    if missing:
        raise CheckError(f"images listed in {list_path} are missing: {', '.join(missing[:3])}", EXIT_USAGE)
    return images


def compare_dump(dump_dir, model, stats, images):
    """Compares every run of one dump directory with ORT; accumulates per-layer byte counts in `stats`."""
    manifest = json.loads((dump_dir / "manifest.json").read_text())
    runs = [r for r in manifest["runs"] if r.get("scheme") == "onnx" and r.get("requant") == "fp32"]
    if not runs:
        raise CheckError(f"{dump_dir}/manifest.json: no run with scheme 'onnx' and requant 'fp32'", EXIT_RUN_FAILED)
    for run in runs:
        model.prepare(len(run["layers"]))
        ort_values = model.run(load_npy(dump_dir / run["input"]))
        images.append(run["image"])
        for layer, expected in zip(run["layers"], ort_values):
            got = load_npy(dump_dir / layer["file"])
            if expected.shape != got.shape:
                raise CheckError(f"{layer['name']}: mnq-gpu shape {list(got.shape)}, ORT {list(expected.shape)}",
                                 EXIT_RUN_FAILED)
            entry = stats.setdefault(layer["name"], {"name": layer["name"], "onnx_tensor": layer["onnx_tensor"],
                                                     "bytes_compared": 0, "bytes_differing": 0, "max_abs_diff": 0})
            diff = np.abs(expected.astype(np.int16) - got.astype(np.int16))
            entry["bytes_compared"] += int(diff.size)
            entry["bytes_differing"] += int(np.count_nonzero(diff))
            entry["max_abs_diff"] = max(entry["max_abs_diff"], int(diff.max(initial=0)))
            if np.count_nonzero(diff) and "first_difference" not in entry:
                index = np.unravel_index(int(np.flatnonzero(diff)[0]), diff.shape)
                entry["first_difference"] = {"image": run["image"], "index [n, h, w, c]": [int(i) for i in index],
                                             "ort": int(expected[index]), "mnq": int(got[index])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnq", required=True, type=Path, help="the mnq-gpu binary")
    parser.add_argument("--models", required=True, help="comma-separated quantized ONNX files")
    parser.add_argument("--images", type=int, default=5, help="images from the list (default 5)")
    parser.add_argument("--list", type=Path, default=DEFAULT_LIST, help="FILE CLASS list (default evaluation.txt)")
    parser.add_argument("--devices", default=",".join(DEVICES), help="mnq-gpu devices (default gpu,cpu)")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    try:
        if not args.mnq.is_file():
            raise CheckError(f"no mnq-gpu binary at {args.mnq}", EXIT_USAGE)
        images = read_image_list(args.list, args.images)
        path = kernel_path()
        print(f"ORT {ort.__version__}, CPU execution provider, default session (ORT_ENABLE_ALL); "
              f"integer kernels: {path}")
        results, total_differing = [], 0
        for model_path in args.models.split(","):
            for device in args.devices.split(","):
                model = OrtModel(model_path)
                stats, seen = {}, []
                with tempfile.TemporaryDirectory() as tmp:
                    for start in range(0, len(images), IMAGES_PER_MNQ_CALL):
                        dump_dir = Path(tmp) / str(start)
                        run_mnq(args.mnq, model, device, images[start : start + IMAGES_PER_MNQ_CALL], dump_dir)
                        compare_dump(dump_dir, model, stats, seen)
                compared = sum(s["bytes_compared"] for s in stats.values())
                differing = sum(s["bytes_differing"] for s in stats.values())
                excused = differing > 0 and model.u8s8 and path.startswith(SATURATING_PATH)
                total_differing += 0 if excused else differing
                fused = ", ".join(f"{op} {n}" for op, n in sorted(model.fused.items()))
                print(f"{model.name} [{device}]: {len(seen)} images, {len(stats)} layers, {compared:,} bytes "
                      f"compared, {differing:,} differ; ORT ran: {fused}")
                if excused:
                    print("  excused: ORT runs this model u8×s8, whose sums saturate on this CPU "
                          "(onnxruntime#16105); on a VNNI CPU it must match")
                for s in stats.values():
                    if s["bytes_differing"]:
                        print(f"  {s['name']} ({s['onnx_tensor']}): {s['bytes_differing']} of {s['bytes_compared']} "
                              f"differ, max |diff| {s['max_abs_diff']}, first {s['first_difference']}")
                results.append({"model": model.name, "onnx": str(model.path), "device": device, "images": seen,
                                "ort_kernels": path, "ort_fused_ops": dict(model.fused), "ort_u8s8": model.u8s8,
                                "differences_excused": excused,
                                "bytes_compared": compared, "bytes_differing": differing,
                                "layers": list(stats.values())})
        if args.json:
            args.json.write_text(json.dumps({"ort_version": ort.__version__, "results": results}, indent=1))
        excused_runs = sum(r["differences_excused"] for r in results)
        if total_differing:
            print(f"MISMATCH: {total_differing:,} bytes differ")
        elif excused_runs:
            print(f"all bytes match but those of {excused_runs} excused runs")
        else:
            print("all bytes match")
        return 0 if total_differing == 0 else EXIT_DIFFERS
    except CheckError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
