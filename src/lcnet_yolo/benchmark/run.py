"""One benchmark run: latency of every model, resumable multi-seed training, timing of the trained fp32/int8 files,
then the report over everything ``OUT`` holds.

Files in ``OUT``: ``latency.json`` (latency phases: machine, settings, per-model timings, raw samples),
``train/<model>/seed<S>.json`` (one per finished training, see :mod:`lcnet_yolo.benchmark.accuracy`) and the
report files written by :mod:`lcnet_yolo.benchmark.report`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from lcnet_yolo.benchmark import accuracy, report
from lcnet_yolo.benchmark.latency import machine_info, measure_models, summarize
from lcnet_yolo.benchmark.quantization import calibration_images
from lcnet_yolo.benchmark.settings import BenchmarkSettings
from lcnet_yolo.data import make_synthetic_dataset, trusted_data
from lcnet_yolo.io.checkpoints import load_yolo
from lcnet_yolo.quantize import (
    export_onnx,
    interleaved_samples,
    onnxruntime_runner,
    openvino_runner,
    quantize_onnx_int8,
    quantize_openvino_int8,
)

__all__ = ["available_backends", "report_only", "run_benchmark", "time_deployed", "train_all"]


def log(message: str) -> None:
    """One progress line on stderr, with the time."""
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _settings_dict(settings: BenchmarkSettings) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()}


def available_backends(settings: BenchmarkSettings) -> list[str]:
    """The requested backends, without OpenVINO when it is not installed."""
    backends = list(settings.backends)
    if "openvino" in backends:
        try:
            import openvino  # noqa: F401
        except ImportError:
            backends.remove("openvino")
    return backends


def train_all(settings: BenchmarkSettings) -> dict:
    """Train every (model, seed) pair that ``OUT`` does not hold yet, seed by seed (so that an interrupted run
    has whole seeds for every model first); return ``{"data_yaml", "trained", "skipped"}``."""
    done = {"data_yaml": None, "trained": [], "skipped": []}
    if settings.epochs <= 0:
        return done
    todo = []
    for seed in settings.seeds:
        for name in settings.trained:
            path = accuracy.result_path(settings.out, name, seed)
            (done["skipped"] if path.exists() else todo).append((name, seed))
    for name, seed in done["skipped"]:
        log(f"{name} seed {seed}: done before, skipped ({accuracy.result_path(settings.out, name, seed)})")
    if not todo:
        return done
    if settings.quick or settings.data is None:  # quick mode: a synthetic set in OUT/data
        data_yaml = make_synthetic_dataset(settings.out / "data", n_train=8, n_val=4, imgsz=settings.train_imgsz)
    else:
        data_yaml = Path(trusted_data(settings.data))
    done["data_yaml"] = str(data_yaml)
    for i, (name, seed) in enumerate(todo, 1):
        log(
            f"training {name} seed {seed} ({i}/{len(todo)}): {settings.epochs} epochs at {settings.train_imgsz} px, "
            f"batch {settings.batch}"
        )
        result = accuracy.train_seed(name, seed, data_yaml, settings)
        done["trained"].append((name, seed))
        log(f"{name} seed {seed}: mAP50-95 {result['map50_95']:.4f} in {result['train_s'] / 60:.1f} min")
    return done


def time_deployed(settings: BenchmarkSettings, backends: list[str]) -> tuple[dict, dict]:
    """Latency at ``deploy_imgsz`` of the trained models' fp32 and int8 files (the lowest stored seed of every
    trained model), interleaved: fp32 ONNX in ONNX Runtime and OpenVINO, int8 as shipped (``lcnet-yolo
    quantize``): the ONNX Runtime QDQ file of :func:`quantize_onnx_int8` with its defaults, and for OpenVINO
    Ultralytics' int8 export (NNCF, calibrated on the training split). Returns (per-model fields, raw samples)."""
    stored = {}
    for result in accuracy.stored_results(settings.out):
        if result["model"] not in settings.models or result["model"] in stored:
            continue
        if not (settings.out / result["weights"]).exists():  # e.g. results copied without their checkpoints
            log(f"{result['model']} seed {result['seed']}: weights {result['weights']} are gone, not timed")
            continue
        stored[result["model"]] = result
    if not stored:
        return {}, {}
    runners = {}
    size = settings.deploy_imgsz
    for name, result in stored.items():
        dest = accuracy.deploy_dir(settings.out, name, result["seed"])
        trained = load_yolo(settings.out / result["weights"])  # stored results name a file: read as untrusted
        result["data_yaml"] = trusted_data(result["data_yaml"])  # read from a stored file: checked again
        images = calibration_images(Path(result["data_yaml"]), settings.calib_images)
        fp32 = export_onnx(trained, size, dest / f"fp32-{size}.onnx")
        int8 = quantize_onnx_int8(fp32, dest / f"int8-deployed-{size}.onnx", images)  # the shipped recipe
        runners[f"{name}|fp32"] = onnxruntime_runner(fp32, settings.threads)
        runners[f"{name}|int8"] = onnxruntime_runner(int8, settings.threads)
        if "openvino" in backends:
            folder = quantize_openvino_int8(trained, result["data_yaml"], size, dest=dest / f"int8-openvino-{size}")
            runners[f"{name}|fp32_openvino"] = openvino_runner(fp32, settings.threads)
            runners[f"{name}|int8_openvino"] = openvino_runner(folder, settings.threads)
    log(f"timing {len(runners)} trained fp32/int8 files at {size} px")
    fields: dict[str, dict] = {name: {} for name in stored}
    raw = {}
    for key, times in interleaved_samples(runners, settings.warmup, settings.repeats).items():
        name, tag = key.split("|")
        samples = times["wall_ms"]
        raw[f"deploy|{key}"] = samples
        stats = summarize(samples)
        fields[name][f"deploy_{tag}_ms"] = stats["median"]
        fields[name][f"deploy_{tag}_iqr_ms"] = stats["iqr"]
        fields[name]["deploy_seed"] = stored[name]["seed"]
    return fields, raw


