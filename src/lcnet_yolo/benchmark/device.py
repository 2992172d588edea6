"""``lcnet-yolo benchmark --device 0``: training and inference speed of every model on one GPU, side by side.

For each model and each setting (memory format, deterministic algorithms), on one device:

* **training img/s**: forward, Ultralytics' loss, backward and an SGD step on one random batch, the CPU benchmark's
  batch and model set-up (:func:`lcnet_yolo.benchmark.latency.training_batch`, ``training_model``), with AMP (fp16
  autocast and a gradient scaler) on CUDA; ``batch`` / median step time;
* **cold first step** (s): the first of those steps on a freshly built model (kernel selection, allocations, the
  loss's set-up), what a training run pays once at its start. All rows run in one process after the device is
  warmed up (context, cuBLAS, cuDNN), in table order: a kernel an earlier row loaded is not loaded again, so later
  rows can read lower; a training run's first epoch (``results.csv``) is the end-to-end figure;
* **inference**: batch-1 latency (ms) and batch-``batch`` throughput (img/s) of the fused model, fp16 on CUDA.

``--channels-last`` adds rows in channels_last memory format (the model is converted, as Ultralytics' trainer does),
``--deterministic`` rows in Ultralytics' deterministic mode (``deterministic=True``, its training default; cuBLAS
reads its workspace setting when it starts, before the first row, so these rows run cuBLAS, a small part of these
convolutional models, without the deterministic workspace a training run sets up first). With both
flags the row with both is what ``device=0`` training uses: Ultralytics 8.4.190 trains in channels_last on CUDA by
default (``channels_last`` unset means on, except on Windows). ``--device cpu`` measures the same in fp32, without
AMP: the fallback a CI smoke test runs at a tiny size.
"""

from __future__ import annotations

import importlib.metadata
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lcnet_yolo.benchmark.latency import training_batch, training_model
from lcnet_yolo.benchmark.models import build
from lcnet_yolo.benchmark.settings import DEFAULT_MODELS
from lcnet_yolo.plugin.compat import detection_loss, deterministic_algorithms, quiet

__all__ = [
    "DeviceSettings",
    "device_info",
    "measure_device",
    "parse_device",
    "render",
    "run_device_benchmark",
    "variants",
]


@dataclass
class DeviceSettings:
    """What ``lcnet-yolo benchmark --device D`` measures (defaults: the GPU figures of BENCHMARKS.md)."""

    device: str = "0"
    models: tuple[str, ...] = DEFAULT_MODELS
    baseline: str = "yolov8n"
    imgsz: int = 640
    batch: int = 32
    warmup: int = 5
    repeats: int = 30
    channels_last: bool = False
    deterministic: bool = False
    out: Path = field(default_factory=lambda: Path("benchmark"))


def parse_device(device: str) -> torch.device:
    """``"0"``/``"cuda:0"`` -> that CUDA GPU, ``"cpu"`` -> the CPU; ValueError naming ``--device`` otherwise."""
    text = str(device).strip().lower().removeprefix("cuda:")
    if text == "cpu":
        return torch.device("cpu")
    if not text.isdigit():
        raise ValueError(f"--device {device}: expected a CUDA GPU index (0) or cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA GPU here (torch.cuda.is_available() is False); use --device cpu")
    if int(text) >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return torch.device("cuda", int(text))


def variants(settings: DeviceSettings) -> list[dict[str, bool]]:
    """The settings measured: plain, then channels_last and/or deterministic (and both) as the flags ask."""
    formats = [False, True] if settings.channels_last else [False]
    modes = [False, True] if settings.deterministic else [False]
    return [{"channels_last": c, "deterministic": d} for d in modes for c in formats]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _warm_up(device: torch.device) -> None:
    """Create the device's context and library handles (cuBLAS, cuDNN) before anything is timed."""
    conv = torch.nn.Conv2d(3, 8, 3).to(device)
    x = torch.rand(2, 3, 16, 16, device=device)
    with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
        conv(x).float().mean().backward()
    torch.rand(64, 64, device=device) @ torch.rand(64, 64, device=device)
    _sync(device)


