"""``lcnet-yolo benchmark``'s arguments (also ``python -m lcnet_yolo.benchmark``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lcnet_yolo.benchmark.device import DeviceSettings, run_device_benchmark
from lcnet_yolo.benchmark.models import yaml_exists
from lcnet_yolo.benchmark.run import report_only, run_benchmark
from lcnet_yolo.benchmark.settings import ABLATIONS, BACKENDS, DEFAULT_MODELS, BenchmarkSettings, quick_settings
from lcnet_yolo.plugin.compat import no_dataset_downloads

DESCRIPTION = (
    "Our models side by side with Ultralytics' YOLOv8n, YOLO11n and YOLO26n on this CPU: latency, and accuracy at "
    "an equal training budget over several seeds. Resumable: every finished training is stored in OUT/train, a "
    "rerun skips it, and the report aggregates whatever OUT holds. With --device: training and inference speed on "
    "one GPU (AMP, fp16) or, with --device cpu, in fp32."
)


def parse_settings(argv: list[str] | None) -> tuple[argparse.Namespace, BenchmarkSettings]:
    """The parsed arguments and the settings they describe (ValueError on inconsistent ones)."""
    defaults = BenchmarkSettings()
    parser = argparse.ArgumentParser(prog="lcnet-yolo benchmark", description=DESCRIPTION)
    parser.add_argument("--quick", action="store_true", help="CI-sized run on synthetic data (2 seeds, a few minutes)")
    parser.add_argument("--models", nargs="+", default=None, help=f"default: {' '.join(DEFAULT_MODELS)}")
    parser.add_argument("--ablations", action="store_true", help="add the ablation models of BENCHMARKS.md")
    parser.add_argument("--out", default=str(defaults.out), help="output folder (default: %(default)s)")
    parser.add_argument("--baseline", default=defaults.baseline)
    parser.add_argument("--imgsz", nargs="+", type=int, default=None, help="latency image sizes (default: 320 640)")
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--backends", nargs="+", default=None, choices=BACKENDS)
    parser.add_argument("--data", default=None, help="dataset name or data.yaml (default: neon-trees)")
    parser.add_argument(
        "--epochs", type=int, default=None, help=f"equal training budget (default: {defaults.epochs}); 0 skips training"
    )
    parser.add_argument("--train-imgsz", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help=f"training seeds (default: {' '.join(map(str, defaults.seeds))})",
    )
    seeds.add_argument("--seed", type=int, default=None, help="one training seed (same as --seeds S)")
    parser.add_argument(
        "--val-every", type=int, default=None, help=f"validate every N epochs (default: {defaults.val_every})"
    )
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--optimizer", default=None, help="Ultralytics optimizer for every model (default: AdamW)")
    parser.add_argument("--lr0", type=float, default=None, help="initial learning rate for every model")
    parser.add_argument("--train-models", nargs="+", default=None, help="train only these (default: all models)")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 export and its measurements")
    parser.add_argument("--calib-images", type=int, default=None)
    parser.add_argument(
        "--no-latency", action="store_true", help="train only (skip every timing; a chunk of a resumable run)"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rebuild the report from what --out holds; measure nothing"
    )
    parser.add_argument(
        "--shorter-budget",
        metavar="DIR",
        default=None,
        help="a benchmark folder trained like this one with fewer epochs: the report adds the budget check (does "
        "the longer budget gain >= 5 %%, paired by seed?)",
    )
    device = parser.add_argument_group("GPU mode (--device)")
    device.add_argument(
        "--device",
        default=None,
        help="measure training img/s (AMP), the cold first step and fp16 inference on this CUDA GPU (0), or in fp32 "
        "on the CPU (cpu); --imgsz (one size, default 640), --batch (32), --warmup (5), --repeats (30) apply",
    )
    device.add_argument("--channels-last", action="store_true", help="with --device: add channels_last rows")
    device.add_argument(
        "--deterministic", action="store_true", help="with --device: add rows in deterministic mode (as training runs)"
    )
    args = parser.parse_args(argv)

    models = tuple(args.models) if args.models else DEFAULT_MODELS
    if args.ablations:
        models += tuple(m for m in ABLATIONS if m not in models)
    settings = quick_settings(args.out, models) if args.quick else BenchmarkSettings(out=Path(args.out), models=models)
    overrides = {
        "baseline": args.baseline,
        "imgsz": tuple(args.imgsz) if args.imgsz else None,
        "threads": args.threads,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "backends": tuple(args.backends) if args.backends else None,
        "data": args.data,
        "epochs": args.epochs,
        "train_imgsz": args.train_imgsz,
        "batch": args.batch,
        "seeds": tuple(args.seeds) if args.seeds else ((args.seed,) if args.seed is not None else None),
        "val_every": args.val_every,
        "workers": args.workers,
        "calib_images": args.calib_images,
        "train_models": tuple(args.train_models) if args.train_models else None,
        "shorter_budget": Path(args.shorter_budget) if args.shorter_budget else None,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    if args.no_int8:
        settings.int8 = False
    if args.no_latency:
        settings.latency = False
    if args.optimizer is not None:
        settings.train_args["optimizer"] = args.optimizer
    if args.lr0 is not None:
        settings.train_args["lr0"] = args.lr0
    settings.__post_init__()
    return args, settings


def device_settings(args: argparse.Namespace, settings: BenchmarkSettings) -> DeviceSettings:
    """The GPU mode's settings from the parsed arguments (its own defaults where an argument was left out)."""
    if args.imgsz and len(args.imgsz) > 1:
        raise ValueError(f"--imgsz {' '.join(map(str, args.imgsz))}: the GPU mode measures one size")
    defaults = DeviceSettings()
    return DeviceSettings(
        device=args.device,
        models=settings.models,
        baseline=settings.baseline,
        imgsz=args.imgsz[0] if args.imgsz else defaults.imgsz,
        batch=args.batch or defaults.batch,
        warmup=defaults.warmup if args.warmup is None else args.warmup,
        repeats=args.repeats or defaults.repeats,
        channels_last=args.channels_last,
        deterministic=args.deterministic,
        out=settings.out,
    )


def main(argv: list[str] | None = None) -> int:
    """``lcnet-yolo benchmark [--quick] [--models ...] [--seeds ...] [--out DIR] ...``; returns the exit status."""
    try:
        args, settings = parse_settings(argv)
        if args.device is not None:
            missing = [m for m in settings.models if not yaml_exists(m)]
            if missing:
                raise ValueError(f"unknown model(s): {', '.join(missing)}")
            run_device_benchmark(device_settings(args, settings))
            return 0
        if args.channels_last or args.deterministic:
            raise ValueError("--channels-last and --deterministic apply to the GPU mode (--device)")
        if args.report_only:
            report_only(settings.out, settings.baseline, settings.models, settings.shorter_budget)
            return 0
        missing = [m for m in settings.models if not yaml_exists(m)]
        if missing:
            raise ValueError(f"unknown model(s): {', '.join(missing)}")
        with no_dataset_downloads():
            run_benchmark(settings)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"lcnet-yolo benchmark: error: {error}", file=sys.stderr)
        return 2
    return 0
