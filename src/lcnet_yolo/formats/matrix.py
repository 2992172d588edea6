"""The format matrix (``lcnet-yolo formats``): a trained detector exported to each tested format, then its
export, predict, val mAP and latency measured, for the table in docs/formats.md.

Every :class:`Case` is exported in its own folder from a copy of the ``.pt``, predicted on one image and validated
(``rect=False``, batch 1); a case that fails reports its one-line error in its row and the matrix goes on. The
loaded models are then timed taking turns (:func:`time_round_robin`). Each latency is also given as a multiple of
ONNX Runtime's (the float32 ONNX row); a format more than :data:`SLOW_FACTOR` times slower is flagged ⚠ and named
under the table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ultralytics import YOLO

from lcnet_yolo.data import trusted_data
from lcnet_yolo.formats import support
from lcnet_yolo.io.checkpoints import load_yolo
from lcnet_yolo.io.paths import IMAGE_SUFFIXES
from lcnet_yolo.plugin.compat import check_det_dataset

__all__ = [
    "CASES",
    "CASES_BY_KEY",
    "ONNX_RUNTIME_KEY",
    "OPTIONAL_CASES",
    "SLOW_FACTOR",
    "SLOW_HINTS",
    "Case",
    "Row",
    "format_matrix",
    "main",
    "matrix_markdown",
    "onnx_runtime_ratios",
    "run_case",
    "slow_formats",
    "time_round_robin",
]


@dataclass(frozen=True)
class Case:
    """One row of the format matrix: a label and Ultralytics export arguments (``format=pt`` means no export)."""

    key: str  # for ``--formats`` and folder names
    label: str
    format: str
    args: dict[str, Any] = field(default_factory=dict)


CASES = (
    Case("pt", "PyTorch (.pt)", "pt"),
    Case("torchscript", "TorchScript", "torchscript"),
    Case("onnx", "ONNX", "onnx"),
    Case("onnx-fp16", "ONNX fp16", "onnx", {"quantize": 16}),
    Case("onnx-dynamic", "ONNX dynamic", "onnx", {"dynamic": True}),
    Case("onnx-int8", "ONNX int8", "onnx", {"quantize": 8}),
    Case("openvino", "OpenVINO", "openvino"),
    Case("openvino-int8", "OpenVINO int8", "openvino", {"quantize": 8}),
    Case("ncnn", "NCNN", "ncnn"),
    Case("mnn", "MNN", "mnn"),
)
# Not in the default matrix (their packages are not in the dev environment; see FORMATS): run with --formats.
OPTIONAL_CASES = (Case("paddle", "PaddlePaddle", "paddle"), Case("coreml", "CoreML", "coreml"))
CASES_BY_KEY = {c.key: c for c in (*CASES, *OPTIONAL_CASES)}


@dataclass
class Row:
    """Measured outcome of one :class:`Case`."""

    case: Case
    exported: str = ""  # path of the exported model (the .pt itself for PyTorch)
    boxes: int | None = None  # boxes predicted on the probe image
    map50_95: float | None = None
    map50: float | None = None
    latency_ms: float | None = None  # median inference time per image, Ultralytics' own measurement
    error: str = ""


def _one_line(error: BaseException) -> str:
    if isinstance(error, ModuleNotFoundError):
        return support.message_for(error)
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:160]


def run_case(
    case: Case, weights: Path, data: str, imgsz: int, workdir: Path, image: str, device: str = "cpu"
) -> tuple[Row, Any]:
    """Export ``weights`` for ``case`` in its own folder, predict on ``image`` and validate (``rect=False``).

    Returns the row and the loaded model (None if a step failed), which :func:`format_matrix` then times.
    """
    row = Row(case)
    folder = workdir / case.key
    folder.mkdir(parents=True, exist_ok=True)
    local = folder / Path(weights).name
    shutil.copyfile(weights, local)
    try:
        if case.format == "pt":
            model_path = str(local)
        else:
            support.require_export(case.format, **case.args)
            calibration = {"data": data} if case.args.get("quantize") == 8 else {}
            model_path = str(
                load_yolo(local).export(format=case.format, imgsz=imgsz, device=device, **calibration, **case.args)
            )
        row.exported = model_path
        support.require_runtime(model_path)
        model = load_yolo(model_path) if case.format == "pt" else YOLO(model_path, task="detect")
        common = {"imgsz": imgsz, "device": device, "verbose": False}
        row.boxes = len(model.predict(image, **common)[0].boxes)
        metrics = model.val(
            data=data, batch=1, rect=False, plots=False, project=str(workdir / "val"), name=folder.name, **common
        )
        row.map50_95, row.map50 = float(metrics.box.map), float(metrics.box.map50)
        return row, model
    except Exception as error:  # a row reports its failure; the matrix goes on
        row.error = _one_line(error)
        return row, None


def time_round_robin(models: dict[int, Any], image: str, imgsz: int, runs: int, device: str = "cpu") -> dict:
    """Median inference ms per model (Ultralytics' own timing), models taking turns so that load from other
    processes on the machine falls on all of them alike. Two warm-up rounds are not counted."""
    times: dict[int, list[float]] = {key: [] for key in models}
    for round_ in range(runs + 2):
        for key, model in models.items():
            speed = model.predict(image, imgsz=imgsz, device=device, verbose=False)[0].speed["inference"]
            if round_ >= 2:
                times[key].append(speed)
    return {key: statistics.median(values) for key, values in times.items() if values}


def format_matrix(
    weights: str | Path,
    data: str,
    imgsz: int = 640,
    cases: tuple[Case, ...] = CASES,
    workdir: str | Path | None = None,
    image: str | None = None,
    runs: int = 20,
) -> list[Row]:
    """Run every case on ``weights`` (a detection ``.pt``) and return the measured rows."""
    data = trusted_data(data)
    load_yolo(weights)  # the trust boundary, once, before any format copies the file: a refusal stops here
    if image is None:
        image = _first_val_image(data)
    workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lcnet-yolo-formats-"))
    rows, models = [], {}
    for index, case in enumerate(cases):
        row, model = run_case(case, Path(weights), data, imgsz, workdir, image)
        rows.append(row)
        if model is not None:
            models[index] = model
    if runs > 0:
        for index, latency in time_round_robin(models, image, imgsz, runs).items():
            rows[index].latency_ms = latency
    return rows


def _first_val_image(data_yaml: str) -> str:
    val = check_det_dataset(data_yaml)["val"]
    folder = Path(val[0] if isinstance(val, list) else val)
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(f"no validation images under {folder}")
    return str(images[0])


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


SLOW_FACTOR = 2.0  # a format whose latency is more than this many times ONNX Runtime's is flagged ⚠
ONNX_RUNTIME_KEY = "onnx"  # the row timed in ONNX Runtime (float32 ONNX) that the others are compared with
# What to try when a format is flagged (BENCHMARKS.md, "NCNN and ONNX Runtime"), by Case.format.
SLOW_HINTS = {
    "ncnn": "NCNN's OpenMP threads spin while they wait, which stalls on a busy machine: "
    "run with OMP_WAIT_POLICY=PASSIVE in the environment"
}


def onnx_runtime_ratios(rows: list[Row]) -> dict[str, float]:
    """Latency of each timed row (by case key) as a multiple of the ONNX Runtime row's; empty without that row."""
    reference = next((r.latency_ms for r in rows if r.case.key == ONNX_RUNTIME_KEY and r.latency_ms), None)
    if reference is None:
        return {}
    return {r.case.key: r.latency_ms / reference for r in rows if r.latency_ms is not None}


def slow_formats(rows: list[Row], factor: float = SLOW_FACTOR) -> list[tuple[str, float]]:
    """(label, × ONNX Runtime) of the formats that run more than ``factor`` times slower than ONNX Runtime."""
    ratios = onnx_runtime_ratios(rows)
    return [(r.case.label, ratios[r.case.key]) for r in rows if ratios.get(r.case.key, 0.0) > factor]


def matrix_markdown(rows: list[Row]) -> str:
    """The matrix as a markdown table: export ok / predict ok / val mAP / difference to the .pt / latency and its
    multiple of ONNX Runtime's (⚠ above :data:`SLOW_FACTOR`, the slow formats named in a line under the table)."""
    reference = next((r.map50_95 for r in rows if r.case.format == "pt" and r.map50_95 is not None), None)
    ratios = onnx_runtime_ratios(rows)
    lines = [
        "| format | export | predict (boxes) | val mAP50-95 | Δ vs .pt | mAP50 | latency ms | × ONNX Runtime |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        exported = "—" if row.case.format == "pt" else ("ok" if row.exported else "failed")
        predicted = f"ok ({row.boxes})" if row.boxes is not None else ("—" if not row.exported else "failed")
        delta = f"{row.map50_95 - reference:+.3f}" if reference is not None and row.map50_95 is not None else ""
        ratio = ratios.get(row.case.key)
        times = "" if ratio is None else f"{ratio:.2f}" + (" ⚠" if ratio > SLOW_FACTOR else "")
        lines.append(
            f"| {row.case.label} | {exported} | {predicted} | {_fmt(row.map50_95, 3)} | {delta} | "
            f"{_fmt(row.map50, 3)} | {_fmt(row.latency_ms, 1)} | {times} |"
        )
        if row.error:
            lines.append(f"| ↳ {row.case.label}: {row.error.replace('|', '/')} | | | | | | | |")
    slow = slow_formats(rows)
    if slow:
        named = ", ".join(f"{label} ({ratio:.1f}×)" for label, ratio in slow)
        lines.append(f"\n⚠ more than {SLOW_FACTOR:g}× slower than ONNX Runtime on this machine: {named}")
        flagged = {r.case.format for r in rows if r.case.label in dict(slow)}
        lines += [f"  {SLOW_HINTS[fmt]}" for fmt in sorted(flagged) if fmt in SLOW_HINTS]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``lcnet-yolo formats``: export a trained model to each tested format and print the matrix (markdown)."""
    parser = argparse.ArgumentParser(prog="lcnet-yolo formats", description=main.__doc__)
    parser.add_argument("--model", required=False, help="trained detection .pt (required unless --support)")
    parser.add_argument("--data", default="neon-trees", help="data YAML or dataset name for val and int8 calibration")
    parser.add_argument("--imgsz", type=int, default=640, help="export, val and latency image size (default 640)")
    parser.add_argument(
        "--threads", type=int, default=2, help="CPU threads for PyTorch/TorchScript (default 2); others: their default"
    )
    parser.add_argument("--runs", type=int, default=20, help="timed predictions per format (median; default 20)")
    keys = ", ".join(CASES_BY_KEY)
    parser.add_argument("--formats", default="", help=f"comma-separated subset of: {keys}")
    parser.add_argument("--workdir", default=None, help="where exports go (default: a new temporary folder)")
    parser.add_argument("--support", action="store_true", help="print the table of all formats and their extras")
    opts = parser.parse_args(argv)
    if opts.support:
        print(support.support_markdown())
        return 0
    if not opts.model:
        raise ValueError("--model is required (a trained detection .pt)")
    if not Path(opts.model).is_file():
        raise FileNotFoundError(f"--model {opts.model} does not exist")
    wanted = [k.strip() for k in opts.formats.split(",") if k.strip()]
    unknown = [k for k in wanted if k not in CASES_BY_KEY]
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(unknown)}; choose from {keys}")
    cases = tuple(CASES_BY_KEY[k] for k in wanted) or CASES
    os.environ.setdefault("OMP_NUM_THREADS", str(opts.threads))
    import torch

    torch.set_num_threads(opts.threads)
    start = time.time()
    rows = format_matrix(opts.model, opts.data, opts.imgsz, cases, opts.workdir, runs=opts.runs)
    print(matrix_markdown(rows))
    print(
        f"\n{Path(opts.model).name}, data {opts.data}, {opts.imgsz} px, batch 1, rect=False, PyTorch threads "
        f"{opts.threads} (other runtimes: their default, {os.cpu_count()} CPUs here), median of {opts.runs} rounds; "
        f"{time.time() - start:.0f} s"
    )
    return 0