def _seconds(run: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls after ``warmup`` untimed ones (the device synchronised around each)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def train_speed(name: str, device: torch.device, settings: DeviceSettings, channels_last: bool) -> dict[str, float]:
    """Cold first step (s) and steady training img/s of ``name`` (AMP on CUDA, fp32 on the CPU)."""
    amp = device.type == "cuda"
    model = training_model(name).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    data = {key: value.to(device) for key, value in training_batch(settings.batch, settings.imgsz).items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss = detection_loss(model, data)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    cold = _seconds(step, device, warmup=0, repeats=1)[0]
    steady = statistics.median(_seconds(step, device, settings.warmup, settings.repeats))
    return {"cold_first_step_s": cold, "train_img_per_s": settings.batch / steady}


def inference_speed(name: str, device: torch.device, settings: DeviceSettings, channels_last: bool) -> dict[str, float]:
    """Batch-1 latency (ms) and batch-``batch`` throughput (img/s) of the fused model (fp16 on CUDA)."""
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    with quiet():  # Ultralytics' fuse() folds our PP-LCNet units' BatchNorms too (nn/layers.py)
        model = build(name).model.eval().fuse(verbose=False).to(device=device, dtype=dtype)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    one = torch.rand(1, 3, settings.imgsz, settings.imgsz, device=device, dtype=dtype)
    many = torch.rand(settings.batch, 3, settings.imgsz, settings.imgsz, device=device, dtype=dtype)
    with torch.inference_mode():
        one_s = statistics.median(_seconds(lambda: model(one), device, settings.warmup, settings.repeats))
        many_s = statistics.median(_seconds(lambda: model(many), device, settings.warmup, settings.repeats))
    return {"infer_b1_ms": one_s * 1e3, "infer_batch_img_per_s": settings.batch / many_s}


def measure_device(settings: DeviceSettings, log: Callable[[str], None] = print) -> list[dict]:
    """One row per setting and model: the figures of this module's docstring, and the ratios to the baseline's."""
    device = parse_device(settings.device)
    _warm_up(device)
    rows = []
    for variant in variants(settings):
        for name in settings.models:
            with deterministic_algorithms(variant["deterministic"]):
                row = {"model": name, **variant}
                row.update(train_speed(name, device, settings, variant["channels_last"]))
                row.update(inference_speed(name, device, settings, variant["channels_last"]))
            rows.append(row)
            log(f"{name} {variant}: {row['train_img_per_s']:.1f} train img/s, {row['infer_b1_ms']:.2f} ms batch 1")
            if device.type == "cuda":
                torch.cuda.empty_cache()
    for row in rows:
        base = next((r for r in rows if r["model"] == settings.baseline and _same_variant(r, row)), None)
        if base is not None:
            row["train_vs_baseline"] = row["train_img_per_s"] / base["train_img_per_s"]
            row["infer_b1_vs_baseline"] = row["infer_b1_ms"] / base["infer_b1_ms"]
    return rows


def _same_variant(a: dict, b: dict) -> bool:
    return a["channels_last"] == b["channels_last"] and a["deterministic"] == b["deterministic"]


def device_info(device: torch.device) -> dict:
    """The device, library versions and the precision measured."""
    info = {"device": str(device), "torch": torch.__version__, "ultralytics": importlib.metadata.version("ultralytics")}
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda, precision="AMP fp16 / fp16")
        info["cudnn_benchmark"] = torch.backends.cudnn.benchmark
    else:
        info["precision"] = "fp32"
    return info


def render(rows: Sequence[dict], info: dict, settings: DeviceSettings) -> str:
    """The Markdown table of ``rows``."""
    base = settings.baseline
    lines = [
        f"{info.get('gpu', info['device'])}, torch {info['torch']}, Ultralytics {info['ultralytics']}, "
        f"{info['precision']}, {settings.imgsz} px, batch {settings.batch}, median of {settings.repeats} "
        f"(after {settings.warmup} warm-up)",
        "",
        f"| model | channels_last | deterministic | train img/s | x {base} | cold first step s | "
        f"infer b1 ms | x {base} | infer b{settings.batch} img/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['channels_last']} | {r['deterministic']} | {r['train_img_per_s']:.1f} | "
            f"{r.get('train_vs_baseline', float('nan')):.2f} | {r['cold_first_step_s']:.2f} | {r['infer_b1_ms']:.2f} | "
            f"{r.get('infer_b1_vs_baseline', float('nan')):.2f} | {r['infer_batch_img_per_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def run_device_benchmark(settings: DeviceSettings, log: Callable[[str], None] = print) -> Path:
    """Measure, print the table, write ``OUT/device-<device>.json`` and ``.md``; returns the JSON's path."""
    device = parse_device(settings.device)
    rows = measure_device(settings, log)
    info = device_info(device)
    table = render(rows, info, settings)
    log(table)
    settings.out.mkdir(parents=True, exist_ok=True)
    stem = settings.out / f"device-{device.type}{'' if device.index is None else device.index}"
    record = {"machine": info, "settings": {**asdict(settings), "out": str(settings.out)}, "rows": rows}
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1))
    stem.with_suffix(".md").write_text(table)
    return stem.with_suffix(".json")
