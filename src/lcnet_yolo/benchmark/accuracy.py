"""Accuracy at an equal training budget: one Ultralytics training per model and seed, each written to
``OUT/train/<model>/seed<S>.json`` when it finishes, so that a rerun skips what is done.

A result file holds the final-epoch mAP50 / mAP50-95, the validation curve of every epoch (from Ultralytics'
``results.csv``), the int8 and fp32 ONNX mAPs when asked, the training settings it was made with, Ultralytics'
arguments and the wall time. Stored results are reused only when they were trained with the same settings
(:func:`training_key`); a run whose settings differ from what ``OUT`` holds is refused (use another ``--out``).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path

from lcnet_yolo.benchmark.models import build, export_onnx
from lcnet_yolo.benchmark.quantization import calibration_images, quantize_int8
from lcnet_yolo.benchmark.settings import TRAINING_KEYS, BenchmarkSettings
from lcnet_yolo.io.checkpoints import load_yolo
from lcnet_yolo.plugin.compat import RESULTS_CSV_COLUMNS, quiet, validate_on_epochs
from lcnet_yolo.quantize import val_map as val_onnx  # the benchmark's name for it

__all__ = [
    "check_stored",
    "deploy_dir",
    "onnx_scores",
    "read_curve",
    "result_path",
    "stored_results",
    "train_seed",
    "training_key",
    "val_onnx",
    "write_json_atomic",
]

CURVE_COLUMNS = RESULTS_CSV_COLUMNS  # our name -> its column in Ultralytics' results.csv


def training_key(settings: BenchmarkSettings) -> dict:
    """The settings a stored model-seed result depends on (data, budget, optimizer, int8 calibration)."""
    key = {name: getattr(settings, name) for name in TRAINING_KEYS}
    key["data"] = "synthetic" if settings.quick or settings.data is None else str(settings.data)
    key["train_args"] = dict(sorted(settings.train_args.items()))
    return key


def result_path(out: Path, model: str, seed: int) -> Path:
    """Where the result of one model-seed is stored: ``OUT/train/<model>/seed<S>.json``."""
    return Path(out) / "train" / model / f"seed{seed}.json"


def deploy_dir(out: Path, model: str, seed: int) -> Path:
    """Where the ONNX files of one model-seed go (``fp32-val.onnx``, ``int8-val.onnx`` at the training imgsz)."""
    return Path(out) / "deploy" / model / f"seed{seed}"


def stored_results(out: Path) -> list[dict]:
    """Every model-seed result under ``out/train`` (sorted by model, then seed)."""
    files = sorted(Path(out).glob("train/*/seed*.json"))
    results = [json.loads(f.read_text()) for f in files]
    return sorted(results, key=lambda r: (r["model"], r["seed"]))


def check_stored(out: Path, settings: BenchmarkSettings) -> None:
    """Refuse (ValueError) when ``out`` holds results trained with other settings than ``settings``."""
    key = training_key(settings)
    for result in stored_results(out):
        stored = result["training"]
        changed = [f"{k} {stored.get(k)!r} (this run: {key[k]!r})" for k in key if stored.get(k) != key[k]]
        if changed:
            raise ValueError(
                f"{result_path(out, result['model'], result['seed'])} was trained with {', '.join(changed)}; "
                "use another --out for other training settings"
            )


def write_json_atomic(path: Path, data: dict) -> None:
    """Write ``data`` to a temporary file next to ``path``, then rename it over ``path`` (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def read_curve(results_csv: Path, epochs: set[int] | None = None) -> dict[str, list[float]]:
    """Validation mAP50 and mAP50-95 by epoch from Ultralytics' ``results.csv``: every row, or only the rows of
    ``epochs`` (1-based; the other rows repeat the last validation's numbers)."""
    with open(results_csv, newline="") as f:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(f)]
    if not rows:
        raise RuntimeError(f"{results_csv} holds no epoch")
    if epochs is not None:
        rows = [r for r in rows if int(float(r["epoch"])) in epochs]
    curve = {"epoch": [int(float(r["epoch"])) for r in rows]}
    for key, column in CURVE_COLUMNS.items():
        curve[key] = [float(r[column]) for r in rows]
    return curve


def onnx_scores(weights: Path, data_yaml: Path, settings: BenchmarkSettings, dest: Path) -> dict:
    """mAP of the trained model exported to ONNX (fp32) and of its int8 copy, at the training imgsz."""
    trained = load_yolo(weights)
    fp32 = export_onnx(trained, settings.train_imgsz, dest / "fp32-val.onnx")
    int8 = quantize_int8(fp32, dest / "int8-val.onnx", calibration_images(data_yaml, settings.calib_images))
    scores = {}
    for tag, path in (("fp32", fp32), ("int8", int8)):
        measured = val_onnx(path, data_yaml, settings.train_imgsz)
        scores[f"onnx_{tag}_map50"] = measured["map50"]
        scores[f"onnx_{tag}_map50_95"] = measured["map50_95"]
    return scores


def _jsonable(args: dict) -> dict:
    return {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v)) for k, v in args.items()}


def train_seed(name: str, seed: int, data_yaml: Path, settings: BenchmarkSettings) -> dict:
    """Train ``name`` from scratch at the equal budget with ``seed``, validating after every epoch; write and return
    its result (final-epoch mAPs, the per-epoch curve, ONNX fp32/int8 mAPs, settings, wall times)."""
    yolo = build(name)
    validated: set[int] = set()

    def validate_every(epoch: int, epochs: int) -> bool:
        val = epoch % settings.val_every == 0 or epoch >= epochs
        if val:
            validated.add(epoch)
        return val

    validate_on_epochs(yolo, validate_every)
    run_dir = (settings.out / "train" / name).resolve()
    # a training killed halfway left its folder: start clean (Ultralytics would append to its results.csv)
    shutil.rmtree(run_dir / f"seed{seed}", ignore_errors=True)
    start = time.perf_counter()
    with quiet():
        yolo.train(
            data=str(data_yaml),
            epochs=settings.epochs,
            imgsz=settings.train_imgsz,
            batch=settings.batch,
            nbs=settings.batch,  # one optimizer step per batch (nbs=64 would accumulate 16 batches of 4)
            seed=seed,
            deterministic=True,
            workers=settings.workers,
            device="cpu",
            pretrained=False,
            amp=False,
            val=True,  # every val_every epochs (validate_every): the learning curve
            patience=0,  # no early stop: every model gets the whole budget
            plots=False,
            project=str(run_dir),
            name=f"seed{seed}",
            exist_ok=True,
            verbose=False,
            **settings.train_args,
        )
    train_s = time.perf_counter() - start
    trainer = yolo.trainer
    curve = read_curve(Path(trainer.save_dir) / "results.csv", validated)
    result = {
        "model": name,
        "seed": seed,
        "training": training_key(settings),
        # the last epoch's validation (last.pt): picking the best epoch on the validation split would flatter
        "map50": curve["map50"][-1],
        "map50_95": curve["map50_95"][-1],
        "best_epoch_map50_95": max(curve["map50_95"]),
        "curve": curve,
        "train_s": train_s,
        "weights": str(Path(trainer.last).resolve().relative_to(settings.out.resolve())),  # relative to OUT
        "data_yaml": str(data_yaml),
        "ultralytics_args": _jsonable(vars(trainer.args)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if settings.int8:
        start = time.perf_counter()
        result.update(
            onnx_scores(Path(trainer.last), data_yaml, settings, settings.out / "deploy" / name / f"seed{seed}")
        )
        result["int8_s"] = time.perf_counter() - start
    write_json_atomic(result_path(settings.out, name, seed), result)
    return result
