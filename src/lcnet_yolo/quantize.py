"""int8 post-training quantization of exported detectors, for ONNX Runtime and for OpenVINO.

* :func:`quantize_onnx_int8` — ONNX Runtime static quantization (QDQ format, per-channel int8 weights, uint8
  activations) of an Ultralytics ONNX export, calibrated on training images letterboxed as Ultralytics'
  predictor does, Detect's box decoding kept in float. On top of ``quantize_static`` it rewrites every
  hardswish so that ONNX Runtime runs it on uint8 tensors (see :func:`hardsigmoid_as_lookup`): without that
  each hardswish is a dequantize, a float HardSigmoid and a quantize, and the int8 model is slower than fp32.
* :func:`quantize_openvino_int8` — Ultralytics' own OpenVINO exporter with ``int8=True`` (NNCF, calibrated
  on the ``data`` training split).
* :func:`quantize_openvino_nncf` — NNCF directly on the OpenVINO model of an ONNX export, with our own
  calibration reader and ignored scope.

``python -m lcnet_yolo.quantize --model yolov8n-pplcnet --data neon-trees`` prints fp32 and int8 latency in
ONNX Runtime and OpenVINO side by side with YOLOv8n's fp32 ONNX Runtime latency, and the mAP50-95 of the fp32
and int8 files through Ultralytics' ``val``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}


# ----------------------------------------------------------------------------------------------------------------
# Calibration data


def calibration_images(data_yaml: str | Path, count: int) -> list[Path]:
    """The first ``count`` training images (sorted by path) of a YOLO ``data.yaml``."""
    import yaml

    data_yaml = Path(data_yaml)
    spec = yaml.safe_load(data_yaml.read_text())
    root = Path(spec.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = data_yaml.parent / root
    entries = spec["train"] if isinstance(spec["train"], list) else [spec["train"]]
    files: list[Path] = []
    for entry in entries:
        path = Path(entry) if Path(entry).is_absolute() else root / entry
        if path.is_file():  # a text file listing image paths
            files += [Path(line.strip()) for line in path.read_text().splitlines() if line.strip()]
        else:
            files += [p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise FileNotFoundError(f"no training images found for calibration in {data_yaml}")
    return sorted(files)[:count]


def letterboxed(path: Path, height: int, width: int) -> np.ndarray:
    """One image as the network sees it in Ultralytics' predictor: letterboxed, RGB, NCHW float32 in 0..1."""
    import cv2
    from ultralytics.data.augment import LetterBox

    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(f"cannot read calibration image {path}")
    image = LetterBox((height, width), auto=False)(image=image)
    return np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


# ----------------------------------------------------------------------------------------------------------------
# ONNX Runtime


def decoding_nodes(model) -> list[str]:
    """Names of the ONNX nodes of Detect's box decoding (everything of the last layer but its conv branches).

    They stay in float: Detect concatenates pixel coordinates with 0..1 scores, one int8 scale cannot hold both.
    """
    heads = [n.name for n in model.graph.node if n.name.startswith("/model.")]
    if not heads:
        return []
    last = max(int(name.split("/")[1].split(".")[1]) for name in heads)
    prefix = f"/model.{last}/"
    branches = tuple(f"{prefix}{b}" for b in ("cv2", "cv3", "one2one_cv2", "one2one_cv3"))
    return [n.name for n in model.graph.node if n.name.startswith(prefix) and not n.name.startswith(branches)]


def _initializer(model, name: str) -> np.ndarray:
    from onnx import numpy_helper

    for tensor in model.graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    raise KeyError(name)


