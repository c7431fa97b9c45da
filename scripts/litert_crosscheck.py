#!/usr/bin/env python3
"""Cross-check mnq-gpu against LiteRT (TFLite): every layer, every byte, on the same uint8 input.

mnq-gpu claims to run a quantized TFLite MobileNetV1 bit-exactly as TFLite's reference kernels do. This script
runs `mnq-gpu run --model M --device D --dump DIR IMAGE...`, feeds each dumped input to LiteRT's reference kernels
(OpResolverType.BUILTIN_REF) and compares every dumped layer with the TFLite tensor its manifest names, byte for
byte. On the same inputs it also measures how far LiteRT's fast kernels are from the reference:

  AUTO                               the default: the XNNPACK delegate, run with preserve_all_tensors, under which
                                     LiteRT delegates each operator separately, so every tensor can be read
  AUTO_FUSED                         the default as deployed (no preserve_all_tensors): XNNPACK runs the graph in
                                     fused partitions and only the model's output (softmax) can be read
  BUILTIN                            in LiteRT 2.3 the same resolver as AUTO (both apply XNNPACK)
  BUILTIN_WITHOUT_DEFAULT_DELEGATES  TFLite's optimized builtin kernels without XNNPACK, preserve_all_tensors

Run it with the interpreter that scripts/litert-venv.sh makes:

  py="$(scripts/litert-venv.sh | tail -n1)"
  "$py" scripts/litert_crosscheck.py --mnq target/release/mnq-gpu \\
      --models ../shared/models/tflite/mobilenet_v1_0.25_128_quant.tflite --images 5 --json crosscheck.json

or compare dumps made elsewhere (for instance on a machine with a GPU): `--from-dumps DIR,DIR`.

`--requant fp32` checks mnq-gpu's float requantization (`mnq-gpu --requant fp32`) against LiteRT's default path
instead: every layer against AUTO (XNNPACK, one delegate node per operator), the other configurations then
measured against AUTO. `single` has no LiteRT kernel to compare with (TFLite built with TFLITE_SINGLE_ROUNDING).

int8 TFLite files: mnq-gpu's u8 values are the int8 values + 128, so LiteRT is fed (u8 - 128) and its int8
tensors are compared as (int8 + 128). A file with a uint8 input and output around int8 activations (TF2's
converter: QUANTIZE at both ends) is fed the u8 input as it is.

Exit status: 0 when every byte matches the reference (BUILTIN_REF, or AUTO for fp32), 1 when any differs, 2 on a usage error (missing binary,
model, list, image or package), 3 when mnq-gpu fails or writes a dump this script cannot read.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

try:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
except ImportError as missing:
    print(
        f"error: Python package '{missing.name}' is not installed for {sys.executable}; run this script with the "
        'interpreter that scripts/litert-venv.sh prints: "$(scripts/litert-venv.sh | tail -n1)" '
        "scripts/litert_crosscheck.py ...",
        file=sys.stderr,
    )
    sys.exit(2)

EXIT_DIFFERS, EXIT_USAGE, EXIT_RUN_FAILED = 1, 2, 3
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LIST = REPO_ROOT.parent / "shared" / "imagenet" / "val1300" / "evaluation.txt"
IMAGES_PER_MNQ_CALL = 25  # bounds the dump on disk: about 5 MB per image for the 1.0 × 224 model
DEVICES = ("gpu", "cpu")

# LiteRT warns on every interpreter made with preserve_all_tensors and an optimized resolver; it is meant here.
warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")


class CheckError(Exception):
    """A failure that ends the check before any verdict; `exit_code` says which kind."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Config:
    """One way of running a TFLite file in LiteRT."""

    name: str
    resolver: OpResolverType
    preserve_all_tensors: bool  # False: only the model's outputs hold defined values after invoke()
    description: str


