#!/usr/bin/env python3
"""The int8 engine in a real browser: headless Chromium runs the page (web/dist, served by `mnq-gpu serve`) on
WebGPU, and every int8 result it shows is checked byte for byte against the native CPU reference.

For each case (model, scheme, image) the page is opened as ?model=…&scheme=…&image=…&auto=1; when
<body data-state> is "done", <pre id="result-json"> holds the result. Checked:
  - the page's int8 logits (uint8), from its WebGPU run and from its own CPU reference in wasm, equal the native
    `mnq-gpu run --device cpu --dump` logits byte for byte (calibrated schemes: the same first N calibration
    images, passed natively as --calibration LIST);
  - an ONNX file (the TF.js model exported as QDQ under tf8 and fp32 requantization) runs under its own
    quantization (scheme `onnx`, ONNX Runtime's arithmetic) as natively;
  - the page says every layer of the GPU run equals its CPU reference (bit-exact);
  - float and int8 top-5 labels equal the native run's;
  - a broken image (a truncated JPEG) ends in a visible error within the timeout, not a hang.
It writes screenshots into --out and prints figures: bytes compared and differing per scheme, int8 time per image
in the browser against native `mnq-gpu bench` on the GPU, the wasm size (gzip), the page's first-load time.
Exit status: 0 when every check passed, 1 otherwise.

Needs: Chromium and its chromedriver (Debian: apt-get install chromium chromium-driver), a built page
(scripts/build-web.sh) and the mnq-gpu binary. Installs nothing. Python standard library only: it drives
chromedriver over the W3C WebDriver HTTP API.
"""

import argparse
import base64
import gzip
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
TFLITE_025 = "tflite/mobilenet_v1_0.25_128_quant.tflite"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--enable-unsafe-webgpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    # WebGPU and the canvas on SwiftShader, Chromium's CPU Vulkan: no GPU here.
    "--enable-features=Vulkan",
    "--use-vulkan=swiftshader",
    "--use-angle=swiftshader",
    "--window-size=1280,1400",
]