def hardsigmoid_as_lookup(model) -> int:
    """Rewrite ``DQ -> HardSigmoid -> Q`` of a QDQ model so that ONNX Runtime runs it on uint8; return how many.

    ONNX Runtime has no int8 hardswish; after its optimizer inlines ``HardSwish(x) = x * HardSigmoid(x)`` the
    quantizer leaves HardSigmoid in float, between a dequantize and a quantize: three passes over every
    feature map in float. HardSigmoid is ``clip(a*x + b, 0, 1)``, an affine map of ``c = clip(x, -b/a, (1-b)/a)``.
    ``c`` is an identity LeakyRelu (alpha 1) quantized with scale ``1/(255a)`` and zero point ``255b`` (the
    quantizer's saturation does the clipping), which ONNX Runtime fuses into one uint8 table lookup
    (QLinearLeakyRelu); the same uint8 codes, read with scale 1/255 and zero point 0, are HardSigmoid's output
    (exact up to half a code when ``255b`` is not an integer). The Mul that follows stays an int8 QLinearMul.
    """
    from onnx import helper, numpy_helper

    producers = {out: node for node in model.graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    rewritten = 0
    for node in list(model.graph.node):
        if node.op_type != "HardSigmoid":
            continue
        dq = producers.get(node.input[0])
        after = consumers.get(node.output[0], [])
        if dq is None or dq.op_type != "DequantizeLinear" or len(after) != 1 or after[0].op_type != "QuantizeLinear":
            continue
        q = after[0]
        readers = consumers.get(q.output[0], [])
        if not readers or any(r.op_type != "DequantizeLinear" for r in readers):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
        zero_type = _initializer(model, q.input[2]).dtype if len(q.input) > 2 else np.dtype(np.uint8)
        if zero_type != np.uint8 or alpha <= 0:
            continue
        tag = node.name or node.output[0]
        names = {k: f"{tag}_lookup_{k}" for k in ("clip_scale", "clip_zero", "hsig_scale", "hsig_zero")}
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(1.0 / (255.0 * alpha), np.float32), names["clip_scale"]),
                numpy_helper.from_array(np.array(round(255.0 * beta), np.uint8), names["clip_zero"]),
                numpy_helper.from_array(np.array(1.0 / 255.0, np.float32), names["hsig_scale"]),
                numpy_helper.from_array(np.array(0, np.uint8), names["hsig_zero"]),
            ]
        )
        node.op_type = "LeakyRelu"
        del node.attribute[:]
        node.attribute.append(helper.make_attribute("alpha", 1.0))
        q.input[1:] = [names["clip_scale"], names["clip_zero"]]
        for reader in readers:
            reader.input[1:] = [names["hsig_scale"], names["hsig_zero"]]
        rewritten += 1
    _drop_unused_initializers(model)
    return rewritten