REFERENCE = Config("BUILTIN_REF", OpResolverType.BUILTIN_REF, True, "TFLite reference kernels")
COMPARED_CONFIGS = {
    c.name: c
    for c in (
        Config("AUTO", OpResolverType.AUTO, True, "default (XNNPACK), one delegate node per operator"),
        Config("AUTO_FUSED", OpResolverType.AUTO, False, "default (XNNPACK) as deployed, outputs only"),
        Config("BUILTIN", OpResolverType.BUILTIN, True, "BUILTIN (XNNPACK applied as for AUTO)"),
        Config(
            "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            True,
            "optimized builtin kernels, no XNNPACK",
        ),
    )
}
DEFAULT_COMPARED = "AUTO,AUTO_FUSED,BUILTIN_WITHOUT_DEFAULT_DELEGATES"
# What each mnq-gpu requantization mode (--requant) is checked against.
REFERENCES = {"double": REFERENCE, "fp32": COMPARED_CONFIGS["AUTO"]}


class LiteRTModel:
    """A TFLite file in LiteRT: one interpreter per configuration, and the graph's landmark tensors."""

    def __init__(self, path):
        self.path = Path(path).resolve()
        self.name = self.path.stem
        self._interpreters = {}
        graph = self.interpreter(REFERENCE)
        self.input = graph.get_input_details()[0]
        self.output_tensor = int(graph.get_output_details()[0]["index"])
        self.dtype = np.dtype(self.input["dtype"])
        if self.dtype not in (np.uint8, np.int8):
            raise CheckError(f"{self.path}: input type {self.dtype} is neither uint8 nor int8", EXIT_USAGE)
        self.ops = graph._get_ops_details()
        # The activations' type: the input's, or what a QUANTIZE right after the input makes it (TF2's converter:
        # uint8 in, int8 inside, uint8 out).
        self.activation_dtype = self.dtype
        if self.ops and self.ops[0]["op_name"] == "QUANTIZE":
            details = {t["index"]: t for t in graph.get_tensor_details()}
            self.activation_dtype = np.dtype(details[int(self.ops[0]["outputs"][0])]["dtype"])
        producer = {int(t): op for op in self.ops for t in op["outputs"]}
        self.logits_tensor = self.output_tensor
        while self.logits_tensor in producer and producer[self.logits_tensor]["op_name"] in (
            "QUANTIZE",
            "SOFTMAX",
            "RESHAPE",
        ):
            self.logits_tensor = int(producer[self.logits_tensor]["inputs"][0])
        self.activation_tensors = {int(t) for op in self.ops for t in op["outputs"]}
        pools = [int(op["outputs"][0]) for op in self.ops if op["op_name"] in ("AVERAGE_POOL_2D", "MEAN")]
        self.pool_tensor = pools[0] if pools else None

    def interpreter(self, config):
        """The interpreter for `config`, made on first use."""
        if config.name not in self._interpreters:
            try:
                interpreter = Interpreter(
                    model_path=str(self.path),
                    experimental_op_resolver_type=config.resolver,
                    experimental_preserve_all_tensors=config.preserve_all_tensors,
                )
                interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as error:
                raise CheckError(f"LiteRT cannot load {self.path} ({config.name}): {error}", EXIT_USAGE) from error
            self._interpreters[config.name] = interpreter
        return self._interpreters[config.name]

    def delegated_tensors(self, config):
        """The tensors a delegate (XNNPACK) computes under `config`: outputs of its DELEGATE nodes."""
        ops = self.interpreter(config)._get_ops_details()
        return {int(t) for op in ops if op["op_name"] == "DELEGATE" for t in op["outputs"]}

    def run(self, config, input_u8, tensors):
        """Runs `config` on mnq-gpu's u8 input; returns {tensor: u8 array} for those of `tensors` it can read."""
        interpreter = self.interpreter(config)
        feed = input_u8 if self.dtype == np.uint8 else (input_u8.astype(np.int16) - 128).astype(np.int8)
        interpreter.set_tensor(self.input["index"], feed)
        interpreter.invoke()
        readable = tensors if config.preserve_all_tensors else [t for t in tensors if t == self.output_tensor]
        return {t: as_u8(interpreter.get_tensor(t)) for t in readable}

    def summary(self):
        """The operator list as JSON, in execution order: type, first input and output (index, shape, quantization)."""
        details = {t["index"]: t for t in self.interpreter(REFERENCE).get_tensor_details()}

        def tensor(index):
            scale, zero_point = details[int(index)]["quantization"]
            shape = [int(d) for d in details[int(index)]["shape"]]
            return {"tensor": int(index), "shape": shape, "scale": float(scale), "zero_point": int(zero_point)}

        return {
            "input": tensor(self.input["index"]),
            "output": tensor(self.output_tensor),
            "operators": [
                {"op": op["op_name"], "input": tensor(op["inputs"][0]), "output": tensor(op["outputs"][0])}
                for op in self.ops
            ],
        }


