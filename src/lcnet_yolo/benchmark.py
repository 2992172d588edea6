"""``lcnet-yolo benchmark``: our models side by side with Ultralytics' YOLOv8n, YOLO11n and YOLO26n on this CPU.

One run measures, for every model built from its YAML (random init, 80 classes: the architecture as published):

* parameters and GFLOPs (Ultralytics' thop count) at 640;
* batch-1 latency at each ``imgsz`` in PyTorch eager (BatchNorm folded), ONNX Runtime and OpenVINO (same ONNX
  file), the median and interquartile range of ``repeats`` runs after ``warmup`` runs; every backend of every
  model is timed once per round, the rounds rotate the order, so a drift of the machine hits all models alike;
* achieved GFLOP/s (model FLOPs / ONNX Runtime latency) next to the peak of a large sgemm (PyTorch and ONNX
  Runtime's MLAS, the better one) at the same thread count;
* training throughput (images/s of forward + loss + backward + SGD step on random batches, interleaved rounds).

Then, at one equal training budget (same data, epochs, imgsz, batch, optimizer, lr0, seed; all from scratch), it
trains every model (or ``train_models``) with Ultralytics, measures mAP50 and mAP50-95 on the validation split,
exports the trained model to ONNX, makes an int8 copy (ONNX Runtime static quantization, calibrated on training
images) and reports the fp32 and int8 latency at 640 and mAP of both ONNX files through Ultralytics' own ``val``.

Everything is written to ``out``: ``results.json`` (settings, machine, raw timings), ``results.csv``,
``results.md`` and ``results.png`` (latency vs mAP, bubble area = parameters). Ratios are to ``baseline``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import math
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

OURS = ("yolov8n-pplcnet-plain", "yolov8n-pplcnet")
ULTRALYTICS = ("yolov8n", "yolo11n", "yolo26n")
DEFAULT_MODELS = ULTRALYTICS + OURS
ABLATIONS = (
    "yolov8n-pplcnet-abl-plain-regmax1",
    "yolov8n-pplcnet-abl-dfl",
    "yolov8n-pplcnet-abl-densecls",
    "yolov8n-pplcnet-abl-relu",
    "yolov8n-pplcnet-abl-leaky",
    "yolov8n-pplcnet-abl-se-off",
    "yolov8n-pplcnet-abl-k3",
    "yolov8n-pplcnet-abl-neck-k3",
    "yolov8n-pplcnet-abl-n2",
    "yolov8n-pplcnet-abl-x0.75",
    "yolov8n-pplcnet-abl-x1.0",
)
BACKENDS = ("torch", "onnxruntime", "openvino")


@dataclass
class BenchmarkSettings:
    """What one benchmark run measures; the defaults are the documented full run (see BENCHMARKS.md)."""

    out: Path = Path("runs/benchmark")
    models: tuple[str, ...] = DEFAULT_MODELS
    baseline: str = "yolov8n"
    imgsz: tuple[int, ...] = (320, 640)
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    warmup: int = 5
    repeats: int = 30
    backends: tuple[str, ...] = BACKENDS
    sgemm_size: int = 2048
    throughput_batch: int = 8
    throughput_iters: int = 5  # interleaved rounds
    # equal training budget for mAP
    data: str | None = "neon-trees"
    train_models: tuple[str, ...] | None = None  # None: train every model
    # more Ultralytics train arguments, the same for every model: AdamW at Ultralytics' default lr0
    train_args: dict = field(default_factory=lambda: {"optimizer": "AdamW", "lr0": 0.01})
    epochs: int = 40
    train_imgsz: int = 416
    batch: int = 4
    seed: int = 0
    workers: int = 2
    int8: bool = True
    deploy_imgsz: int = 640
    calib_images: int = 64
    quick: bool = False

    def __post_init__(self):
        self.out = Path(self.out)
        self.models = tuple(self.models)
        self.imgsz = tuple(int(s) for s in self.imgsz)
        unknown = sorted(set(self.backends) - set(BACKENDS))
        if unknown:
            raise ValueError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
        if self.threads < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError("threads and repeats must be >= 1 and warmup >= 0")
        if not self.models:
            raise ValueError("no models to benchmark")
        if self.train_models is not None:
            self.train_models = tuple(self.train_models)
            extra = sorted(set(self.train_models) - set(self.models))
            if extra:
                raise ValueError(f"--train-models must be among the benchmarked models, not {', '.join(extra)}")


def quick_settings(out: str | Path, models: Sequence[str] = DEFAULT_MODELS) -> BenchmarkSettings:
    """A CI-sized run: synthetic data, imgsz 64, one epoch, three timed repeats."""
    return BenchmarkSettings(
        out=Path(out),
        models=tuple(models),
        imgsz=(64,),
        warmup=1,
        repeats=3,
        sgemm_size=512,
        throughput_batch=2,
        throughput_iters=1,
        data=None,
        epochs=1,
        train_imgsz=64,
        batch=4,
        workers=0,
        deploy_imgsz=64,
        calib_images=4,
        quick=True,
    )


# ----------------------------------------------------------------------------------------------------------------
# Models


def model_yaml(name: str) -> str:
    """The YAML a benchmark model name stands for: ``yolov8n`` -> ``yolov8n.yaml`` (ours resolve from the package)."""
    return name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"


@contextlib.contextmanager
def _quiet():
    """Silence Ultralytics' logger and stdout for the duration (exports and builds print a lot)."""
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        LOGGER.setLevel(level)