def _drop_unused_initializers(model) -> None:
    used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def quantize_onnx_int8(
    fp32_onnx: str | Path,
    out: str | Path,
    calibration_images: Sequence[str | Path],
    *,
    hardswish_lookup: bool = True,
    float_stem: bool = True,
    float_nodes: Sequence[str] = (),
    per_channel: bool = True,
    op_types: Sequence[str] | None = None,
    extra_options: dict | None = None,
) -> Path:
    """ONNX Runtime static int8 quantization of an Ultralytics ONNX export; returns ``out``.

    QDQ format, per-channel int8 weights, uint8 activations, min/max calibration on ``calibration_images``
    letterboxed to the model's input size. The model is first pre-processed (``quant_pre_process``: ONNX
    Runtime's basic optimizations, which fold constants and inline HardSwish into HardSigmoid and Mul). Detect's
    box decoding and ``float_nodes`` (node names of the pre-processed model) stay in float, and with
    ``float_stem`` the convolutions that read the image (3 input channels: ONNX Runtime's fp32 kernel is faster
    there than its int8 one, and the image needs no quantize). With ``hardswish_lookup`` every HardSigmoid
    between quantized tensors becomes a uint8 table lookup (:func:`hardsigmoid_as_lookup`). Ultralytics' metadata
    is carried over so ``YOLO(out)`` loads a detector.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_onnx, out = Path(fp32_onnx), Path(out)
    images = [Path(p) for p in calibration_images]
    if not images:
        raise ValueError("quantize_onnx_int8 needs at least one calibration image")
    original = onnx.load(str(fp32_onnx))
    input_name = original.graph.input[0].name
    height, width = (d.dim_value for d in original.graph.input[0].type.tensor_type.shape.dim[2:])
    if not height or not width:
        raise ValueError(f"{fp32_onnx} has a dynamic input size; export it with a fixed imgsz (dynamic=False)")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.files = iter(images)

        def get_next(self) -> dict | None:
            path = next(self.files, None)
            return None if path is None else {input_name: letterboxed(path, height, width)}

    out.parent.mkdir(parents=True, exist_ok=True)
    prepared = out.with_suffix(".prep.onnx")
    try:
        quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared)).graph
        stem = [n.name for n in graph.node if float_stem and n.op_type == "Conv" and input_name in n.input]
        exclude = decoding_nodes(onnx.load(str(prepared))) + stem + list(float_nodes)
        quantize_static(
            str(prepared),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(op_types) if op_types else None,
            nodes_to_exclude=exclude,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            extra_options=extra_options or {},
        )
    finally:
        prepared.unlink(missing_ok=True)
    quantized = onnx.load(str(out))
    if hardswish_lookup:
        hardsigmoid_as_lookup(quantized)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(original.metadata_props)
    onnx.save(quantized, str(out))
    return out


# ----------------------------------------------------------------------------------------------------------------
# Timing


def onnxruntime_session(path: str | Path, threads: int, spin: bool = False):
    """A CPU session with ``threads`` intra-op threads, all graph optimizations on. Without ``spin`` the worker
    threads sleep between ops (a spinning idle session steals the cores of the next one when sessions are timed
    in turn, but every op then pays a wake-up); with ``spin`` they spin during a run (ONNX Runtime's default)
    and stop when it returns (``session.force_spinning_stop``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if spin:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnxruntime_runner(path: str | Path, threads: int, spin: bool = False) -> Callable[[], object]:
    """A function that runs the model once in ONNX Runtime on a fixed random input."""
    session = onnxruntime_session(path, threads, spin)
    inp = session.get_inputs()[0]
    feed = {inp.name: np.random.default_rng(0).random(inp.shape, dtype=np.float32)}
    return lambda: session.run(None, feed)


def openvino_runner(path: str | Path, threads: int) -> Callable[[], object]:
    """A function that runs the model (ONNX file, OpenVINO IR file or Ultralytics ``*_openvino_model`` folder)
    once on OpenVINO's CPU plugin: ``threads`` threads, latency hint, float parts in fp32 (not bf16), synchronous
    requests, on a fixed random input."""
    import openvino as ov

    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    compiled = ov.Core().compile_model(str(_openvino_xml(path)), "CPU", config)
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).random(list(compiled.input(0).shape), dtype=np.float32)
    return lambda: request.infer({0: x})


def time_interleaved(
    runners: dict[str, Callable[[], object]], warmup: int, repeats: int
) -> dict[str, dict[str, float]]:
    """Per runner, the median and the minimum wall-clock milliseconds per call (``ms``, ``min_ms``) and the median
    CPU milliseconds of this process per call (``cpu_ms``, all threads together): ``warmup`` untimed calls each,
    then ``repeats`` rounds that call every runner once, the first runner rotating from round to round, so a
    drift of the machine hits every runner alike. CPU time does not count the time other jobs hold the cores,
    wall time does."""
    keys = list(runners)
    for key in keys:
        for _ in range(warmup):
            runners[key]()
    wall: dict[str, list[float]] = {key: [] for key in keys}
    cpu: dict[str, list[float]] = {key: [] for key in keys}
    for r in range(repeats):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            start, start_cpu = time.perf_counter(), time.process_time()
            runners[key]()
            cpu[key].append((time.process_time() - start_cpu) * 1e3)
            wall[key].append((time.perf_counter() - start) * 1e3)
    return {
        key: {"ms": statistics.median(wall[key]), "min_ms": min(wall[key]), "cpu_ms": statistics.median(cpu[key])}
        for key in keys
    }


# ----------------------------------------------------------------------------------------------------------------
# OpenVINO


def _openvino_xml(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.xml"))
        if not found:
            raise FileNotFoundError(f"no OpenVINO .xml model in {path}")
        return found[0]
    return path


@contextlib.contextmanager
def quiet():
    """Silence Ultralytics' logger and stdout (exports and validation print a lot)."""
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        LOGGER.setLevel(level)


def quantize_openvino_int8(model, data: str | Path, imgsz: int = 640, split: str = "train") -> Path:
    """Ultralytics' own OpenVINO int8 export (``format=openvino int8=True``: NNCF, mixed preset, Detect's
    decoding and every Sigmoid kept in float) of a ``.pt`` file or ``YOLO`` object, calibrated on all the
    ``split`` images of ``data``; returns the ``*_int8_openvino_model`` folder, which ``YOLO(folder)`` loads."""
    from ultralytics import YOLO

    import lcnet_yolo  # noqa: F401  (registers our layers)

    with quiet():
        yolo = model if isinstance(model, YOLO) else YOLO(str(model))
        folder = yolo.export(
            format="openvino", int8=True, data=str(data), imgsz=imgsz, split=split, batch=1, dynamic=False
        )
    return Path(folder)


def write_openvino_folder(model, folder: str | Path, metadata: dict[str, str]) -> Path:
    """Save an OpenVINO model as an Ultralytics ``*_openvino_model`` folder (IR files and metadata.yaml)."""
    import openvino as ov
    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(folder / "model.xml"), compress_to_fp16=False)
    (folder / "metadata.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))
    return folder


def quantize_openvino_nncf(
    fp32_onnx: str | Path,
    folder: str | Path,
    calibration_images: Sequence[str | Path],
    *,
    preset: str = "performance",
    fast_bias_correction: bool = True,
    keep_float: Iterable[str] = (),
) -> Path:
    """NNCF post-training int8 quantization of an ONNX export, converted to OpenVINO; returns an Ultralytics
    ``*_openvino_model`` folder (``YOLO(folder)`` loads it).

    Calibrated on ``calibration_images`` (all of them) letterboxed to the model's input size. ``preset``:
    ``performance`` (symmetric activations and weights) or ``mixed`` (asymmetric activations). Detect's box
    decoding and the ``keep_float`` node names stay in float.
    """
    import nncf
    import onnx
    import openvino as ov

    images = [Path(p) for p in calibration_images]
    if not images:
        raise ValueError("quantize_openvino_nncf needs at least one calibration image")
    if preset not in ("performance", "mixed"):
        raise ValueError(f"preset must be 'performance' or 'mixed', not {preset!r}")
    onnx_model = onnx.load(str(fp32_onnx))
    height, width = (d.dim_value for d in onnx_model.graph.input[0].type.tensor_type.shape.dim[2:])
    model = ov.Core().read_model(str(fp32_onnx))
    names = {op.get_friendly_name() for op in model.get_ops()}
    float_names = [n for n in [*decoding_nodes(onnx_model), *keep_float] if n in names]
    quantized = nncf.quantize(
        model,
        nncf.Dataset(images, lambda path: letterboxed(path, height, width)),
        preset=nncf.QuantizationPreset.PERFORMANCE if preset == "performance" else nncf.QuantizationPreset.MIXED,
        subset_size=len(images),
        fast_bias_correction=fast_bias_correction,
        ignored_scope=nncf.IgnoredScope(names=float_names, validate=False) if float_names else None,
    )
    metadata = {p.key: p.value for p in onnx_model.metadata_props}
    return write_openvino_folder(quantized, folder, metadata)


# ----------------------------------------------------------------------------------------------------------------
# Accuracy


def val_map(path: str | Path, data: str | Path, imgsz: int = 640) -> dict[str, float]:
    """mAP50 and mAP50-95 of an exported model (ONNX file or OpenVINO folder) through Ultralytics' ``val``."""
    from ultralytics import YOLO

    with quiet():
        metrics = YOLO(str(path), task="detect").val(
            data=str(data), imgsz=imgsz, batch=1, device="cpu", plots=False, verbose=False
        )
    return {"map50": float(metrics.box.map50), "map50_95": float(metrics.box.map)}


# ----------------------------------------------------------------------------------------------------------------
# Side-by-side measurement: ``python -m lcnet_yolo.quantize``


def load_yolo(model: str | Path, nc: int | None = None):
    """A ``YOLO`` object from a ``.pt`` file or a model name/YAML (random init; ``nc`` classes if given)."""
    import tempfile

    import yaml
    from ultralytics import YOLO
    from ultralytics.nn.tasks import yaml_model_load

    import lcnet_yolo  # noqa: F401  (registers our layers and YAMLs)

    text = str(model)
    with quiet():
        if text.endswith(".pt"):
            if not Path(text).is_file():
                raise FileNotFoundError(f"weights not found: {text}")
            return YOLO(text)
        name = text if text.endswith((".yaml", ".yml")) else f"{text}.yaml"
        if nc is None:
            return YOLO(name)
        spec = yaml_model_load(name)
        spec["nc"] = nc
        folder = Path(tempfile.mkdtemp(prefix="lcnet-yolo-quantize-"))
        path = folder / Path(name).name  # same file name: Ultralytics reads the scale from it
        path.write_text(yaml.safe_dump({k: v for k, v in spec.items() if k != "yaml_file"}, sort_keys=False))
        return YOLO(str(path))


def export_onnx(yolo, imgsz: int, dest: str | Path) -> Path:
    """Ultralytics' ONNX export (fixed input size, onnxslim on), moved to ``dest``."""
    dest = Path(dest)
    with quiet():
        path = Path(yolo.export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False, verbose=False))
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, dest)
    return dest


