"""``lcnet-yolo benchmark``: our models side by side with Ultralytics' YOLOv8n, YOLO11n and YOLO26n on this CPU.

One run measures, for every model built from its YAML (random init, 80 classes: the architecture as published):

* parameters and GFLOPs (Ultralytics' thop count) at 640;
* batch-1 latency at each ``imgsz`` in PyTorch eager (BatchNorm folded), ONNX Runtime and OpenVINO (same ONNX
  file), the median and interquartile range of ``repeats`` runs after ``warmup`` runs; every backend of every
  model is timed once per round, the rounds rotate the order, so a drift of the machine hits all models alike;
* achieved GFLOP/s (model FLOPs / ONNX Runtime latency) next to the peak of a large sgemm (PyTorch and ONNX
  Runtime's MLAS, the better one) at the same thread count;
* training throughput (images/s of forward + loss + backward + SGD step on random batches, interleaved rounds).

Then, at one equal training budget (same data, epochs, imgsz, batch, optimizer, lr0; all from scratch), it trains
every model (or ``train_models``) once per seed with Ultralytics, validating after every epoch (the learning
curve), exports the last-epoch weights to ONNX, makes an int8 copy (ONNX Runtime static quantization, calibrated
on training images) and measures both files' mAP through Ultralytics' own ``val``. Every finished model-seed is
written to ``OUT/train/<model>/seed<S>.json`` at once, a rerun skips it, and the report aggregates whatever is
there (mean ± std over seeds, ratios to YOLOv8n and YOLO26n, plateau check, the activation rule).

The package, one concern per module:

* :mod:`~lcnet_yolo.benchmark.settings` — model lists, :class:`BenchmarkSettings`;
* :mod:`~lcnet_yolo.benchmark.models` — building and counting models;
* :mod:`~lcnet_yolo.benchmark.latency` — timing (PyTorch runner, interleaved rounds, sgemm peak, throughput);
* :mod:`~lcnet_yolo.benchmark.accuracy` — training per seed, validation curves, stored results;
* :mod:`~lcnet_yolo.benchmark.quantization` — the benchmark's int8 recipe;
* :mod:`~lcnet_yolo.benchmark.stats` — mean ± std, paired ratios, plateau and budget checks, activation rule;
* :mod:`~lcnet_yolo.benchmark.report` — building the report, results.{json,csv,md};
  :mod:`~lcnet_yolo.benchmark.figures` — results.png and learning_curves.png;
* :mod:`~lcnet_yolo.benchmark.run` — the phases of one run; :mod:`~lcnet_yolo.benchmark.cli` — the arguments.

ONNX export, ONNX Runtime and OpenVINO runners, the interleaved timing loop, calibration images, the int8 quantizer
and ``val`` of exported files are :mod:`lcnet_yolo.quantize`'s (the lower layer), re-exported where the benchmark
named them before.
"""

from lcnet_yolo.benchmark.accuracy import (
    read_curve,
    result_path,
    stored_results,
    train_seed,
    training_key,
    val_onnx,
)
from lcnet_yolo.benchmark.cli import main
from lcnet_yolo.benchmark.latency import (
    machine_info,
    onnxruntime_runner,
    openvino_runner,
    sgemm_peak_gflops,
    summarize,
    torch_runner,
    train_throughput,
)
from lcnet_yolo.benchmark.models import build, export_onnx, gflops
from lcnet_yolo.benchmark.quantization import calibration_images, decoding_nodes, quantize_int8
from lcnet_yolo.benchmark.run import report_only, run_benchmark
from lcnet_yolo.benchmark.settings import (
    ABLATIONS,
    ACTIVATION_VARIANTS,
    BACKENDS,
    DEFAULT_MODELS,
    OURS,
    ULTRALYTICS,
    BenchmarkSettings,
    quick_settings,
)
from lcnet_yolo.benchmark.stats import (
    add_ratios,
    aggregate,
    budget_check,
    choose_activation,
    mean_std,
    paired_ratio,
    plateau_check,
)

__all__ = [
    "ABLATIONS",
    "ACTIVATION_VARIANTS",
    "BACKENDS",
    "DEFAULT_MODELS",
    "OURS",
    "ULTRALYTICS",
    "BenchmarkSettings",
    "add_ratios",
    "aggregate",
    "budget_check",
    "build",
    "calibration_images",
    "choose_activation",
    "decoding_nodes",
    "export_onnx",
    "gflops",
    "machine_info",
    "main",
    "mean_std",
    "onnxruntime_runner",
    "openvino_runner",
    "paired_ratio",
    "plateau_check",
    "quantize_int8",
    "quick_settings",
    "read_curve",
    "report_only",
    "result_path",
    "run_benchmark",
    "sgemm_peak_gflops",
    "stored_results",
    "summarize",
    "torch_runner",
    "train_seed",
    "train_throughput",
    "training_key",
    "val_onnx",
]