def as_u8(tensor):
    """mnq-gpu's u8 view of a LiteRT activation tensor: uint8 as it is, int8 + 128."""
    if tensor.dtype == np.int8:
        return (tensor.astype(np.int16) + 128).astype(np.uint8)
    return tensor


@dataclass
class TensorStats:
    """Bytes compared and differing for one tensor, summed over images."""

    name: str
    tensor: int
    bytes_compared: int = 0
    bytes_differing: int = 0
    max_abs_diff: int = 0
    first_difference: dict | None = None  # {image, index [n, h, w, c], expected, got}; for mnq-gpu's layers only

    def add(self, image, expected, got, record_first=False):
        """Counts one image's comparison of `got` with `expected` (u8 arrays of the same shape)."""
        if expected.shape != got.shape:
            raise CheckError(
                f"{self.name} (TFLite tensor {self.tensor}): shape {list(got.shape)} where LiteRT has "
                f"{list(expected.shape)} (image {image})",
                EXIT_RUN_FAILED,
            )
        diff = np.abs(expected.astype(np.int16) - got.astype(np.int16))
        differing = int(np.count_nonzero(diff))
        self.bytes_compared += diff.size
        self.bytes_differing += differing
        self.max_abs_diff = max(self.max_abs_diff, int(diff.max(initial=0)))
        if record_first and differing and self.first_difference is None:
            index = np.unravel_index(int(np.flatnonzero(diff)[0]), diff.shape)
            self.first_difference = {
                "image": image,
                "index": [int(i) for i in index],
                "expected": int(expected[index]),
                "got": int(got[index]),
            }

    def as_json(self):
        """The stats as a JSON object (first_difference only where recorded)."""
        return {key: value for key, value in self.__dict__.items() if value is not None}


@dataclass
class ConfigResult:
    """One LiteRT configuration against the reference, on the inputs of one model × device."""

    config: Config
    tensors: dict = field(default_factory=dict)  # tensor index -> TensorStats
    top1_from: str = ""
    top1_compared: int = 0
    top1_differs: int = 0

    def as_json(self):
        """The result as a JSON object."""
        stats = list(self.tensors.values())
        return {
            "description": self.config.description,
            "preserve_all_tensors": self.config.preserve_all_tensors,
            "bytes_compared": sum(s.bytes_compared for s in stats),
            "bytes_differing": sum(s.bytes_differing for s in stats),
            "max_abs_diff": max((s.max_abs_diff for s in stats), default=0),
            "top1_from": self.top1_from,
            "top1_compared": self.top1_compared,
            "top1_differs": self.top1_differs,
            "top1_differs_fraction": self.top1_differs / self.top1_compared if self.top1_compared else None,
            "tensors": [s.as_json() for s in stats],
        }