def build(name: str):
    """An Ultralytics ``YOLO`` object built from the model's YAML (random init)."""
    from ultralytics import YOLO

    import lcnet_yolo  # noqa: F401  (registers our layers and YAMLs)

    with _quiet():
        return YOLO(model_yaml(name))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def gflops(model: nn.Module, imgsz: int) -> float:
    """GFLOPs at ``imgsz`` x ``imgsz`` as Ultralytics reports them (thop, 2 FLOPs per multiply-add)."""
    from ultralytics.utils.torch_utils import get_flops

    return float(get_flops(model, imgsz))


def export_onnx(yolo, imgsz: int, dest: Path) -> Path:
    """Export with Ultralytics (opset default, onnxslim on) and move the file to ``dest``."""
    with _quiet():
        path = Path(yolo.export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False, verbose=False))
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, dest)
    return dest


# ----------------------------------------------------------------------------------------------------------------
# Runners and timing


def torch_runner(model: nn.Module, imgsz: int) -> Callable[[], None]:
    x = torch.rand(1, 3, imgsz, imgsz)

    def run():
        with torch.inference_mode():
            model(x)

    return run


def onnxruntime_runner(path: Path, threads: int) -> Callable[[], None]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spinning worker threads of one session steal the cores of the next one when models are interleaved.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    feed = {inp.name: np.random.default_rng(0).random(inp.shape, dtype=np.float32)}
    return lambda: session.run(None, feed)


def openvino_runner(path: Path, threads: int) -> Callable[[], None]:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        str(path),
        "CPU",
        {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"},
    )
    request = compiled.create_infer_request()
    shape = list(compiled.input(0).shape)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    return lambda: request.infer({0: x})


def time_interleaved(runners: dict[str, Callable[[], None]], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Milliseconds per call of every runner: ``warmup`` untimed calls each, then ``repeats`` rounds that call every
    runner once, the starting runner rotating from round to round."""
    keys = list(runners)
    for key in keys:
        for _ in range(warmup):
            runners[key]()
    samples: dict[str, list[float]] = {key: [] for key in keys}
    for r in range(repeats):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            start = time.perf_counter()
            runners[key]()
            samples[key].append((time.perf_counter() - start) * 1e3)
    return samples


def summarize(samples: list[float]) -> dict[str, float]:
    """Median and interquartile range (ms)."""
    if len(samples) >= 2:
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    else:
        q1 = q3 = samples[0]
    return {"median": statistics.median(samples), "iqr": q3 - q1}


def sgemm_peak_gflops(size: int, threads: int, repeats: int = 10) -> dict[str, float]:
    """Peak fp32 GFLOP/s of this machine: the best of ``repeats`` size x size matrix products, in PyTorch and in
    ONNX Runtime (MLAS, the GEMM behind its convolutions), at ``threads`` threads."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    torch.set_num_threads(threads)
    a, b = torch.rand(size, size), torch.rand(size, size)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "sgemm",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])],
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"a": a.numpy(), "b": b.numpy()}
    runners = {"torch": lambda: torch.mm(a, b), "onnxruntime": lambda: session.run(None, feed)}
    peaks = {}
    for name, run in runners.items():
        run()
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
        peaks[name] = 2 * size**3 / best / 1e9
    return peaks