def run_benchmark(settings: BenchmarkSettings) -> dict:
    """Run the phases ``settings`` asks for, then write the report of everything ``settings.out`` holds."""
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    accuracy.check_stored(out, settings)  # before any work: refuse a folder trained with other settings
    torch.set_num_threads(settings.threads)
    started = time.time()
    backends = available_backends(settings)
    latency_file = out / "latency.json"

    if settings.latency:
        measured = measure_models(settings, backends, log)
        latency = {
            "settings": _settings_dict(settings),
            "machine": machine_info(settings.threads),
            "sgemm_peak_gflops_per_s": measured["peak"],
            "sgemm_peak_by_library": measured["peak_by_library"],
            "rows": measured["rows"],
            "raw_ms": measured["raw"],
        }
        accuracy.write_json_atomic(latency_file, latency)

    summary = train_all(settings)

    if settings.latency and settings.int8 and settings.epochs > 0:
        fields, raw = time_deployed(settings, backends)
        for name, values in fields.items():
            latency["rows"].setdefault(name, {"model": name}).update(values)
        latency["raw_ms"].update(raw)
        accuracy.write_json_atomic(latency_file, latency)

    results = report.build_report(
        out,
        settings.baseline,
        settings.models,
        shorter_budget=settings.shorter_budget,
        settings=_settings_dict(settings),
        argv=sys.argv,
        wall_s=time.time() - started,
        this_run={"trained": summary["trained"], "skipped": summary["skipped"]},
    )
    report.write_outputs(results, out)
    log(f"done in {results['wall_s']:.0f} s; results in {out}")
    return results


def report_only(out: Path, baseline: str, models: tuple[str, ...] = (), shorter_budget: Path | None = None) -> dict:
    """Rebuild the report files from what ``out`` holds (with the budget check against ``shorter_budget`` when
    given), without measuring or training anything."""
    if not (out / "latency.json").exists() and not accuracy.stored_results(out):
        raise FileNotFoundError(f"{out} holds no benchmark results (no latency.json, no train/<model>/seed<S>.json)")
    results = report.build_report(out, baseline, models, shorter_budget, argv=sys.argv, settings=None)
    report.write_outputs(results, out)
    log(f"report rebuilt from {out}")
    return results