@dataclass
class RunResult:
    """Everything measured for one model × device."""

    model: LiteRTModel
    device: str
    reference: Config
    images: list = field(default_factory=list)
    layers: dict = field(default_factory=dict)  # tensor index -> TensorStats, mnq-gpu against the reference
    configs: dict = field(default_factory=dict)  # config name -> ConfigResult

    def bytes_differing(self):
        """Bytes of mnq-gpu's dump that differ from the reference."""
        return sum(s.bytes_differing for s in self.layers.values())

    def as_json(self):
        """The result as a JSON object."""
        layers = list(self.layers.values())
        # mnq_vs_builtin_ref / litert_vs_builtin_ref for the reference kernels, ..._auto for XNNPACK.
        reference = self.reference.name.lower()
        return {
            "model": self.model.name,
            "tflite": str(self.model.path),
            "device": self.device,
            "reference": self.reference.name,
            "images": self.images,
            f"mnq_vs_{reference}": {
                "bytes_compared": sum(s.bytes_compared for s in layers),
                "bytes_differing": self.bytes_differing(),
                "layers": [s.as_json() for s in layers],
            },
            f"litert_vs_{reference}": {name: c.as_json() for name, c in self.configs.items()},
        }


def top1(logits):
    """The class with the largest u8 score, ties to the lower index."""
    return int(np.argmax(logits.reshape(-1)))


def compare_image(result, image, input_u8, layers, dump_dir, compared_configs):
    """Compares one dumped run (its input and layers) with the reference, then the other configurations likewise."""
    model = result.model
    bad = [layer["name"] for layer in layers if layer.get("tflite_tensor") not in model.activation_tensors]
    if bad:
        raise CheckError(f"{dump_dir}: layers whose tflite_tensor is no activation tensor of {model.name}: "
                         f"{', '.join(bad)}", EXIT_RUN_FAILED)
    wanted = sorted({layer["tflite_tensor"] for layer in layers} | {model.logits_tensor, model.output_tensor})
    reference = model.run(result.reference, input_u8, wanted)
    names = {layer["tflite_tensor"]: layer["name"] for layer in layers}
    names.setdefault(model.logits_tensor, "logits")
    names.setdefault(model.output_tensor, "softmax (output)")
    for layer in layers:
        tensor = layer["tflite_tensor"]
        stats = result.layers.setdefault(tensor, TensorStats(layer["name"], tensor))
        stats.add(image, reference[tensor], load_npy(dump_dir / layer["file"], dump_dir), record_first=True)
    for config in compared_configs:
        got = model.run(config, input_u8, wanted)
        config_result = result.configs.setdefault(config.name, ConfigResult(config))
        for tensor, values in got.items():
            stats = config_result.tensors.setdefault(tensor, TensorStats(names[tensor], tensor))
            stats.add(image, reference[tensor], values)
        top1_tensor = model.logits_tensor if model.logits_tensor in got else model.output_tensor
        config_result.top1_from = f"{names[top1_tensor]} (tensor {top1_tensor})"
        config_result.top1_compared += 1
        config_result.top1_differs += top1(got[top1_tensor]) != top1(reference[top1_tensor])