def train_throughput(names: Sequence[str], imgsz: int, batch: int, rounds: int, nc: int = 1) -> dict[str, float]:
    """Training images/s of each model: forward, Ultralytics' loss, backward and an SGD step on one random batch;
    ``batch`` / median step time over ``rounds`` interleaved rounds after two warm-up steps each."""
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    g = torch.Generator().manual_seed(0)
    boxes_per_image = 4
    n = batch * boxes_per_image
    data = {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=g),
        "batch_idx": torch.arange(batch).repeat_interleave(boxes_per_image).float(),
        "cls": torch.zeros(n, 1),
        "bboxes": torch.cat([0.2 + 0.6 * torch.rand(n, 2, generator=g), 0.05 + 0.2 * torch.rand(n, 2, generator=g)], 1),
    }

    def make_step(name: str) -> Callable[[], None]:
        with _quiet():
            model = DetectionModel(model_yaml(name), nc=nc, verbose=False)
        model.args = get_cfg()
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def step():
            optimizer.zero_grad()
            loss, _ = model.loss(data)
            loss.sum().backward()
            optimizer.step()

        return step

    steps = {name: make_step(name) for name in names}
    samples = time_interleaved(steps, warmup=2, repeats=rounds)
    return {name: batch / (statistics.median(ms) / 1e3) for name, ms in samples.items()}


# ----------------------------------------------------------------------------------------------------------------
# Training, int8


def resolve_dataset(settings: BenchmarkSettings) -> Path:
    """The data.yaml to train on: a synthetic set in quick mode, else ``lcnet_yolo.data.resolve_data(data)``."""
    from lcnet_yolo import data as datasets

    if settings.quick or settings.data is None:
        return datasets.make_synthetic_dataset(settings.out / "data", n_train=8, n_val=4, imgsz=settings.train_imgsz)
    if Path(settings.data).suffix in {".yaml", ".yml"} and Path(settings.data).is_file():
        return Path(settings.data)
    resolve = getattr(datasets, "resolve_data", None)
    if resolve is None:
        raise RuntimeError(f"dataset {settings.data!r} needs lcnet_yolo.data.resolve_data, which this install lacks")
    return Path(resolve(settings.data))


def train(name: str, data_yaml: Path, settings: BenchmarkSettings) -> dict:
    """Train from scratch at the equal budget with Ultralytics; return mAPs of the final weights and timings."""
    yolo = build(name)
    start = time.perf_counter()
    with _quiet():
        metrics = yolo.train(
            data=str(data_yaml),
            epochs=settings.epochs,
            imgsz=settings.train_imgsz,
            batch=settings.batch,
            nbs=settings.batch,  # one optimizer step per batch (nbs=64 would accumulate 16 batches of 4)
            seed=settings.seed,
            deterministic=True,
            workers=settings.workers,
            device="cpu",
            pretrained=False,
            amp=False,
            val=False,  # validate once, after the last epoch: the same for every model, and cheaper
            plots=False,
            project=str((settings.out / "train").resolve()),
            name=name,
            exist_ok=True,
            verbose=False,
            **settings.train_args,
        )
    seconds = time.perf_counter() - start
    weights = Path(yolo.trainer.best if Path(yolo.trainer.best).exists() else yolo.trainer.last)
    return {
        "weights": str(weights),
        "train_s": seconds,
        "map50": float(metrics.box.map50),
        "map50_95": float(metrics.box.map),
    }


