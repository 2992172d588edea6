"""The ``lcnet-yolo`` command, in the ``yolo`` idiom: ``lcnet-yolo MODE key=value ...``.

Modes ``train``, ``val``, ``predict``, ``export`` and ``track`` take Ultralytics' own ``key=value`` arguments,
parsed and validated by Ultralytics' CLI helpers, and run Ultralytics' ``YOLO`` object; lcnet-yolo only resolves
its packaged model and dataset names and adds ``backbone_weights=PATH|NAME`` to ``train``. Bad arguments stop
before anything runs, in one line with exit status 2. ``info`` prints the model zoo table, ``weights`` the
weights names (:mod:`lcnet_yolo.io.hub`), ``benchmark`` runs :mod:`lcnet_yolo.benchmark`, ``formats`` the format
matrix of :mod:`lcnet_yolo.formats` and ``demo`` runs the end-to-end demo.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from lcnet_yolo import formats
from lcnet_yolo.data import dataset_descriptions, deepforest_image, make_synthetic_dataset, resolve_data, trusted_data
from lcnet_yolo.io.checkpoints import load_yolo
from lcnet_yolo.io.errors import ArgumentError, LCNetYoloError
from lcnet_yolo.io.safe_load import restricted_loading
from lcnet_yolo.nn import find_backbone
from lcnet_yolo.plugin import compat
from lcnet_yolo.plugin.register import packaged_models, resolve_model
from lcnet_yolo.plugin.trainers import LCNetClassificationTrainer, LCNetDetectionTrainer
from lcnet_yolo.version import __version__

MODES = ("train", "val", "predict", "export", "track")
DEFAULT_MODEL = "yolov8n-pplcnet.yaml"
OUR_KEYS = ("backbone_weights",)  # train arguments that lcnet-yolo adds to Ultralytics' (read by our trainers)
OUR_KEYS += ("slice", "overlap", "slice_full")  # predict arguments of sliced prediction (lcnet_yolo.slicing)
TRAINERS = {"detect": LCNetDetectionTrainer, "classify": LCNetClassificationTrainer}

# Demo budget: about 5-6 minutes on 2 CPU cores (26 neon-trees tiles, 7 steps per epoch, trained from scratch).
DEMO_EPOCHS = 80
DEMO_IMGSZ = 416
DEMO_BATCH = 4
# The demo trains with the trainer's defaults (LCNetDetectionTrainer: AdamW at lr0 0.01, one optimizer step per
# batch on this small dataset; BENCHMARKS.md, "Defaults that train").
DEMO_IMAGE = "SOAP_031.png"  # an unlabelled NEON image shipped in the deepforest wheel


def help_text() -> str:
    """The ``--help`` text: usage, our models and our datasets."""

    def listing(names: list[str]) -> str:
        return textwrap.fill(", ".join(names), width=110, initial_indent="    ", subsequent_indent="    ")

    detectors = [m for m in packaged_models() if not m.endswith("-cls.yaml") and "-abl-" not in m]
    ablations = [m for m in packaged_models() if "-abl-" in m]
    classifiers = [m for m in packaged_models() if m.endswith("-cls.yaml")]
    datasets = "\n".join(f"    {name:<14}{desc}" for name, desc in dataset_descriptions().items()) or "    (none)"
    return f"""lcnet-yolo {__version__}: YOLOv8 with a PP-LCNet backbone, on Ultralytics.

Usage:
    lcnet-yolo MODE [key=value ...]       MODE: {", ".join(MODES)} (arguments as for the `yolo` command)
    lcnet-yolo info [model=NAME] [imgsz=640]   model summary, or the model zoo table
    lcnet-yolo benchmark [...]             latency/accuracy benchmark (see `lcnet-yolo benchmark --help`)
    lcnet-yolo demo [--quick]              build neon-trees, train, validate, predict, export
    lcnet-yolo weights                     ImageNet weights names (backbone_weights=NAME), URLs, cache
    lcnet-yolo formats --model best.pt     export to each tested format: export/predict/val/latency table
    lcnet-yolo convert SRC.pt [DST]        checkpoint -> .safetensors (safe to share; see SECURITY.md)

Examples:
    lcnet-yolo train model=yolov8n-pplcnet.yaml data=neon-trees epochs=50 imgsz=640
    lcnet-yolo train model=yolov8s-pplcnet.yaml data=neon-trees backbone_weights=imagenet
    lcnet-yolo val model=runs/detect/train/weights/best.pt data=neon-trees
    lcnet-yolo predict model=runs/detect/train/weights/best.pt source=image.png
    lcnet-yolo predict model=runs/detect/train/weights/best.pt source=ortho.tif slice=640 overlap=0.2
    lcnet-yolo export model=runs/detect/train/weights/best.pt format=onnx
    lcnet-yolo track model=runs/detect/train/weights/best.pt source=video.mp4 tracker=bytetrack.yaml