def _move_folder(source: Path, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(dest))
    return dest


def _int8_files(model: str | Path, yolo, data_yaml: Path, imgsz: int, images: Sequence[Path], out: Path) -> dict:
    """fp32 ONNX export, its ONNX Runtime int8 copy and Ultralytics' OpenVINO int8 export, all at ``imgsz``."""
    stem = Path(str(model)).stem
    fp32 = export_onnx(yolo, imgsz, out / f"{stem}-fp32-{imgsz}.onnx")
    ort_int8 = quantize_onnx_int8(fp32, out / f"{stem}-int8-{imgsz}.onnx", images)
    folder = quantize_openvino_int8(yolo, data_yaml, imgsz)
    ov_int8 = _move_folder(folder, out / f"{stem}-int8-{imgsz}_openvino_model")
    return {"fp32": fp32, "ort_int8": ort_int8, "ov_int8": ov_int8}


def measure(
    models: Sequence[str | Path],
    data: str | Path,
    out: str | Path,
    *,
    imgsz: int = 640,
    val_imgsz: int = 416,
    calib: int = 64,
    threads: int = 2,
    repeats: int = 30,
    warmup: int = 5,
    baseline: str | Path = "yolov8n",
    val: bool = True,
    ort_spin: bool = False,
) -> dict:
    """fp32 and int8 latency (ONNX Runtime, OpenVINO) of every model at ``imgsz``, timed side by side with the
    baseline's fp32 ONNX Runtime latency in one interleaved loop; with ``val`` and trained (``.pt``) models, the
    mAP of the fp32 ONNX export and both int8 files at ``val_imgsz`` through Ultralytics' ``val``."""
    from lcnet_yolo.data import resolve_data

    out = Path(out)
    data_yaml = Path(resolve_data(str(data)))
    if not data_yaml.is_file():
        raise FileNotFoundError(f"data not found: {data}")
    images = calibration_images(data_yaml, calib)
    results: dict = {
        "settings": {
            "models": [str(m) for m in models],
            "data": str(data_yaml),
            "imgsz": imgsz,
            "val_imgsz": val_imgsz,
            "calib_images": len(images),
            "threads": threads,
            "repeats": repeats,
            "warmup": warmup,
            "baseline": str(baseline),
            "ort_spin": ort_spin,
        },
        "latency_ms": {},
        "map50_95": {},
    }
    runners: dict[str, Callable[[], object]] = {}
    nc = None
    for model in models:
        yolo = load_yolo(model)
        nc = nc or len(yolo.names)
        files = _int8_files(model, yolo, data_yaml, imgsz, images, out)
        key = str(model)
        runners[f"{key}|ort|fp32"] = onnxruntime_runner(files["fp32"], threads, ort_spin)
        runners[f"{key}|ort|int8"] = onnxruntime_runner(files["ort_int8"], threads, ort_spin)
        runners[f"{key}|openvino|fp32"] = openvino_runner(files["fp32"], threads)
        runners[f"{key}|openvino|int8"] = openvino_runner(files["ov_int8"], threads)
        if val and str(model).endswith(".pt"):
            files = _int8_files(model, yolo, data_yaml, val_imgsz, images, out / "val")
            results["map50_95"][key] = {
                tag: val_map(path, data_yaml, val_imgsz)["map50_95"] for tag, path in files.items()
            }
    base = load_yolo(baseline, None if str(baseline).endswith(".pt") else nc)
    base_onnx = export_onnx(base, imgsz, out / f"{Path(str(baseline)).stem}-fp32-{imgsz}.onnx")
    runners[f"{baseline}|ort|fp32"] = onnxruntime_runner(base_onnx, threads, ort_spin)
    results["latency_ms"] = time_interleaved(runners, warmup, repeats)
    out.mkdir(parents=True, exist_ok=True)
    import json

    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def report(results: dict) -> str:
    """Markdown tables of :func:`measure`'s results: latency side by side, then mAP."""
    s = results["settings"]
    lat = results["latency_ms"]
    base = lat[f"{s['baseline']}|ort|fp32"]
    lines = [
        f"Batch 1 at {s['imgsz']} px, {s['threads']} threads, {s['repeats']} interleaved rounds after "
        f"{s['warmup']} warm-up runs: median (min) wall-clock ms, and median CPU ms of the process per run (all "
        f"threads; not inflated by other jobs holding the cores). int8 calibrated on {s['calib_images']} training "
        f"images. ONNX Runtime worker threads {'spin during a run' if s.get('ort_spin') else 'do not spin'}. "
        f"{s['baseline']} fp32 ONNX Runtime: {base['ms']:.1f} ({base['min_ms']:.1f}) ms wall, "
        f"{base['cpu_ms']:.1f} ms CPU.",
        "",
        f"| Model | Backend | fp32 ms | int8 ms | int8 / fp32 | int8 / {s['baseline']} fp32 ORT "
        "| fp32 CPU ms | int8 CPU ms | int8 / fp32 (CPU) | int8 / " + f"{s['baseline']} (CPU) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in s["models"]:
        for backend, label in (("ort", "ONNX Runtime"), ("openvino", "OpenVINO")):
            fp32, int8 = lat[f"{model}|{backend}|fp32"], lat[f"{model}|{backend}|int8"]
            lines.append(
                f"| {model} | {label} | {fp32['ms']:.1f} ({fp32['min_ms']:.1f}) "
                f"| {int8['ms']:.1f} ({int8['min_ms']:.1f}) "
                f"| {int8['ms'] / fp32['ms']:.2f}× "
                f"| {int8['ms'] / base['ms']:.2f}× | {fp32['cpu_ms']:.1f} | {int8['cpu_ms']:.1f} "
                f"| {int8['cpu_ms'] / fp32['cpu_ms']:.2f}× | {int8['cpu_ms'] / base['cpu_ms']:.2f}× |"
            )
    if results["map50_95"]:
        lines += [
            "",
            f"mAP50-95 at {s['val_imgsz']} px (Ultralytics `val` on the exported files; Δ in points vs fp32):",
            "",
            "| Model | fp32 ONNX | int8 ONNX Runtime (Δ) | int8 OpenVINO (Δ) |",
            "|---|---|---|---|",
        ]
        for model, m in results["map50_95"].items():
            d_ort, d_ov = 100 * (m["ort_int8"] - m["fp32"]), 100 * (m["ov_int8"] - m["fp32"])
            lines.append(
                f"| {model} | {m['fp32']:.3f} | {m['ort_int8']:.3f} ({d_ort:+.1f}) | {m['ov_int8']:.3f} ({d_ov:+.1f}) |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lcnet_yolo.quantize",
        description="int8 (ONNX Runtime QDQ and OpenVINO/NNCF) vs fp32: latency side by side and mAP.",
    )
    parser.add_argument("--model", nargs="+", required=True, help="trained .pt files (mAP measured) or model names")
    parser.add_argument("--data", default="neon-trees", help="data.yaml or 'neon-trees' (calibration: train split)")
    parser.add_argument("--out", default="runs/int8", help="folder for the exported files and results.json")
    parser.add_argument("--imgsz", type=int, default=640, help="latency input size")
    parser.add_argument("--val-imgsz", type=int, default=416, help="mAP input size (the training size)")
    parser.add_argument("--calib", type=int, default=64, help="number of calibration images")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--baseline", default="yolov8n", help="fp32 ONNX Runtime reference (name or .pt)")
    parser.add_argument("--no-val", action="store_true", help="skip the mAP measurements")
    parser.add_argument(
        "--ort-spin", action="store_true", help="ONNX Runtime worker threads spin during a run (its default)"
    )
    args = parser.parse_args(argv)
    for name in (*args.model, args.baseline):
        if str(name).endswith(".pt") and not Path(name).is_file():
            print(f"error: weights not found: {name}", file=sys.stderr)
            return 2
    if min(args.imgsz, args.val_imgsz, args.calib, args.threads, args.repeats) < 1 or args.warmup < 0:
        print("error: --imgsz, --val-imgsz, --calib, --threads and --repeats must be positive", file=sys.stderr)
        return 2
    try:
        results = measure(
            args.model,
            args.data,
            args.out,
            imgsz=args.imgsz,
            val_imgsz=args.val_imgsz,
            calib=args.calib,
            threads=args.threads,
            repeats=args.repeats,
            warmup=args.warmup,
            baseline=args.baseline,
            val=not args.no_val,
            ort_spin=args.ort_spin,
        )
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