def short(model_id):
    """A model id without folders and `.tflite` or `.onnx`: mobilenet_v1_0.25_128_quant, mobilenet_v1_0.75_224."""
    return Path(model_id).name.removesuffix(".tflite").removesuffix(".onnx")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriver:
    """The few W3C WebDriver commands the test needs, over chromedriver's HTTP API."""

    def __init__(self, chromedriver, chromium, profile, flags=CHROMIUM_FLAGS):
        self.port = free_port()
        self.process = subprocess.Popen(
            [chromedriver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{self.port}"
        try:
            for _ in range(100):
                try:
                    self.call("GET", "/status")
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                raise RuntimeError(f"{chromedriver} did not answer on port {self.port}")
            options = {"binary": chromium, "args": flags + [f"--user-data-dir={profile}"]}
            capabilities = {
                "browserName": "chrome",
                "goog:chromeOptions": options,
                "goog:loggingPrefs": {"browser": "ALL"},
            }
            value = self.call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})
        except BaseException:
            self.process.terminate()
            self.process.wait(timeout=10)
            raise
        self.session = f"/session/{value['sessionId']}"
        self.version = value["capabilities"].get("browserVersion", "?")

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                return json.load(response)["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"WebDriver {method} {path}: {e.read().decode(errors='replace')[:500]}") from None

    def open(self, url):
        self.call("POST", self.session + "/url", {"url": url})

    def run(self, script):
        return self.call("POST", self.session + "/execute/sync", {"script": script, "args": []})

    def choose_file(self, css, path):
        """Types `path` into the file input `css`, as a user choosing that file."""
        element = self.call("POST", self.session + "/element", {"using": "css selector", "value": css})
        element_id = next(iter(element.values()))
        self.call("POST", f"{self.session}/element/{element_id}/value", {"text": str(path)})

    def screenshot(self, path):
        path.write_bytes(base64.b64decode(self.call("GET", self.session + "/screenshot")))

    def console(self):
        try:
            return self.call("POST", self.session + "/se/log", {"type": "browser"})
        except RuntimeError:
            return []

    def close(self):
        try:
            self.call("DELETE", self.session)
        finally:
            self.process.terminate()
            self.process.wait(timeout=10)


def wait_for_result(driver, timeout_s):
    """The page's state ("done" or "error") and result JSON, or ("timeout", None)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = driver.run("return document.body.dataset.state || ''")
        if state in ("done", "error"):
            text = driver.run("return document.getElementById('result-json').textContent")
            shown = driver.run(
                "const e = document.getElementById('error'); "
                "return getComputedStyle(e).display !== 'none' ? e.textContent : ''"
            )
            result = json.loads(text) if text else {}
            result["_shown_error"] = shown
            return state, result
        time.sleep(0.2)
    return "timeout", None


def read_npy_u8(path):
    """The bytes of a uint8 .npy file (format 1.0, as `mnq-gpu run --dump` writes it)."""
    data = path.read_bytes()
    assert data[:6] == b"\x93NUMPY", f"{path}: not a .npy file"
    header_len = int.from_bytes(data[8:10], "little")
    header = data[10 : 10 + header_len].decode()
    assert "'|u1'" in header, f"{path}: not uint8 ({header})"
    return data[10 + header_len :]


def native_run(mnq, model, scheme, images, calibration_list, dump):
    """Native CPU reference: per image (in order), the logits' bytes and the float and int8 top-5 names."""
    command = [mnq, "run", "--device", "cpu", "--json", "--model", str(model), "--scheme", scheme, "--dump", str(dump)]
    if calibration_list:
        command += ["--calibration", str(calibration_list)]
    output = subprocess.run(command + [str(i) for i in images], capture_output=True, text=True)
    if output.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{output.stderr}")
    results = json.loads(output.stdout)
    manifest = json.loads((dump / "manifest.json").read_text())
    runs = [r for r in manifest["runs"] if r["scheme"] == scheme]
    assert len(runs) == len(images), f"{len(runs)} dumped runs for {len(images)} images"
    native = []
    for result, run in zip(results, runs):
        logits = read_npy_u8(dump / run["layers"][-1]["file"])
        native.append(
            {
                "logits": logits,
                "float": [p["name"] for p in result["float"]],
                "int8": [p["name"] for p in result["int8"][0]["top"]],
            }
        )
    return native


def native_gpu_ms(mnq, model, scheme, calibration_list):
    """Native int8 time per image on the GPU at batch 1 (`mnq-gpu bench`), or None where it cannot run."""
    command = [mnq, "bench", "--json", "--model", str(model), "--scheme", scheme]
    if calibration_list:
        command += ["--calibration", str(calibration_list)]
    output = subprocess.run(command, capture_output=True, text=True)
    if output.returncode != 0:
        print(f"note: {' '.join(command)} failed, no native GPU time:\n{output.stderr[-800:]}", file=sys.stderr)
        return None
    return json.loads(output.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnq", default=str(ROOT / "target/debug/mnq-gpu"), help="the mnq-gpu binary")
    parser.add_argument("--out", default="out/browser-test", help="screenshots and figures.json go here")
    parser.add_argument("--images", type=int, default=2, help="ImageNet validation images per scheme")
    parser.add_argument("--calibration", type=int, default=4, help="calibration images for calibrated schemes")
    parser.add_argument("--schemes", default="tflite,tf8", help="comma-separated; tflite = the file's own")
    parser.add_argument("--model", default=TFLITE_025, help="model id under ../shared/models")
    parser.add_argument(
        "--tfjs", default="mobilenet_v1_0.75_224", help="a TF.js folder under ../shared/models, run once under tf8 ('' skips)"
    )
    parser.add_argument(
        "--no-onnx", action="store_true", help="skip the ONNX case (--tfjs exported as QDQ, run once under `onnx`)"
    )
    parser.add_argument("--timeout", type=float, default=180, help="seconds one page may take")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    parser.add_argument(
        "--allow-no-webgpu", action="store_true", help="pass when the browser has no WebGPU (CPU reference only)"
    )
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failures = []

    def check(ok, message):
        print(("ok    " if ok else "FAIL  ") + message)
        if not ok:
            failures.append(message)

    wasm = ROOT / "web/dist/mnq_web_bg.wasm"
    if not wasm.is_file():
        sys.exit(f"error: no {wasm}: build the page with scripts/build-web.sh")
    wasm_bytes = wasm.read_bytes()
    figures = {"wasm_bytes": len(wasm_bytes), "wasm_gzip_bytes": len(gzip.compress(wasm_bytes, 9)), "schemes": {}}

    tmp = Path(tempfile.mkdtemp(prefix="mnq-browser-"))
    # The same calibration images the server offers first, as an absolute-path list for the native run.
    calibration = SHARED / "imagenet/val1300/calibration.txt"
    lines = [l for l in calibration.read_text().splitlines() if l.strip()][: args.calibration]
    images_dir = calibration.parent / "images"
    calibration_list = tmp / "calibration.txt"
    calibration_list.write_text("".join(f"{images_dir / l.split()[0]} {l.split()[1]}\n" for l in lines))
    evaluation = (calibration.parent / "evaluation.txt").read_text().split()[::2][: args.images]
    # (URL the page fetches, file the native run reads)
    images = [("/builtin/grace_hopper.jpg", ROOT / "assets/grace_hopper.jpg")]
    images += [(f"/imagenet/{name}", images_dir / name) for name in evaluation]

    # The served models: the cases' files from ../shared/models, and the ONNX export made here.
    served = tmp / "models"
    (served / Path(args.model).parent).mkdir(parents=True)
    shutil.copy(SHARED / "models" / args.model, served / args.model)
    onnx = None
    if args.tfjs:
        shutil.copytree(SHARED / "models" / args.tfjs, served / args.tfjs)
        if not args.no_onnx:
            onnx = f"onnx/{args.tfjs}_tf8.onnx"
            (served / "onnx").mkdir()
            command = [args.mnq, "export", "--model", str(served / args.tfjs), "--scheme", "tf8", "--requant", "fp32"]
            command += ["--format", "onnx", "--calibration", str(calibration_list), "-o", str(served / onnx)]
            subprocess.run(command, check=True, capture_output=True)

    server = subprocess.Popen(
        [args.mnq, "serve", "--port", "0", "--models", str(served)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    driver = None
    try:
        line = server.stdout.readline()
        if not line.startswith("serving "):
            sys.exit(f"error: `mnq-gpu serve` did not start: {line!r}")
        base = line.split()[1]
        driver = WebDriver(args.chromedriver, args.chromium, tmp / "profile")
        print(f"Chromium {driver.version}, page {base}")

        first_load = None
        native_logits = {}  # (model id, scheme, image URL) → native logits
        # (model id, scheme, images, whether to time it natively too)
        cases = [(args.model, scheme, images, True) for scheme in args.schemes.split(",")]
        if args.tfjs:
            cases.append((args.tfjs, "tf8", images[:1], False))
        if onnx:
            cases.append((onnx, "onnx", images[:1], False))
        for case_model, scheme, case_images, timed in cases:
            calibrated = scheme not in ("tflite", "onnx")
            case_path = served / case_model
            dump = tmp / f"{case_model.replace('/', '_')}_{scheme}"
            lists = calibration_list if calibrated else None
            native = native_run(args.mnq, case_path, scheme, [p for _, p in case_images], lists, dump)
            compared = differing = 0
            browser_all_ms, browser_logits_ms = [], []
            for (url, path), expected in zip(case_images, native):
                native_logits[(case_model, scheme, url)] = expected["logits"]
                query = {"model": case_model, "scheme": scheme, "image": url, "auto": "1"}
                if calibrated:
                    query["calibration"] = str(args.calibration)
                started = time.monotonic()
                driver.open(base + "?" + urllib.parse.urlencode(query))
                state, result = wait_for_result(driver, args.timeout)
                elapsed = time.monotonic() - started
                what = f"{short(case_model)} {scheme} {path.name}"
                if state != "done":
                    check(False, f"{what}: the page ended {state}: {result and result.get('error')}")
                    for entry in driver.console()[-20:]:
                        print(f"      console: {entry.get('message', entry)}")
                    continue
                if first_load is None:
                    first_load = {"page_ready_ms": result["page_ready_ms"], "wall_s": elapsed}
                    figures["first_load"] = first_load
                if path.name == "grace_hopper.jpg":
                    name = f"page_{short(case_model)}_{scheme}_grace_hopper.png".replace("+", "_")
                    driver.screenshot(out / name)
                gpu = result["int8_gpu"]
                runs = [("cpu reference in wasm", result["int8_cpu"])]
                if gpu is None:
                    check(args.allow_no_webgpu, f"{what}: no WebGPU in the page ({result.get('gpu_problem')})")
                else:
                    runs.append(("WebGPU", gpu))
                    browser_all_ms.append(gpu["elapsed_ms"])
                    browser_logits_ms += result["gpu_logits_ms"]
                    exact = result["bit_exact"] and all(l["differing_bytes"] == 0 for l in result["layers"])
                    bad = [f"{l['name']}: {l['differing_bytes']}" for l in result["layers"] if l["differing_bytes"]]
                    check(exact, f"{what}: every layer of the WebGPU run equals the page's CPU reference {bad or ''}")
                for name, run in runs:
                    got = bytes(run["logits"])
                    diff = sum(a != b for a, b in zip(got, expected["logits"])) + abs(len(got) - len(expected["logits"]))
                    compared += len(expected["logits"])
                    differing += diff
                    check(diff == 0, f"{what}: {name} logits equal native ({len(got)} bytes, {diff} differ)")
                    labels = [p["name"] for p in run["top"]]
                    check(labels == expected["int8"], f"{what}: {name} int8 top-5 = native {labels}")
                labels = [p["name"] for p in result["float"]]
                check(labels == expected["float"], f"{what}: float top-5 = native {labels}")
            bench = native_gpu_ms(args.mnq, case_path, scheme, lists) if timed else None
            batch1 = next((b for b in (bench or {}).get("batches", []) if b["batch"] == 1), None)
            figures["schemes"][f"{short(case_model)} {scheme}"] = {
                "images": len(case_images),
                "logit_bytes_compared": compared,
                "logit_bytes_differing": differing,
                "browser_adapter": result.get("adapter") if result else None,
                "browser_inner_product": result.get("inner_product") if result else None,
                "browser_gpu_all_layers_ms": browser_all_ms,
                "browser_gpu_logits_median_ms": statistics.median(browser_logits_ms) if browser_logits_ms else None,
                "native_adapter": bench and bench["adapter"],
                "native_inner_product": bench and bench["inner_product"],
                "native_gpu_batch1_median_ms": batch1 and batch1["median_ms"],
            }

        # The fallback inner product (plain WGSL, for browsers without dot4U8Packed), forced: still bit-exact.
        url = images[-1][0]
        query = {"model": args.model, "scheme": "tflite", "image": url, "auto": "1", "inner": "unpack"}
        driver.open(base + "?" + urllib.parse.urlencode(query))
        state, result = wait_for_result(driver, args.timeout)
        gpu = (result or {}).get("int8_gpu")
        if state != "done" or gpu is None:
            check(args.allow_no_webgpu and state == "done", f"inner=unpack: no WebGPU result ({state})")
        else:
            got, expected = bytes(gpu["logits"]), native_logits[(args.model, "tflite", url)]
            check(
                result["inner_product"] == "unpack" and result["bit_exact"] and got == expected,
                f"inner=unpack ({result['inner_product']}): bit-exact, logits equal native "
                f"({sum(a != b for a, b in zip(got, expected))} of {len(expected)} differ)",
            )

        # The ONNX file chosen as a user's own file (read in the page, not served): the same bytes as native.
        if onnx:
            url = images[0][0]
            driver.open(base + "?" + urllib.parse.urlencode({"model": args.model, "scheme": "tflite", "image": url, "auto": "1"}))
            wait_for_result(driver, args.timeout)
            driver.choose_file("#model-file", served / onnx)
            wanted = f"file:{Path(onnx).name}"
            state, result = "timeout", None
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                state, result = wait_for_result(driver, args.timeout)
                if state == "error" or (result or {}).get("model_id") == wanted:
                    break
                time.sleep(0.5)
            runs = [r for r in ((result or {}).get("int8_gpu"), (result or {}).get("int8_cpu")) if r]
            expected = native_logits[(onnx, "onnx", url)]
            check(
                state == "done" and result.get("model_id") == wanted and runs and all(bytes(r["logits"]) == expected for r in runs),
                f"an ONNX file chosen in the page runs under onnx ({state}, {result and result.get('model_id')}): "
                f"{len(runs)} runs, logits equal native",
            )

        # A truncated JPEG: the page must show an error, not hang or print results.
        truncated = (ROOT / "assets/grace_hopper.jpg").read_bytes()[:400]
        data_url = "data:image/jpeg;base64," + base64.b64encode(truncated).decode()
        query = {"model": args.model, "scheme": "tflite", "image": data_url, "auto": "1"}
        started = time.monotonic()
        driver.open(base + "?" + urllib.parse.urlencode(query))
        state, result = wait_for_result(driver, 60)
        shown = (result or {}).get("_shown_error", "")
        check(
            state == "error" and "cannot read image" in shown,
            f"a truncated JPEG shows an error ({state} after {time.monotonic() - started:.1f} s: {shown[:120]!r})",
        )
        driver.screenshot(out / "page_broken_image.png")
        driver.close()
        driver = None

        # Chromium without --enable-unsafe-webgpu offers no WebGPU adapter on Linux: the page must say so and
        # still give the CPU reference's result.
        flags = [f for f in CHROMIUM_FLAGS if f != "--enable-unsafe-webgpu"]
        driver = WebDriver(args.chromedriver, args.chromium, tmp / "profile-no-webgpu", flags)
        url = images[0][0]
        driver.open(base + "?" + urllib.parse.urlencode({"model": args.model, "scheme": "tflite", "image": url, "auto": "1"}))
        state, result = wait_for_result(driver, args.timeout)
        banner = driver.run(
            "const e = document.getElementById('nogpu'); "
            "return getComputedStyle(e).display !== 'none' ? e.textContent : ''"
        )
        check(state == "done" and "WebGPU" in banner, f"without WebGPU the page says so ({state}: {banner[:100]!r})")
        if state == "done":
            got = bytes(result["int8_cpu"]["logits"])
            check(result["int8_gpu"] is None, "without WebGPU no GPU result is shown")
            expected = native_logits.get((args.model, "tflite", url))
            if expected is not None:
                check(got == expected, "without WebGPU the CPU reference in wasm still equals native")
        driver.screenshot(out / "page_no_webgpu.png")
    finally:
        if driver:
            driver.close()
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)

    (out / "figures.json").write_text(json.dumps(figures, indent=2))
    print(f"wasm: {figures['wasm_bytes']:,} bytes, {figures['wasm_gzip_bytes']:,} gzipped")
    if "first_load" in figures:
        print(f"first load: page ready (engine, index, WebGPU device, photo) {figures['first_load']['page_ready_ms']:.0f} ms")
    for scheme, f in figures["schemes"].items():
        print(f"{scheme}: {f['logit_bytes_compared']:,} logit bytes compared, {f['logit_bytes_differing']} differ")
        browser, native = f["browser_gpu_logits_median_ms"], f["native_gpu_batch1_median_ms"]
        if browser and not native:
            print(f"{scheme}: int8 per image, logits only, batch 1: browser {browser:.1f} ms")
        if browser and native:
            print(
                f"{scheme}: int8 per image, logits only, batch 1: browser {browser:.1f} ms ({f['browser_adapter']}, "
                f"{f['browser_inner_product']}) vs native {native:.1f} ms ({f['native_adapter']}, "
                f"{f['native_inner_product']}): {browser / native:.1f}x"
            )
    print(f"{len(failures)} failures" if failures else "all browser checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