def calibration_images(data_yaml: Path, count: int) -> list[Path]:
    """The first ``count`` training images (sorted) of a YOLO data.yaml."""
    import yaml

    spec = yaml.safe_load(Path(data_yaml).read_text())
    root = Path(spec.get("path") or Path(data_yaml).parent)
    if not root.is_absolute():
        root = Path(data_yaml).parent / root
    train_dirs = spec["train"] if isinstance(spec["train"], list) else [spec["train"]]
    files: list[Path] = []
    for entry in train_dirs:
        path = Path(entry) if Path(entry).is_absolute() else root / entry
        if path.is_file():  # a list of image paths
            files += [Path(line.strip()) for line in path.read_text().splitlines() if line.strip()]
        else:
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".tif", ".bmp"})
    if not files:
        raise RuntimeError(f"no training images found for calibration in {data_yaml}")
    return sorted(files)[:count]


def decoding_nodes(model) -> list[str]:
    """Names of the ONNX nodes of Detect's box decoding (everything of the last layer but its conv branches).

    They stay in float: Detect concatenates pixel coordinates with 0..1 scores, one int8 scale cannot hold both.
    """
    heads = [n.name for n in model.graph.node if n.name.startswith("/model.")]
    last = max(int(name.split("/")[1].split(".")[1]) for name in heads)
    prefix = f"/model.{last}/"
    branches = tuple(f"{prefix}{b}" for b in ("cv2", "cv3", "one2one_cv2", "one2one_cv3"))
    return [n.name for n in model.graph.node if n.name.startswith(prefix) and not n.name.startswith(branches)]


