"""``lcnet-yolo predict ... slice=640 overlap=0.2 [slice_full=True]``: sliced prediction of pictures and rasters.

Outputs go where ``predict`` puts them (``runs/detect/predict{N}``): the annotated picture, ``labels/STEM.txt``
with ``save_txt=True``, and for a raster ``STEM.geojson`` and ``STEM.gpkg`` in map coordinates. Every picture is
checked before the first is predicted, and every file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from lcnet_yolo.plugin import compat
from lcnet_yolo.slicing import geo
from lcnet_yolo.slicing.core import SliceError, check_slice
from lcnet_yolo.slicing.predict import MAX_PICTURE_PIXELS, Picture, predict_picture

SLICE_KEYS = ("slice", "overlap", "slice_full")  # lcnet-yolo's predict keys (none of them is an Ultralytics key)
DEFAULT_OVERLAP = 0.2


def picture_files(source: Any) -> list[Path]:
    """The pictures to slice: the file itself or a folder's pictures in name order; videos and streams refused."""
    path = Path(str(source))
    suffixes = {f".{s}" for s in compat.IMG_FORMATS} | geo.RASTER_SUFFIXES
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            raise SliceError(f"source={source}: the folder holds no pictures")
        return files
    if not path.is_file():
        raise SliceError(f"source={source}: slice= predicts picture files or folders of them, and this is neither")
    if path.suffix.lower() not in suffixes:
        raise SliceError(f"source={source}: slice= works on pictures, not videos or other files; predict it whole")
    return [path]


def picture_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` from the file's header (nothing decoded)."""
    if geo.is_raster(path):
        with geo.Raster(path) as raster:
            return raster.height, raster.width
    try:
        with compat.plain_image_open()(path) as image:
            return image.height, image.width
    except Exception as error:
        raise SliceError(f"cannot read picture {path}: {' '.join(str(error).split())}") from None


def _replace_into(target: Path, write: Any) -> None:
    """Call ``write(partial_path)`` and rename the partial file to ``target`` (nothing left behind on failure)."""
    partial = target.with_name(f".{target.stem}.{os.getpid()}.partial{target.suffix}")
    try:
        write(partial)
        if partial.exists():
            os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def predict_command(model: Any, overrides: dict[str, Any]) -> int:
    """Run sliced prediction for ``lcnet-yolo predict``; ``overrides`` are the parsed ``key=value`` arguments."""
    size = overrides.pop("slice", None)
    overlap = overrides.pop("overlap", DEFAULT_OVERLAP)
    full = bool(overrides.pop("slice_full", False))
    if size is None:
        raise SliceError("overlap= and slice_full= go with slice=SIZE (e.g. slice=640 overlap=0.2)")
    stride = compat.model_stride(model)
    check_slice(1 << 30, 1 << 30, size, overlap, stride)  # the numbers themselves, before any file is read
    files = picture_files(overrides.pop("source", compat.ASSETS))
    for path in files:  # every picture is checked before anything runs or is written
        check_slice(*picture_size(path), size, overlap, stride)
    save, save_txt = overrides.pop("save", True), overrides.pop("save_txt", False)
    save_conf = overrides.pop("save_conf", False)
    run_keys = {key: overrides.pop(key) for key in ("project", "name", "exist_ok") if key in overrides}
    save_dir = compat.predict_save_dir(run_keys) if save or save_txt else None
    with warnings.catch_warnings():
        warnings.simplefilter("always", geo.GeoWarning)
        warnings.showwarning = lambda message, *args, **kwargs: print(f"warning: {message}", file=sys.stderr)
        for path in files:
            picture = Picture(path)
            try:
                start = time.perf_counter()
                result = predict_picture(model, picture, size, overlap, full, **overrides)
                seconds = time.perf_counter() - start
                if save_dir is not None:
                    save_picture_outputs(result, picture, save_dir, save, save_txt, save_conf)
            finally:
                picture.close()
            extra = " + the whole picture" if full else ""
            print(
                f"{path}: {picture.width}x{picture.height}, {len(result.windows)} windows of {size} px "
                f"(overlap {overlap}){extra}: {len(result.boxes)} boxes in {seconds:.1f}s"
            )
    if save_dir is not None:
        print(f"Results saved to {save_dir}")
    return 0


def save_picture_outputs(
    result: Any, picture: Picture, save_dir: Path, save: bool, save_txt: bool, save_conf: bool
) -> None:
    """Map coordinates first (the step that can fail on a CRS), then the annotated picture and the labels."""
    stem = Path(picture.path).stem
    boxes = result.boxes
    save_dir.mkdir(parents=True, exist_ok=True)
    if picture.raster is not None:
        raster = picture.raster
        geo.write_vectors(save_dir / stem, boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy(),
                          boxes.cls.cpu().numpy(), result.names, raster.crs, raster.transform)  # fmt: skip
    if save:
        if picture.height * picture.width > MAX_PICTURE_PIXELS:
            warnings.warn(f"{picture.path} is too large to draw: no annotated picture saved", geo.GeoWarning, 2)
        else:
            _replace_into(save_dir / f"{stem}.jpg", lambda p: result.save(filename=str(p)))  # as predict names it
    if save_txt:
        (save_dir / "labels").mkdir(exist_ok=True)
        _replace_into(save_dir / "labels" / f"{stem}.txt", lambda p: result.save_txt(p, save_conf=save_conf))


def demo_prediction(model: Any, image: Path, imgsz: int, device: str, project: Path) -> tuple[Path, int, str]:
    """The demo's prediction, the better way for its picture: sliced into ``imgsz`` windows when the picture is
    larger than the model input, else whole. Returns the saved picture, the number of boxes and which way it was."""
    height, width = picture_size(image)
    args = {"imgsz": imgsz, "device": device, "conf": 0.25}
    if max(height, width) > imgsz:
        result = predict_sliced_file(model, image, imgsz, **args)
        how = f"sliced: {len(result.windows)} windows of {imgsz} px, overlap {DEFAULT_OVERLAP} "
        how += f"({width}x{height} px is larger than the {imgsz} px input)"
        save_dir = compat.predict_save_dir({"project": str(project), "name": "predict"})
        save_dir.mkdir(parents=True, exist_ok=True)
        target = save_dir / f"{image.stem}.jpg"
        _replace_into(target, lambda p: result.save(filename=str(p)))
        return target, len(result.boxes), how
    results = compat.predict_in_python(model, str(image), save=True, name="predict", project=str(project), **args)
    target = next(Path(results[0].save_dir).glob(f"{image.stem}.*"))
    return target, len(results[0].boxes), f"whole: {width}x{height} px fits the {imgsz} px input"


def predict_sliced_file(model: Any, image: Path, size: int, **args: Any) -> Any:
    picture = Picture(image)
    try:
        return predict_picture(model, picture, size, DEFAULT_OVERLAP, **args)
    finally:
        picture.close()
