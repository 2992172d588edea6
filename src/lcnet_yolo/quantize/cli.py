"""The arguments of ``python -m lcnet_yolo.quantize``: int8 vs fp32 side by side (:func:`~.comparison.measure`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lcnet_yolo.io.errors import LCNetYoloError
from lcnet_yolo.io.model_yaml import check_model_yaml_file
from lcnet_yolo.io.safe_load import safe_load
from lcnet_yolo.plugin.compat import no_dataset_downloads
from lcnet_yolo.quantize.comparison import measure, report
from lcnet_yolo.quantize.onnx_int8 import CALIBRATIONS

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """``python -m lcnet_yolo.quantize ...``: measure and print the tables; returns the exit status (2: bad input)."""
    parser = argparse.ArgumentParser(
        prog="python -m lcnet_yolo.quantize",
        description="int8 (ONNX Runtime QDQ and OpenVINO/NNCF) vs fp32: latency side by side and mAP.",
    )
    parser.add_argument("--model", nargs="+", required=True, help="trained .pt files (mAP measured) or model names")
    parser.add_argument("--data", default="neon-trees", help="data.yaml or 'neon-trees' (calibration: train split)")
    parser.add_argument("--out", default="runs/int8", help="folder for the exported files and results.json")
    parser.add_argument("--imgsz", type=int, default=640, help="latency input size")
    parser.add_argument("--val-imgsz", type=int, default=416, help="mAP input size (the training size)")
    parser.add_argument("--calib", type=int, default=64, help="number of calibration images")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--baseline", default="yolov8n", help="fp32 ONNX Runtime reference (name or .pt)")
    parser.add_argument("--no-val", action="store_true", help="skip the mAP measurements")
    parser.add_argument(
        "--ort-spin", action="store_true", help="ONNX Runtime worker threads spin during a run (its default)"
    )
    parser.add_argument(
        "--ort-calibration",
        choices=CALIBRATIONS,
        default="percentile",
        help="how ONNX Runtime's int8 file sets activation ranges (default: %(default)s, which tolerates outliers; "
        "minmax lost up to 3 mAP50-95 points on one seed in three)",
    )
    args = parser.parse_args(argv)
    for name in (*args.model, args.baseline):
        if str(name).endswith(".pt") and not Path(name).is_file():
            print(f"error: weights not found: {name}", file=sys.stderr)
            return 2
        try:  # every .pt through the trust boundary before anything is measured
            if str(name).endswith(".pt"):
                safe_load(name)
            elif str(name).endswith((".yaml", ".yml")):
                check_model_yaml_file(name)
        except (FileNotFoundError, LCNetYoloError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    if min(args.imgsz, args.val_imgsz, args.calib, args.threads, args.repeats) < 1 or args.warmup < 0:
        print("error: --imgsz, --val-imgsz, --calib, --threads and --repeats must be positive", file=sys.stderr)
        return 2
    try:
        with no_dataset_downloads():
            results = measure(
                args.model,
                args.data,
                args.out,
                imgsz=args.imgsz,
                val_imgsz=args.val_imgsz,
                calib=args.calib,
                threads=args.threads,
                repeats=args.repeats,
                warmup=args.warmup,
                baseline=args.baseline,
                val=not args.no_val,
                ort_spin=args.ort_spin,
                ort_calibration=args.ort_calibration,
            )
    except (FileNotFoundError, LCNetYoloError) as error:  # DatasetError and WeightsError are LCNetYoloErrors
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report(results))
    return 0