def load_npy(path, dump_dir):
    """A uint8 array from mnq-gpu's dump."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise CheckError(f"{dump_dir}: cannot read {path}: {error}", EXIT_RUN_FAILED) from error
    if array.dtype != np.uint8:
        raise CheckError(f"{path}: dtype {array.dtype}, expected uint8", EXIT_RUN_FAILED)
    return array


def compare_dump(dump_dir, models, results, compared_configs, requant):
    """Compares every TFLite-scheme run under `requant` of one mnq-gpu dump directory; results accumulate per
    model × device."""
    manifest_path = dump_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as error:
        raise CheckError(f"cannot read {manifest_path}: {error}", EXIT_RUN_FAILED) from error
    model = model_for_manifest(manifest, manifest_path, models)
    if manifest.get("tflite_type", "uint8") != model.activation_dtype.name:
        raise CheckError(f"{manifest_path}: tflite_type {manifest.get('tflite_type')!r}, but {model.path} has "
                         f"{model.activation_dtype.name} activations", EXIT_RUN_FAILED)
    runs = [run for run in manifest["runs"]
            if run.get("scheme", "tflite") == "tflite" and run.get("requant", "double") == requant]
    if not runs:
        raise CheckError(f"{manifest_path}: no run with scheme 'tflite' and requant '{requant}'", EXIT_RUN_FAILED)
    for run in runs:
        key = (model.name, run["device"])
        result = results.setdefault(key, RunResult(model, run["device"], REFERENCES[requant]))
        image = run["image"]
        result.images.append(image)
        input_u8 = load_npy(dump_dir / run["input"], dump_dir)
        if list(input_u8.shape) != [int(d) for d in model.input["shape"]]:
            raise CheckError(f"{dump_dir / run['input']}: shape {list(input_u8.shape)}, {model.name} takes "
                             f"{[int(d) for d in model.input['shape']]}", EXIT_RUN_FAILED)
        compare_image(result, image, input_u8, run["layers"], dump_dir, compared_configs)


def model_for_manifest(manifest, manifest_path, models):
    """The LiteRTModel of a manifest's TFLite file; a dump made elsewhere is matched to --models by file name."""
    tflite = manifest.get("tflite")
    if tflite is None:
        raise CheckError(f"{manifest_path}: the model did not come from a TFLite file; nothing to cross-check",
                         EXIT_RUN_FAILED)
    for model in models.values():
        if model.path == Path(tflite).resolve() or model.path.name == Path(tflite).name:
            return model
    if not Path(tflite).is_file():
        raise CheckError(f"{manifest_path}: TFLite file {tflite} not found; pass it with --models", EXIT_USAGE)
    models[tflite] = LiteRTModel(tflite)
    return models[tflite]


def run_mnq(mnq, model, device, requant, images, dump_dir):
    """Runs mnq-gpu with --dump on `images`; raises CheckError with its stderr when it fails."""
    command = [str(mnq), "run", "--model", str(model.path), "--scheme", "tflite", "--requant", requant,
               "--device", device, "--dump", str(dump_dir), *map(str, images)]
    completed = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-15:])
        raise CheckError(f"mnq-gpu exited with status {completed.returncode}: {' '.join(command[:10])} ...\n{tail}",
                         EXIT_RUN_FAILED)


def read_image_list(list_path, count):
    """The first `count` images of a `FILE CLASS` list, FILE relative to images/ beside the list."""
    try:
        lines = [line.split() for line in list_path.read_text().splitlines() if line.strip()]
    except OSError as error:
        raise CheckError(f"cannot read image list {list_path}: {error}", EXIT_USAGE) from error
    images = [list_path.parent / "images" / fields[0] for fields in lines[:count]]
    if len(images) < count:
        raise CheckError(f"{list_path} lists {len(images)} images, fewer than --images {count}", EXIT_USAGE)
    missing = [str(image) for image in images if not image.is_file()]
    if missing:
        raise CheckError(f"{len(missing)} listed images not found, first {missing[0]}", EXIT_USAGE)
    return images


def progress(message):
    """One line of progress on stderr."""
    print(f"litert-crosscheck: {message}", file=sys.stderr, flush=True)


def check_with_mnq(args, models, results, compared_configs):
    """Runs mnq-gpu on every model × device, IMAGES_PER_MNQ_CALL images a call, and compares each dump."""
    images = read_image_list(args.list, args.images)
    for model in models.values():
        for device in args.devices:
            for start in range(0, len(images), IMAGES_PER_MNQ_CALL):
                chunk = images[start:start + IMAGES_PER_MNQ_CALL]
                progress(f"{model.name} {device}: images {start + 1}-{start + len(chunk)} of {len(images)}")
                if args.work:
                    dump_dir = args.work / model.name / device / f"{start:05d}"
                    dump_dir.mkdir(parents=True, exist_ok=True)
                    run_mnq(args.mnq, model, device, args.requant, chunk, dump_dir)
                    compare_dump(dump_dir, models, results, compared_configs, args.requant)
                else:
                    with tempfile.TemporaryDirectory(prefix="mnq-dump-") as temporary:
                        run_mnq(args.mnq, model, device, args.requant, chunk, Path(temporary))
                        compare_dump(Path(temporary), models, results, compared_configs, args.requant)