def quantize_int8(fp32: Path, int8: Path, images: Sequence[Path], op_types: Sequence[str] | None = None) -> Path:
    """ONNX Runtime static int8 quantization (QDQ, per-channel int8 weights, uint8 activations) of all the ops ORT
    has int8 kernels for (or of ``op_types``), Detect's box decoding excepted, calibrated on ``images``
    letterboxed as Ultralytics' predictor does; Ultralytics' metadata is carried over so that ``YOLO(int8)``
    loads it as a detector."""
    import cv2
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from ultralytics.data.augment import LetterBox

    model = onnx.load(str(fp32))
    input_name = model.graph.input[0].name
    height, width = (d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[2:])
    letterbox = LetterBox((height, width), auto=False)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.files = iter(images)

        def get_next(self):
            path = next(self.files, None)
            if path is None:
                return None
            image = letterbox(image=cv2.imread(str(path)))
            x = image[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
            return {input_name: np.ascontiguousarray(x)}

    prepared = int8.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(int8),
        Reader(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=op_types,
        nodes_to_exclude=decoding_nodes(onnx.load(str(prepared))),
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    prepared.unlink()
    quantized = onnx.load(str(int8))
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    onnx.save(quantized, str(int8))
    return int8


def val_onnx(path: Path, data_yaml: Path, imgsz: int) -> dict:
    """mAP50 and mAP50-95 of an exported file through Ultralytics' own validator."""
    from ultralytics import YOLO

    with _quiet():
        metrics = YOLO(str(path), task="detect").val(
            data=str(data_yaml), imgsz=imgsz, batch=1, device="cpu", plots=False, verbose=False
        )
    return {"map50": float(metrics.box.map50), "map50_95": float(metrics.box.map)}


# ----------------------------------------------------------------------------------------------------------------
# The run


def machine_info(threads: int) -> dict:
    """CPU model, cores and library versions."""
    import onnxruntime
    import ultralytics

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "ultralytics": ultralytics.__version__,
        "numpy": np.__version__,
    }
    with contextlib.suppress(ImportError):
        import openvino

        info["openvino"] = openvino.__version__
    return info


def _log(message: str) -> None:
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_benchmark(settings: BenchmarkSettings) -> dict:
    """Run every measurement of ``settings``, write results.{json,csv,md,png} to ``settings.out``, return them."""
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(settings.threads)
    backends = list(settings.backends)
    if "openvino" in backends:
        try:
            import openvino  # noqa: F401
        except ImportError:
            backends.remove("openvino")
    rows = {name: {"model": name} for name in settings.models}
    raw: dict[str, list[float]] = {}
    started = time.time()
    # the machine may be shared: the peak is the best of one measurement before and one after the latency runs
    peaks = [sgemm_peak_gflops(settings.sgemm_size, settings.threads)]

    # 1. architecture: params, GFLOPs, latency of the 80-class models as their YAMLs define them
    for imgsz in settings.imgsz:
        runners = {}
        for name in settings.models:
            yolo = build(name)
            if imgsz == settings.imgsz[-1]:
                rows[name]["params"] = count_params(yolo.model)
                rows[name]["gflops_640"] = gflops(yolo.model, 640)
            onnx_path = export_onnx(yolo, imgsz, out / "onnx" / f"{name}-{imgsz}.onnx")
            if "torch" in backends:
                with _quiet():  # Ultralytics' fuse() folds our PP-LCNet units' BatchNorms too (nn/layers.py)
                    fused = build(name).model.eval().fuse(verbose=False)
                runners[f"{name}|torch|{imgsz}"] = torch_runner(fused, imgsz)
            if "onnxruntime" in backends:
                runners[f"{name}|onnxruntime|{imgsz}"] = onnxruntime_runner(onnx_path, settings.threads)
            if "openvino" in backends:
                runners[f"{name}|openvino|{imgsz}"] = openvino_runner(onnx_path, settings.threads)
        _log(f"timing {len(runners)} model/backend pairs at {imgsz} px, {settings.repeats} interleaved rounds")
        for key, samples in time_interleaved(runners, settings.warmup, settings.repeats).items():
            name, backend, size = key.split("|")
            raw[key] = samples
            stats = summarize(samples)
            rows[name][f"{backend}_{size}_ms"] = stats["median"]
            rows[name][f"{backend}_{size}_iqr_ms"] = stats["iqr"]
        del runners

    peaks.append(sgemm_peak_gflops(settings.sgemm_size, settings.threads))
    peak_by_library = {lib: max(p[lib] for p in peaks) for lib in peaks[0]}
    peak = max(peak_by_library.values())
    ref_size = 640 if 640 in settings.imgsz else settings.imgsz[-1]
    for row in rows.values():
        ms = row.get(f"onnxruntime_{ref_size}_ms")
        if ms:
            flops = row["gflops_640"] * (ref_size / 640) ** 2
            row["achieved_gflops_per_s"] = flops / (ms / 1e3)
            row["peak_fraction"] = row["achieved_gflops_per_s"] / peak
    _log(f"sgemm peak {peak:.1f} GFLOP/s on {settings.threads} threads ({peak_by_library})")

    # 2. training throughput
    throughput = train_throughput(
        settings.train_models or settings.models,
        settings.train_imgsz,
        settings.throughput_batch,
        settings.throughput_iters,
    )
    for name, images_per_s in throughput.items():
        rows[name]["train_img_per_s"] = images_per_s
    _log("training throughput done")

    # 3. equal-budget training, mAP, int8 deployment
    data_yaml = None
    if settings.epochs > 0:
        data_yaml = resolve_dataset(settings)
        deploy = {}
        for name in settings.train_models or settings.models:
            _log(f"training {name}: {settings.epochs} epochs at {settings.train_imgsz} px, batch {settings.batch}")
            result = train(name, data_yaml, settings)
            rows[name].update({k: v for k, v in result.items() if k != "weights"})
            if settings.int8:
                deploy[name] = Path(result["weights"])
        if deploy:
            images = calibration_images(data_yaml, settings.calib_images)
            runners = {}
            for name, weights in deploy.items():
                _log(f"int8 export of {name}")
                from ultralytics import YOLO

                trained = YOLO(str(weights))
                fp32_val = export_onnx(trained, settings.train_imgsz, out / "deploy" / f"{name}-fp32-val.onnx")
                int8_val = quantize_int8(fp32_val, out / "deploy" / f"{name}-int8-val.onnx", images)
                for tag, path in (("fp32", fp32_val), ("int8", int8_val)):
                    scores = val_onnx(path, data_yaml, settings.train_imgsz)
                    rows[name][f"onnx_{tag}_map50"] = scores["map50"]
                    rows[name][f"onnx_{tag}_map50_95"] = scores["map50_95"]
                size = settings.deploy_imgsz
                if size == settings.train_imgsz:
                    fp32, int8 = fp32_val, int8_val
                else:
                    fp32 = export_onnx(trained, size, out / "deploy" / f"{name}-fp32-{size}.onnx")
                    int8 = quantize_int8(fp32, out / "deploy" / f"{name}-int8-{size}.onnx", images)
                runners[f"{name}|fp32"] = onnxruntime_runner(fp32, settings.threads)
                runners[f"{name}|int8"] = onnxruntime_runner(int8, settings.threads)
                if "openvino" in backends:
                    runners[f"{name}|int8_openvino"] = openvino_runner(int8, settings.threads)
            _log(f"timing {len(runners)} trained fp32/int8 models at {settings.deploy_imgsz} px")
            for key, samples in time_interleaved(runners, settings.warmup, settings.repeats).items():
                name, tag = key.split("|")
                raw[f"deploy|{key}"] = samples
                stats = summarize(samples)
                rows[name][f"deploy_{tag}_ms"] = stats["median"]
                rows[name][f"deploy_{tag}_iqr_ms"] = stats["iqr"]

    add_ratios(rows, settings.baseline)
    results = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()},
        "machine": machine_info(settings.threads),
        "sgemm_peak_gflops_per_s": peak,
        "sgemm_peak_by_library": peak_by_library,
        "data_yaml": str(data_yaml) if data_yaml else None,
        "wall_s": time.time() - started,
        "argv": sys.argv,
        "rows": list(rows.values()),
        "raw_ms": raw,
    }
    write_outputs(results, out)
    _log(f"done in {results['wall_s']:.0f} s; results in {out}")
    return results


