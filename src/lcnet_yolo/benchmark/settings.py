"""What one benchmark run measures: the model lists and :class:`BenchmarkSettings` (defaults = the documented run)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

OURS = ("yolov8n-pplcnet-plain", "yolov8n-pplcnet")
ULTRALYTICS = ("yolov8n", "yolo11n", "yolo26n")
DEFAULT_MODELS = ULTRALYTICS + OURS
ABLATIONS = (
    "yolov8n-pplcnet-abl-plain-regmax1",
    "yolov8n-pplcnet-abl-dfl",
    "yolov8n-pplcnet-abl-densecls",
    "yolov8n-pplcnet-abl-relu",
    "yolov8n-pplcnet-abl-relu6",
    "yolov8n-pplcnet-abl-leaky",
    "yolov8n-pplcnet-abl-se-off",
    "yolov8n-pplcnet-abl-k3",
    "yolov8n-pplcnet-abl-neck-k3",
    "yolov8n-pplcnet-abl-n2",
    "yolov8n-pplcnet-abl-x0.75",
    "yolov8n-pplcnet-abl-x1.0",
)
# The activation variants of the default n model, among which stats.choose_activation picks the default.
ACTIVATION_VARIANTS = {
    "hardswish": "yolov8n-pplcnet",
    "leakyrelu": "yolov8n-pplcnet-abl-leaky",
    "relu": "yolov8n-pplcnet-abl-relu",
    "relu6": "yolov8n-pplcnet-abl-relu6",
}
BACKENDS = ("torch", "onnxruntime", "openvino")
VAL_EVERY = 1
# Training settings that must match for a stored model-seed result to be reused (see accuracy.training_key).
TRAINING_KEYS = (
    "data",
    "epochs",
    "train_imgsz",
    "batch",
    "workers",
    "train_args",
    "val_every",
    "int8",
    "calib_images",
)


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
    latency: bool = True  # False: skip the timing phases (training-only chunk of a resumable run)
    # equal training budget for mAP
    data: str | None = "neon-trees"
    train_models: tuple[str, ...] | None = None  # None: train every model
    # more Ultralytics train arguments, the same for every model: AdamW at Ultralytics' default lr0
    train_args: dict = field(default_factory=lambda: {"optimizer": "AdamW", "lr0": 0.01})
    # 300 epochs, the plateau on neon-trees (BENCHMARKS.md, "Budget"): 300 gained 6-11 % over 150, and 600
    # gained nothing over 300 for YOLOv8n and the default n model (means of 3 seeds)
    epochs: int = 300
    train_imgsz: int = 416
    batch: int = 4
    seeds: tuple[int, ...] = (0, 1, 2)
    val_every: int = VAL_EVERY  # validate every N epochs (and after the last): the learning curve's points
    workers: int = 2
    int8: bool = True
    deploy_imgsz: int = 640
    calib_images: int = 64
    # for the report: a folder trained like this one with fewer epochs, for the budget check (stats.budget_check)
    shorter_budget: Path | None = None
    quick: bool = False

    def __post_init__(self):
        self.out = Path(self.out)
        self.models = tuple(self.models)
        self.imgsz = tuple(int(s) for s in self.imgsz)
        self.seeds = tuple(int(s) for s in self.seeds)
        unknown = sorted(set(self.backends) - set(BACKENDS))
        if unknown:
            raise ValueError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
        if self.threads < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError("threads and repeats must be >= 1 and warmup >= 0")
        if not self.models:
            raise ValueError("no models to benchmark")
        if self.val_every < 1:
            raise ValueError("--val-every must be >= 1")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("--seeds needs at least one seed and no seed twice")
        if self.train_models is not None:
            self.train_models = tuple(self.train_models)
            extra = sorted(set(self.train_models) - set(self.models))
            if extra:
                raise ValueError(f"--train-models must be among the benchmarked models, not {', '.join(extra)}")

    @property
    def trained(self) -> tuple[str, ...]:
        """The models this run trains (all models unless ``train_models`` names some)."""
        return self.train_models if self.train_models is not None else self.models


def quick_settings(out: str | Path, models: Sequence[str] = DEFAULT_MODELS) -> BenchmarkSettings:
    """A CI-sized run: synthetic data, imgsz 64, two epochs, two seeds, three timed repeats."""
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
        epochs=2,
        train_imgsz=64,
        batch=4,
        seeds=(0, 1),
        val_every=1,
        workers=0,
        deploy_imgsz=64,
        calib_images=4,
        quick=True,
    )