def percent(part, whole):
    """`part` of `whole` as a percentage string."""
    return f"{100 * part / whole:.2f} %" if whole else "n/a"


def print_report(results, compared_names, reference):
    """The human-readable tables, on stdout."""
    print(f"LiteRT {version('ai-edge-litert')}: mnq-gpu against {reference.name} ({reference.description}), "
          "byte for byte")
    if reference.resolver != OpResolverType.BUILTIN_REF:
        for result in {r.model.name: r for r in results.values()}.values():
            delegated = result.model.delegated_tensors(reference)
            others = [s.name for t, s in result.layers.items() if t not in delegated]
            print(f"{result.model.name}: XNNPACK ran {len(result.layers) - len(others)} of {len(result.layers)} "
                  f"layers{'; TFLite kernels ran ' + ', '.join(others) if others else ''}")
    print(f"{'model':<36} {'device':<6} {'images':>6} {'layers':>6} {'bytes compared':>15} {'bytes differing':>15}")
    for result in results.values():
        compared = sum(s.bytes_compared for s in result.layers.values())
        print(f"{result.model.name:<36} {result.device:<6} {len(result.images):>6} {len(result.layers):>6} "
              f"{compared:>15,} {result.bytes_differing():>15,}")
        for stats in result.layers.values():
            if stats.bytes_differing:
                first = stats.first_difference
                _, y, x, c = first["index"]
                print(f"    {stats.name}: {stats.bytes_differing:,} of {stats.bytes_compared:,} bytes differ; first in "
                      f"image {Path(first['image']).name} at (y={y}, x={x}, c={c}): expected {first['expected']}, "
                      f"got {first['got']}")
    print()
    print(f"LiteRT's other kernels against {reference.name}, on the same inputs (Δ = bytes differing)")
    print(f"{'model':<36} {'device':<6} {'config':<33} {'tensors':>7} {'Δ all':>9} {'max|Δ|':>6} {'pool Δ':>9} "
          f"{'logits Δ/img':>12} {'output Δ/img':>12} {'top-1 differs':>13}")
    for result in results.values():
        for name in compared_names:
            config = result.configs[name]
            stats = config.tensors
            n = config.top1_compared
            whole = sum(s.bytes_compared for s in stats.values())
            pool = stats.get(result.model.pool_tensor)
            logits = stats.get(result.model.logits_tensor)
            output = stats[result.model.output_tensor]
            print(f"{result.model.name:<36} {result.device:<6} {name:<33} {len(stats):>7} "
                  f"{percent(sum(s.bytes_differing for s in stats.values()), whole):>9} "
                  f"{max(s.max_abs_diff for s in stats.values()):>6} "
                  f"{percent(pool.bytes_differing, pool.bytes_compared) if pool else 'n/a':>9} "
                  f"{f'{logits.bytes_differing / n:.1f}' if logits else 'n/a':>12} "
                  f"{output.bytes_differing / n:>12.1f} {f'{config.top1_differs}/{n}':>13}")


