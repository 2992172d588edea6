"""Side by side: fp32 and int8 latency of trained models in ONNX Runtime and OpenVINO, timed in one interleaved
loop with a baseline's fp32 ONNX Runtime latency, and the mAP of the fp32 and int8 files
(``python -m lcnet_yolo.quantize``); :func:`report` turns the results into markdown tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from lcnet_yolo.data import trusted_data
from lcnet_yolo.quantize.calibration import calibration_images
from lcnet_yolo.quantize.models import export_onnx, val_map, weights_or_model
from lcnet_yolo.quantize.onnx_int8 import quantize_onnx_int8
from lcnet_yolo.quantize.openvino_int8 import quantize_openvino_int8
from lcnet_yolo.quantize.timing import onnxruntime_runner, openvino_runner, time_interleaved

__all__ = ["measure", "report"]


def file_tags(models: Sequence[str | Path]) -> list[str]:
    """A file-name tag per model: its stem, numbered where stems repeat (two runs' ``last.pt``)."""
    stems = [Path(str(m)).stem for m in models]
    return [stem if stems.count(stem) == 1 else f"{stem}-{i}" for i, stem in enumerate(stems, 1)]


def _int8_files(
    stem: str, yolo, data_yaml: Path, imgsz: int, images: Sequence[Path], out: Path, calibration: str
) -> dict:
    """fp32 ONNX export, its ONNX Runtime int8 copy (``calibration``) and Ultralytics' OpenVINO int8 export, all
    at ``imgsz``, named ``<stem>-fp32-<imgsz>.onnx`` and so on."""
    fp32 = export_onnx(yolo, imgsz, out / f"{stem}-fp32-{imgsz}.onnx")
    ort_int8 = quantize_onnx_int8(fp32, out / f"{stem}-int8-{imgsz}.onnx", images, calibration=calibration)
    ov_int8 = quantize_openvino_int8(yolo, data_yaml, imgsz, dest=out / f"{stem}-int8-{imgsz}_openvino_model")
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
    ort_calibration: str = "percentile",
) -> dict:
    """fp32 and int8 latency (ONNX Runtime, OpenVINO) of every model at ``imgsz``, timed side by side with the
    baseline's fp32 ONNX Runtime latency in one interleaved loop; with ``val`` and trained (``.pt``) models, the
    mAP of the fp32 ONNX export and both int8 files at ``val_imgsz`` through Ultralytics' ``val``."""
    out = Path(out)
    data_yaml = Path(trusted_data(data))
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
            "ort_calibration": ort_calibration,
        },
        "latency_ms": {},
        "map50_95": {},
    }
    runners: dict[str, Callable[[], object]] = {}
    nc = None
    for model, tag in zip(models, file_tags(models), strict=True):
        yolo = weights_or_model(model)
        nc = nc or len(yolo.names)
        files = _int8_files(tag, yolo, data_yaml, imgsz, images, out, ort_calibration)
        key = str(model)
        runners[f"{key}|ort|fp32"] = onnxruntime_runner(files["fp32"], threads, ort_spin)
        runners[f"{key}|ort|int8"] = onnxruntime_runner(files["ort_int8"], threads, ort_spin)
        runners[f"{key}|openvino|fp32"] = openvino_runner(files["fp32"], threads)
        runners[f"{key}|openvino|int8"] = openvino_runner(files["ov_int8"], threads)
        if val and str(model).endswith(".pt"):
            files = _int8_files(tag, yolo, data_yaml, val_imgsz, images, out / "val", ort_calibration)
            results["map50_95"][key] = {
                tag: val_map(path, data_yaml, val_imgsz)["map50_95"] for tag, path in files.items()
            }
    base = weights_or_model(baseline, nc)
    base_onnx = export_onnx(base, imgsz, out / f"{Path(str(baseline)).stem}-fp32-{imgsz}.onnx")
    runners[f"{baseline}|ort|fp32"] = onnxruntime_runner(base_onnx, threads, ort_spin)
    results["latency_ms"] = time_interleaved(runners, warmup, repeats)
    out.mkdir(parents=True, exist_ok=True)
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
        f"images (ONNX Runtime: {s.get('ort_calibration', 'minmax')} ranges). ONNX Runtime worker threads "
        f"{'spin during a run' if s.get('ort_spin') else 'do not spin'}. "
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