RATIO_KEYS = (
    "params",
    "gflops_640",
    "train_img_per_s",
    "map50",
    "map50_95",
    "onnx_fp32_map50_95",
    "onnx_int8_map50_95",
)


def add_ratios(rows: dict[str, dict], baseline: str) -> None:
    """``<key>_ratio`` = value / baseline's value for counts, scores and latencies (``*_ms``); int8 latency is
    divided by the baseline's fp32 latency."""
    base = rows.get(baseline)
    if base is None:
        return
    for row in rows.values():
        keys = [k for k in row if k in RATIO_KEYS or (k.endswith("_ms") and not k.endswith("_iqr_ms"))]
        for key in keys:
            ref_key = "deploy_fp32_ms" if key == "deploy_int8_ms" else key
            if row.get(key) is not None and base.get(ref_key):
                row[f"{key}_ratio"] = row[key] / base[ref_key]


# ----------------------------------------------------------------------------------------------------------------
# Outputs


def _fmt(value, digits: int = 1, ratio=None) -> str:
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    return f"{text} ({ratio:.2f}×)" if ratio is not None else text


def markdown_table(results: dict) -> str:
    """The Markdown report: architecture/latency table, training table, int8 table."""
    rows, settings, machine = results["rows"], results["settings"], results["machine"]
    sizes = settings["imgsz"]
    backends = [b for b in BACKENDS if any(f"{b}_{sizes[0]}_ms" in r for r in rows)]
    ref = 640 if 640 in sizes else sizes[-1]
    lines = [
        f"Machine: {machine['cpu']}, {machine['logical_cores']} logical cores, {machine['threads']} threads; "
        f"torch {machine['torch']}, onnxruntime {machine['onnxruntime']}, openvino {machine.get('openvino', '–')}, "
        f"ultralytics {machine['ultralytics']}. sgemm peak {results['sgemm_peak_gflops_per_s']:.1f} GFLOP/s "
        f"(best {results['settings']['sgemm_size']}² fp32 matmul of PyTorch and ONNX Runtime, same threads).",
        f"Latency: batch 1, median (IQR) of {settings['repeats']} interleaved runs after {settings['warmup']} "
        f"warm-up runs, ms; ratios to {settings['baseline']} in parentheses. 80-class heads, random weights.",
        "",
    ]
    header = ["Model", "Params M", "GFLOPs@640"]
    for size in sizes:
        header += [f"{b} {size} ms" for b in backends]
    header += [f"GFLOP/s (ORT {ref})", "% of sgemm peak", "train img/s"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [
            r["model"],
            _fmt(r.get("params", 0) / 1e6, 2, r.get("params_ratio")),
            _fmt(r.get("gflops_640"), 2, r.get("gflops_640_ratio")),
        ]
        for size in sizes:
            for b in backends:
                ms, iqr = r.get(f"{b}_{size}_ms"), r.get(f"{b}_{size}_iqr_ms")
                ratio = r.get(f"{b}_{size}_ms_ratio")
                cells.append("–" if ms is None else f"{ms:.1f} ±{iqr:.1f}" + (f" ({ratio:.2f}×)" if ratio else ""))
        cells += [
            _fmt(r.get("achieved_gflops_per_s")),
            _fmt(100 * r["peak_fraction"] if "peak_fraction" in r else None),
            _fmt(r.get("train_img_per_s"), 1, r.get("train_img_per_s_ratio")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if any("map50_95" in r for r in rows):
        lines += [
            "",
            f"Equal training budget: {settings['epochs']} epochs, imgsz {settings['train_imgsz']}, batch "
            f"{settings['batch']}, seed {settings['seed']}, "
            + "".join(f"{k} {v}, " for k, v in settings["train_args"].items())
            + f"from scratch on `{results['data_yaml']}`. "
            f"int8 = ONNX Runtime static quantization (QDQ, per-channel), {settings['calib_images']} calibration "
            f"images; deployed latency with ONNX Runtime at {settings['deploy_imgsz']} px, trained heads; int8 "
            f"ratio is to {settings['baseline']}'s fp32.",
            "",
            "| Model | train min | mAP50 | mAP50-95 | ONNX fp32 mAP50-95 | int8 mAP50-95 | Δ int8 (points) | "
            "fp32 ms | int8 ms | int8 OpenVINO ms |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if "map50_95" in r):
            f32, i8 = r.get("onnx_fp32_map50_95"), r.get("onnx_int8_map50_95")
            delta = None if f32 is None or i8 is None else 100 * (i8 - f32)
            lines.append(
                "| "
                + " | ".join(
                    [
                        r["model"],
                        _fmt(r.get("train_s", 0) / 60),
                        _fmt(r.get("map50"), 3),
                        _fmt(r.get("map50_95"), 3, r.get("map50_95_ratio")),
                        _fmt(f32, 3),
                        _fmt(i8, 3),
                        _fmt(delta, 1),
                        _fmt(r.get("deploy_fp32_ms"), 1, r.get("deploy_fp32_ms_ratio")),
                        _fmt(r.get("deploy_int8_ms"), 1, r.get("deploy_int8_ms_ratio")),
                        _fmt(r.get("deploy_int8_openvino_ms"), 1),
                    ]
                )
                + " |"
            )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> Path:
    """Latency (ONNX Runtime, largest imgsz) vs mAP50-95 (or GFLOPs when nothing was trained); bubble = params."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = results["settings"]["imgsz"][-1]
    rows = [r for r in results["rows"] if r.get(f"onnxruntime_{size}_ms")]
    trained = any("map50_95" in r for r in rows)
    if trained:
        rows = [r for r in rows if "map50_95" in r]
    ykey, ylabel = ("map50_95", "mAP50-95") if trained else ("gflops_640", "GFLOPs at 640")
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for r in rows:
        x, y = r[f"onnxruntime_{size}_ms"], r[ykey]
        ours = r["model"].startswith("yolov8n-pplcnet")
        ax.scatter(x, y, s=300 * r["params"] / 3e6, alpha=0.5, color="tab:red" if ours else "tab:blue")
        ax.annotate(r["model"], (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(f"ONNX Runtime latency at {size} px, batch 1, {results['machine']['threads']} threads (ms)")
    ax.set_ylabel(ylabel)
    ax.set_title("lcnet-yolo vs Ultralytics n models (bubble area = parameters)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(results: dict, out: Path) -> None:
    """results.json (everything, raw timings included), results.csv (one row per model), results.md, results.png."""
    (out / "results.json").write_text(json.dumps(results, indent=1))
    keys: list[str] = []
    for row in results["rows"]:
        keys += [k for k in row if k not in keys]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(results["rows"])
    (out / "results.md").write_text(markdown_table(results))
    plot(results, out / "results.png")


# ----------------------------------------------------------------------------------------------------------------
# CLI


def main(argv: list[str] | None = None) -> int:
    """``lcnet-yolo benchmark [--quick] [--models ...] [--out DIR] ...``; returns the exit status."""
    defaults = BenchmarkSettings()
    parser = argparse.ArgumentParser(prog="lcnet-yolo benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run on synthetic data (about a minute)")
    parser.add_argument("--models", nargs="+", default=None, help=f"default: {' '.join(DEFAULT_MODELS)}")
    parser.add_argument("--ablations", action="store_true", help="add the ablation models of BENCHMARKS.md")
    parser.add_argument("--out", default=str(defaults.out), help="output folder (default: %(default)s)")
    parser.add_argument("--baseline", default=defaults.baseline)
    parser.add_argument("--imgsz", nargs="+", type=int, default=None, help="latency image sizes (default: 320 640)")
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--backends", nargs="+", default=None, choices=BACKENDS)
    parser.add_argument("--data", default=None, help="dataset name or data.yaml (default: neon-trees)")
    parser.add_argument("--epochs", type=int, default=None, help="equal training budget; 0 skips training")
    parser.add_argument("--train-imgsz", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--optimizer", default=None, help="Ultralytics optimizer for every model (default: AdamW)")
    parser.add_argument("--lr0", type=float, default=None, help="initial learning rate for every model")
    parser.add_argument("--train-models", nargs="+", default=None, help="train only these (default: all models)")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 export and its measurements")
    parser.add_argument("--calib-images", type=int, default=None)
    args = parser.parse_args(argv)

    models = tuple(args.models) if args.models else DEFAULT_MODELS
    if args.ablations:
        models += tuple(m for m in ABLATIONS if m not in models)
    settings = quick_settings(args.out, models) if args.quick else BenchmarkSettings(out=Path(args.out), models=models)
    overrides = {
        "baseline": args.baseline,
        "imgsz": tuple(args.imgsz) if args.imgsz else None,
        "threads": args.threads,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "backends": tuple(args.backends) if args.backends else None,
        "data": args.data,
        "epochs": args.epochs,
        "train_imgsz": args.train_imgsz,
        "batch": args.batch,
        "seed": args.seed,
        "workers": args.workers,
        "calib_images": args.calib_images,
        "train_models": tuple(args.train_models) if args.train_models else None,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    if args.no_int8:
        settings.int8 = False
    if args.optimizer is not None:
        settings.train_args["optimizer"] = args.optimizer
    if args.lr0 is not None:
        settings.train_args["lr0"] = args.lr0
    try:
        settings.__post_init__()
        missing = [m for m in settings.models if not _yaml_exists(m)]
        if missing:
            raise ValueError(f"unknown model(s): {', '.join(missing)}")
        run_benchmark(settings)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"lcnet-yolo benchmark: error: {error}", file=sys.stderr)
        return 2
    return 0


def _yaml_exists(name: str) -> bool:
    from ultralytics.nn.tasks import yaml_model_load

    import lcnet_yolo  # noqa: F401

    try:
        with _quiet():
            yaml_model_load(model_yaml(name))
        return True
    except (FileNotFoundError, AttributeError):
        return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
