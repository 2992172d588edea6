"""Timing exported models on the CPU: ONNX Runtime sessions, OpenVINO requests, and interleaved rounds in which
every model runs once per round, so that a drift of the (shared) machine hits every model alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["interleaved_samples", "onnxruntime_runner", "onnxruntime_session", "openvino_runner", "time_interleaved"]


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


def interleaved_samples(
    runners: dict[str, Callable[[], object]], warmup: int, repeats: int
) -> dict[str, dict[str, list[float]]]:
    """Per runner, the wall-clock and the CPU milliseconds of every timed call (``{"wall_ms": [...], "cpu_ms":
    [...]}``): ``warmup`` untimed calls each, then ``repeats`` rounds that call every runner once, the first runner
    rotating from round to round, so a drift of the machine hits every runner alike. CPU time is this process's
    (all threads together): it does not count the time other jobs hold the cores, wall time does."""
    keys = list(runners)
    for key in keys:
        for _ in range(warmup):
            runners[key]()
    samples: dict[str, dict[str, list[float]]] = {key: {"wall_ms": [], "cpu_ms": []} for key in keys}
    for r in range(repeats):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            start_cpu = time.process_time()
            start = time.perf_counter()
            runners[key]()
            wall = time.perf_counter() - start
            samples[key]["cpu_ms"].append((time.process_time() - start_cpu) * 1e3)
            samples[key]["wall_ms"].append(wall * 1e3)
    return samples


def time_interleaved(
    runners: dict[str, Callable[[], object]], warmup: int, repeats: int
) -> dict[str, dict[str, float]]:
    """Per runner, the median and the minimum wall-clock milliseconds per call (``ms``, ``min_ms``) and the median
    CPU milliseconds of this process per call (``cpu_ms``, all threads together), over the interleaved rounds of
    :func:`interleaved_samples`."""
    return {
        key: {
            "ms": statistics.median(times["wall_ms"]),
            "min_ms": min(times["wall_ms"]),
            "cpu_ms": statistics.median(times["cpu_ms"]),
        }
        for key, times in interleaved_samples(runners, warmup, repeats).items()
    }


def _openvino_xml(path: str | Path) -> Path:
    """The ``.xml`` file of an OpenVINO model: ``path`` itself, or the first one in an export folder."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.xml"))
        if not found:
            raise FileNotFoundError(f"no OpenVINO .xml model in {path}")
        return found[0]
    return path