def parse_args():
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnq", type=Path, help="the mnq-gpu binary (e.g. target/release/mnq-gpu)")
    parser.add_argument("--models", type=lambda s: [Path(p) for p in s.split(",") if p],
                        default=[], help="comma-separated TFLite files")
    parser.add_argument("--list", type=Path, default=DEFAULT_LIST,
                        help="`FILE CLASS` image list (default: %(default)s)")
    parser.add_argument("--images", type=int, default=5, help="how many images of the list (default: %(default)s)")
    parser.add_argument("--devices", type=lambda s: s.split(","), default=list(DEVICES), help="gpu,cpu (default)")
    parser.add_argument("--requant", choices=sorted(REFERENCES), default="double",
                        help="mnq-gpu's requantization mode: double is checked against BUILTIN_REF, fp32 against "
                             "AUTO (XNNPACK) (default: %(default)s)")
    parser.add_argument("--resolvers", type=lambda s: s.split(","),
                        help=f"LiteRT configurations measured against the reference, of {','.join(COMPARED_CONFIGS)} "
                             f"(default: {DEFAULT_COMPARED}, less the reference)")
    parser.add_argument("--from-dumps", type=lambda s: [Path(p) for p in s.split(",") if p], default=[],
                        help="compare existing mnq-gpu dump directories instead of running --mnq")
    parser.add_argument("--work", type=Path, help="keep mnq-gpu's dumps here (default: temporary, deleted)")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--summary", action="store_true", help="also put each model's operator list in the JSON")
    args = parser.parse_args()
    if args.from_dumps:
        missing = [str(d) for d in args.from_dumps if not (d / "manifest.json").is_file()]
        if missing:
            parser.error(f"no manifest.json in {', '.join(missing)}")
    else:
        if args.mnq is None or not args.mnq.is_file():
            parser.error(f"--mnq: mnq-gpu binary {args.mnq} not found (build it: cargo build --release)"
                         if args.mnq else "--mnq (the mnq-gpu binary) or --from-dumps is required")
        if not args.models:
            parser.error("--models: give at least one TFLite file")
        if args.images < 1:
            parser.error("--images must be at least 1")
        unknown = [d for d in args.devices if d not in DEVICES]
        if unknown:
            parser.error(f"--devices: unknown {', '.join(unknown)} (choose from {', '.join(DEVICES)})")
    missing = [str(m) for m in args.models if not m.is_file()]
    if missing:
        parser.error(f"--models: not found: {', '.join(missing)}")
    reference = REFERENCES[args.requant].name
    if args.resolvers is None:
        args.resolvers = [name for name in DEFAULT_COMPARED.split(",") if name != reference]
    unknown = [r for r in args.resolvers if r not in COMPARED_CONFIGS or r == reference]
    if unknown:
        parser.error(f"--resolvers: unknown or the reference: {', '.join(unknown)} (choose from "
                     f"{', '.join(c for c in COMPARED_CONFIGS if c != reference)})")
    return args


def main():
    """Parses, runs the check, prints the tables, writes the JSON; returns the exit status."""
    args = parse_args()
    compared_configs = [COMPARED_CONFIGS[name] for name in args.resolvers]
    results = {}
    try:
        models = {str(path): LiteRTModel(path) for path in args.models}
        if args.from_dumps:
            for dump_dir in args.from_dumps:
                progress(f"comparing {dump_dir}")
                compare_dump(dump_dir, models, results, compared_configs, args.requant)
        else:
            check_with_mnq(args, models, results, compared_configs)
    except CheckError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    reference = REFERENCES[args.requant]
    print_report(results, args.resolvers, reference)
    bytes_differing = sum(result.bytes_differing() for result in results.values())
    bytes_compared = sum(s.bytes_compared for result in results.values() for s in result.layers.values())
    verdict = "bit-exact" if bytes_differing == 0 else "NOT bit-exact"
    print(f"\nresult: {verdict}: {bytes_differing:,} of {bytes_compared:,} bytes differ from {reference.name}")
    if args.json:
        report = {
            "litert_version": version("ai-edge-litert"),
            "requant": args.requant,
            "reference": reference.name,
            "numpy_version": version("numpy"),
            "bit_exact": bytes_differing == 0,
            "bytes_compared": bytes_compared,
            "bytes_differing": bytes_differing,
            "results": [result.as_json() for result in results.values()],
        }
        if args.summary:
            report["models"] = {model.name: model.summary() for model in models.values()}
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return EXIT_DIFFERS if bytes_differing else 0


if __name__ == "__main__":
    sys.exit(main())
