"""Calibration data for int8: the training images of a YOLO ``data.yaml``, letterboxed as Ultralytics' predictor
sees them (RGB, NCHW float32 in 0..1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lcnet_yolo.io.paths import IMAGE_SUFFIXES
from lcnet_yolo.plugin.compat import LetterBox

__all__ = ["IMAGE_SUFFIXES", "calibration_images", "letterboxed"]


def calibration_images(data_yaml: str | Path, count: int) -> list[Path]:
    """The first ``count`` training images (sorted by path) of a YOLO ``data.yaml``."""
    import yaml

    data_yaml = Path(data_yaml)
    spec = yaml.safe_load(data_yaml.read_text())
    root = Path(spec.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = data_yaml.parent / root
    entries = spec["train"] if isinstance(spec["train"], list) else [spec["train"]]
    files: list[Path] = []
    for entry in entries:
        path = Path(entry) if Path(entry).is_absolute() else root / entry
        if path.is_file():  # a text file listing image paths
            files += [Path(line.strip()) for line in path.read_text().splitlines() if line.strip()]
        else:
            files += [p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise FileNotFoundError(f"no training images found for calibration in {data_yaml}")
    return sorted(files)[:count]


def letterboxed(path: Path, height: int, width: int) -> np.ndarray:
    """One image as the network sees it in Ultralytics' predictor: letterboxed, RGB, NCHW float32 in 0..1."""
    import cv2

    image = cv2.imread(str(path))
    if image is None:
        raise FileNotFoundError(f"cannot read calibration image {path}")
    image = LetterBox((height, width), auto=False)(image=image)
    return np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
