"""Timing: batch-1 latency runners (PyTorch here; ONNX Runtime and OpenVINO from :mod:`lcnet_yolo.quantize`),
interleaved rounds, the machine's sgemm peak, training throughput and a description of the machine."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lcnet_yolo.benchmark.models import build, export_onnx, gflops
from lcnet_yolo.io.paths import model_yaml_name
from lcnet_yolo.plugin.compat import DetectionModel, detection_batch, detection_loss, get_num_params, quiet
from lcnet_yolo.quantize import interleaved_samples, onnxruntime_runner, openvino_runner

__all__ = [
    "machine_info",
    "measure_models",
    "onnxruntime_runner",
    "openvino_runner",
    "sgemm_peak_gflops",
    "summarize",
    "torch_runner",
    "train_throughput",
    "training_batch",
    "training_model",
]


def torch_runner(model: nn.Module, imgsz: int) -> Callable[[], None]:
    """A function that runs ``model`` once in PyTorch (inference mode) on a fixed random image."""
    x = torch.rand(1, 3, imgsz, imgsz)

    def run():
        with torch.inference_mode():
            model(x)

    return run


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


def training_batch(batch: int, imgsz: int, boxes_per_image: int = 4) -> dict[str, torch.Tensor]:
    """One random detection batch as Ultralytics' loss takes it (images, box indices, classes, boxes); seeded, so
    every model trains on the same batch."""
    g = torch.Generator().manual_seed(0)
    n = batch * boxes_per_image
    images = torch.rand(batch, 3, imgsz, imgsz, generator=g)
    centres, sizes = 0.2 + 0.6 * torch.rand(n, 2, generator=g), 0.05 + 0.2 * torch.rand(n, 2, generator=g)
    index = torch.arange(batch).repeat_interleave(boxes_per_image).float()
    return detection_batch(images, torch.cat([index[:, None], torch.zeros(n, 1), centres, sizes], 1))


def training_model(name: str, nc: int = 1) -> DetectionModel:
    """A detection model as the trainer trains it: built from its YAML with ``nc`` classes, Ultralytics' default
    arguments (its loss reads them), in training mode."""
    with quiet():
        model = DetectionModel(model_yaml_name(name), nc=nc, verbose=False)
    return model.train()


def train_throughput(names: Sequence[str], imgsz: int, batch: int, rounds: int, nc: int = 1) -> dict[str, float]:
    """Training images/s of each model: forward, Ultralytics' loss, backward and an SGD step on one random batch;
    ``batch`` / median step time over ``rounds`` interleaved rounds after two warm-up steps each."""
    data = training_batch(batch, imgsz)

    def make_step(name: str) -> Callable[[], None]:
        model = training_model(name, nc)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def step():
            optimizer.zero_grad()
            detection_loss(model, data).backward()
            optimizer.step()

        return step

    steps = {name: make_step(name) for name in names}
    samples = interleaved_samples(steps, warmup=2, repeats=rounds)
    return {name: batch / (statistics.median(ms["wall_ms"]) / 1e3) for name, ms in samples.items()}


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


def measure_models(settings, backends: Sequence[str], log: Callable[[str], None]) -> dict:
    """The latency phase of ``settings`` (a BenchmarkSettings): params, GFLOPs and batch-1 latency of every model
    (80-class heads, random weights, as their YAMLs define them) at every imgsz and backend, the machine's sgemm
    peak before and after, the achieved fraction of it, and the training throughput of every model.
    Returns ``{"rows": {model: fields}, "raw": {key: samples}, "peak", "peak_by_library"}``."""
    out = settings.out
    rows = {name: {"model": name} for name in settings.models}
    raw: dict[str, list[float]] = {}
    # the machine may be shared: the peak is the best of one measurement before and one after the latency runs
    peaks = [sgemm_peak_gflops(settings.sgemm_size, settings.threads)]
    for imgsz in settings.imgsz:
        runners = {}
        for name in settings.models:
            yolo = build(name)
            if imgsz == settings.imgsz[-1]:
                rows[name]["params"] = get_num_params(yolo.model)
                rows[name]["gflops_640"] = gflops(yolo.model, 640)
            onnx_path = export_onnx(yolo, imgsz, out / "onnx" / f"{name}-{imgsz}.onnx")
            if "torch" in backends:
                with quiet():  # Ultralytics' fuse() folds our PP-LCNet units' BatchNorms too (nn/layers.py)
                    fused = build(name).model.eval().fuse(verbose=False)
                runners[f"{name}|torch|{imgsz}"] = torch_runner(fused, imgsz)
            if "onnxruntime" in backends:
                runners[f"{name}|onnxruntime|{imgsz}"] = onnxruntime_runner(onnx_path, settings.threads)
            if "openvino" in backends:
                runners[f"{name}|openvino|{imgsz}"] = openvino_runner(onnx_path, settings.threads)
        log(f"timing {len(runners)} model/backend pairs at {imgsz} px, {settings.repeats} interleaved rounds")
        for key, times in interleaved_samples(runners, settings.warmup, settings.repeats).items():
            name, backend, size = key.split("|")
            samples = times["wall_ms"]
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
    log(f"sgemm peak {peak:.1f} GFLOP/s on {settings.threads} threads ({peak_by_library})")

    throughput = train_throughput(
        settings.models, settings.train_imgsz, settings.throughput_batch, settings.throughput_iters
    )
    for name, images_per_s in throughput.items():
        rows[name]["train_img_per_s"] = images_per_s
    log("training throughput done")
    return {"rows": rows, "raw": raw, "peak": peak, "peak_by_library": peak_by_library}