Detection models:
{listing(detectors)}
Ablations of the n model (see BENCHMARKS.md):
{listing(ablations)}
Classification models (task=classify, data=an ImageFolder directory):
{listing(classifiers)}
Datasets (data=NAME):
{datasets}
"""


def check_keys(overrides: dict[str, Any]) -> None:
    """Ultralytics' argument check (``SyntaxError`` naming similar valid keys), without its ``yolo`` help text."""
    with compat.logger_disabled():
        compat.check_dict_alignment(compat.DEFAULT_CFG_DICT, {k: v for k, v in overrides.items() if k not in OUR_KEYS})


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` arguments with Ultralytics' own parser (bare boolean keys mean ``True``); keys are
    checked against Ultralytics' and :data:`OUR_KEYS`."""
    overrides: dict[str, Any] = {}
    for arg in compat.merge_equals_args(args):
        arg = arg.removeprefix("--")
        if "=" in arg:
            key, value = compat.parse_key_value_pair(arg)
            overrides[key] = value
        elif isinstance(compat.DEFAULT_CFG_DICT.get(arg), bool):
            overrides[arg] = True
        else:
            check_keys({arg: ""})
            raise SyntaxError(f"argument '{arg}' needs a value, i.e. '{arg}=VALUE'")
    check_keys(overrides)
    return overrides


# Numbers Ultralytics' check_cfg leaves unchecked that must not be negative (it checks epochs >= 1, fractions ...).
NON_NEGATIVE = ("workers", "close_mosaic", "warmup_epochs")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_arguments(overrides: dict[str, Any]) -> None:
    """Check types and ranges of Ultralytics' arguments before anything is built (:class:`ArgumentError`).

    Types and most ranges are Ultralytics' own ``check_cfg``; on top of it: ``imgsz`` positive (one size or
    ``[h, w]``), ``batch`` a positive integer, ``-1`` (AutoBatch) or a fraction in (0, 1) (AutoBatch's share of
    GPU memory), and :data:`NON_NEGATIVE` counts not negative.
    """
    try:
        compat.check_cfg({k: v for k, v in overrides.items() if k not in OUR_KEYS}, hard=True)
    except (TypeError, ValueError) as error:
        raise ArgumentError(str(error)) from None
    if "imgsz" in overrides:
        imgsz = overrides["imgsz"]
        sizes = imgsz if isinstance(imgsz, list | tuple) else [imgsz]
        if not 1 <= len(sizes) <= 2 or not all(_is_number(s) and s >= 1 and float(s).is_integer() for s in sizes):
            raise ArgumentError(f"'imgsz={imgsz}' is invalid: give a positive integer (i.e. 'imgsz=640') or [h, w]")
    if "batch" in overrides:
        batch = overrides["batch"]
        valid = _is_number(batch) and (batch == -1 or 0 < batch < 1 or (batch >= 1 and float(batch).is_integer()))
        if not valid:
            raise ArgumentError(
                f"'batch={batch}' is invalid: give a positive integer (i.e. 'batch=16'), -1 for AutoBatch, "
                "or a fraction in (0, 1) of GPU memory for AutoBatch"
            )
    for key in NON_NEGATIVE:
        if _is_number(overrides.get(key)) and overrides[key] < 0:
            raise ArgumentError(f"'{key}={overrides[key]}' is invalid: '{key}' must be >= 0")


def run_mode(mode: str, args: list[str]) -> int:
    """Run one of Ultralytics' modes on our model with Ultralytics' arguments."""
    overrides = parse_overrides(args)
    backbone_weights = overrides.get("backbone_weights")
    if backbone_weights and mode != "train":
        raise ValueError("backbone_weights= is a train argument")
    if mode != "predict" and {"slice", "overlap", "slice_full"} & overrides.keys():
        raise ValueError("slice=, overlap= and slice_full= are predict arguments (sliced prediction of pictures)")
    check_arguments(overrides)
    model_path, task = resolve_model(overrides.pop("model", DEFAULT_MODEL)), overrides.pop("task", None)
    task = formats.check_mode(mode, model_path, overrides, task)  # missing packages, exports' task and imgsz
    model = load_yolo(model_path, task=task)
    formats.check_model(model, model_path, task)
    stored_data = model.overrides.get("data")  # from a checkpoint: kept only when it is a dataset on this machine
    if mode == "val" and "data" not in overrides and str(model_path).endswith(".pt"):
        if not stored_data:
            raise ArgumentError(
                f"{model_path}: val needs data=: the dataset its train_args name is not on this machine, and a "
                "dataset named in a file is not followed"
            )
        overrides["data"] = stored_data  # checked by the same resolver as a data= the user gives
    if "data" in overrides:  # checked, local, never downloaded (lcnet_yolo.data.trust)
        overrides["data"] = trusted_data(overrides["data"], model.task, overrides.get("split"))
    if mode == "predict" and {"slice", "overlap", "slice_full"} & overrides.keys():
        from lcnet_yolo.slicing.command import predict_command

        return predict_command(model, overrides)
    if mode in {"predict", "track"}:
        overrides.setdefault("save", True)  # as `yolo predict`/`yolo track`: results are saved unless save=False
    if mode == "predict":
        overrides.setdefault("source", compat.ASSETS)
    elif mode == "track" and "source" not in overrides:
        raise ValueError("track needs a video: source=PATH (a file, a folder of frames, or a stream URL)")
    elif mode == "export":
        overrides.setdefault("format", "torchscript")
    elif mode == "train":
        trainer = TRAINERS.get(model.task)
        if backbone_weights and trainer is None:
            raise ValueError(f"backbone_weights= applies to detect and classify models, not {model.task}")
        if trainer is not None:
            overrides["trainer"] = trainer
        if backbone_weights:
            check_weights_name(backbone_weights, model.model)
    try:
        # every .pt Ultralytics opens on its own (resume, pretrained=) is read weights-only; no dataset downloads
        with restricted_loading(), compat.no_dataset_downloads():
            if mode in {"predict", "track"}:  # as `yolo` does: results handled one by one, never kept for a video
                with compat.not_ultralytics_cli():  # else Ultralytics takes `lcnet-yolo` for `yolo` and returns None
                    for _ in getattr(model, mode)(stream=True, **overrides):
                        pass
            else:
                getattr(model, mode)(**overrides)
    except RuntimeError as error:  # Ultralytics' trainer wraps any dataset problem
        cause = compat.dataset_error_cause(error)
        if cause is None:
            raise
        reason = one_line(cause).replace("❌", "").strip()
        raise ArgumentError(f"data={overrides.get('data', '(default)')}: {reason}") from None
    return 0


def check_weights_name(backbone_weights: Any, model: Any) -> None:
    """A weights name (``backbone_weights=imagenet``) must exist for the model's PP-LCNet scale: checked before
    the dataset is read or anything downloads (a file path is checked when it is loaded)."""
    from lcnet_yolo.io.hub import is_weights_name, url_for

    if is_weights_name(backbone_weights):
        url_for(backbone_weights, find_backbone(model).scale)


def weights_command(args: list[str]) -> int:
    """``lcnet-yolo weights``: the ImageNet weights names, their scales and URLs, and what is cached."""
    from lcnet_yolo.io.hub import listing

    if args:
        raise ValueError("usage: lcnet-yolo weights")
    print(listing())
    return 0


def zoo_table(imgsz: int = 640) -> str:
    """Markdown table of parameters and GFLOPs of our detectors next to Ultralytics' YOLOv8n-x (built from YAML)."""
    from ultralytics import YOLO

    rows = [f"| model | backbone | params (M) | GFLOPs @{imgsz} |", "|---|---|---:|---:|"]
    for scale in "nsmlx":
        default = f"yolov8{scale}-pplcnet.yaml"
        ours = sorted(
            (n for n in packaged_models() if n.startswith(f"yolov8{scale}-pplcnet")), key=lambda n: n != default
        )
        for name in (f"yolov8{scale}.yaml", *ours):
            model = YOLO(name).model
            if "pplcnet" in name:
                width = find_backbone(model).scale
                backbone = f"PP-LCNet x{width:g}" if width % 1 else f"PP-LCNet x{width:.1f}"
            else:
                backbone = "CSPDarknet (YOLOv8)"
            params, flops = compat.get_num_params(model) / 1e6, compat.get_flops(model, imgsz)
            rows.append(f"| {Path(name).stem} | {backbone} | {params:.2f} | {flops:.1f} |")
    return "\n".join(rows)


def info(args: list[str]) -> int:
    """``lcnet-yolo info``: the zoo table, or Ultralytics' summary of one model (``model=NAME``)."""
    overrides = parse_overrides(args)
    imgsz = int(overrides.get("imgsz", 640))
    if "model" not in overrides:
        print(zoo_table(imgsz))
        return 0
    model = load_yolo(resolve_model(overrides["model"]))  # the same trust boundary as every other mode
    model.info(detailed=bool(overrides.get("verbose", False)), imgsz=imgsz)
    return 0


def demo(args: list[str]) -> int:
    """Build neon-trees, train the default model on CPU, validate, predict on an unlabelled image, export ONNX."""
    parser = argparse.ArgumentParser(prog="lcnet-yolo demo", description=demo.__doc__)
    parser.add_argument("--quick", action="store_true", help="seconds: synthetic data, 1 epoch at 64 px")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model YAML (default {DEFAULT_MODEL})")
    parser.add_argument("--epochs", type=int, default=None, help=f"default {DEMO_EPOCHS} (1 with --quick)")
    parser.add_argument("--imgsz", type=int, default=None, help=f"default {DEMO_IMGSZ} (64 with --quick)")
    parser.add_argument("--batch", type=int, default=None, help=f"default {DEMO_BATCH} (4 with --quick)")
    parser.add_argument("--project", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--device", default="cpu")
    opts = parser.parse_args(args)
    start = time.time()
    project = Path(opts.project).resolve()
    if opts.quick:
        epochs, imgsz, batch = opts.epochs or 1, opts.imgsz or 64, opts.batch or 4
        print("[1/5] dataset: a synthetic one (--quick)")
        data = str(make_synthetic_dataset(project / "synthetic-data", n_train=8, n_val=4, imgsz=64))
        image = project / "synthetic-data" / "images" / "val"
        image = sorted(image.glob("*.png"))[0]
    else:
        epochs, imgsz, batch = opts.epochs or DEMO_EPOCHS, opts.imgsz or DEMO_IMGSZ, opts.batch or DEMO_BATCH
        print("[1/5] dataset neon-trees: building or checking (the first run extracts it from the deepforest wheel)")
        data = resolve_data("neon-trees")
        image = deepforest_image(DEMO_IMAGE)
    print(f"[2/5] training {opts.model} for {epochs} epoch(s) at {imgsz} px on {opts.device}")
    common = {"imgsz": imgsz, "batch": batch, "device": opts.device, "project": str(project), "workers": 0}
    model = load_yolo(resolve_model(opts.model))  # the same trust boundary as every other mode
    model.train(data=data, epochs=epochs, name="train", trainer=LCNetDetectionTrainer, **common)
    weights = Path(model.trainer.best)
    print("[3/5] validating best.pt")
    model = load_yolo(weights)
    metrics = model.val(data=data, name="val", **common)
    print(f"[4/5] predicting on {image.name}")
    from lcnet_yolo.slicing.command import demo_prediction

    prediction, boxes, how = demo_prediction(model, Path(image), imgsz, opts.device, project)
    print(f"      predicted {how}")
    print("[5/5] exporting ONNX")
    onnx = model.export(format="onnx", imgsz=imgsz, device=opts.device)
    minutes = (time.time() - start) / 60
    print(
        f"\nlcnet-yolo demo finished in {minutes:.1f} min\n"
        f"  data           {data}\n"
        f"  training run   {weights.parent.parent}  (results.png, curves, weights/best.pt)\n"
        f"  validation     mAP50 {metrics.box.map50:.3f}   mAP50-95 {metrics.box.map:.3f}   ({metrics.save_dir})\n"
        f"  prediction     {prediction}  ({boxes} boxes, {how.split(':')[0]})\n"
        f"  ONNX model     {onnx}"
    )
    return 0


# Exceptions that mean bad input: reported in one line, exit status 2 (Ultralytics' argument checks raise the others).
USER_ERRORS = (LCNetYoloError, FileNotFoundError, ValueError, SyntaxError, formats.MissingPackageError)


def convert_command(args: list[str]) -> int:
    """``lcnet-yolo convert SRC.pt [DST.safetensors]``: a checkpoint as tensors plus a metadata block."""
    from lcnet_yolo.io.safetensors import convert

    if not 1 <= len(args) <= 2:
        raise ValueError("usage: lcnet-yolo convert SRC.pt [DST.safetensors]")
    print(convert(*args))
    return 0


def one_line(error: BaseException) -> str:
    """An error message on one line: its lines joined (a sentence end gets a space, other line ends "; ")."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    for line in lines[1:]:
        text += (" " if text.endswith((".", ":", ";", "!", "?")) else "; ") + line
    return text


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lcnet-yolo``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(help_text())
        return 0
    command, rest = argv[0], argv[1:]
    if command in {"detect", "classify"} and rest:  # `lcnet-yolo detect train ...`, as `yolo detect train ...`
        command, rest = rest[0], [*rest[1:], f"task={command}"]
    try:
        if command == "benchmark":
            from lcnet_yolo.benchmark import main as benchmark_main

            return benchmark_main(rest)
        if command == "convert":
            return convert_command(rest)
        if command == "demo":
            return demo(rest)
        if command == "formats":
            return formats.main(rest)
        if command == "info":
            return info(rest)
        if command == "weights":
            return weights_command(rest)
        if command in MODES:
            return run_mode(command, rest)
        print(f"lcnet-yolo: unknown command '{command}'; run `lcnet-yolo --help`", file=sys.stderr)
        return 2
    except USER_ERRORS as error:
        print(f"lcnet-yolo {command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:  # a package of an optional format or of tracking: name the extra
        print(f"lcnet-yolo {command}: error: {formats.message_for(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
