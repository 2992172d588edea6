"""Where lcnet-yolo keeps what it downloads and builds: ``$LCNET_YOLO_HOME``, default ``~/.cache/lcnet-yolo``
(datasets in ``datasets/``, downloads in ``downloads/``, ImageNet weights in ``weights/``), the file digest they are
checked by, and the rules for file names: which files are pictures (:data:`IMAGE_SUFFIXES`) and which YAML file a
model name stands for (:func:`model_yaml_name`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["HOME_ENV", "IMAGE_SUFFIXES", "lcnet_yolo_home", "model_yaml_name", "sha256_file"]

HOME_ENV = "LCNET_YOLO_HOME"
# Picture files lcnet-yolo collects from folders (calibration, sample images), lower case. The torch-free runtime
# (runtime/, lcnet_yolo_runtime.images) keeps its own list: it cannot import this package.
IMAGE_SUFFIXES = frozenset({".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"})


def lcnet_yolo_home() -> Path:
    """Cache root: ``$LCNET_YOLO_HOME`` or ``~/.cache/lcnet-yolo``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "lcnet-yolo").expanduser()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_yaml_name(name: str | Path) -> str:
    """The YAML file a model name stands for: ``yolov8n`` -> ``yolov8n.yaml``; a ``.yaml``/``.yml`` name is kept.

    Ultralytics reads a model's scale from this file name (``yolov8n-pplcnet.yaml`` -> scale ``n``), so a model
    written out as a YAML file keeps its name."""
    name = str(name)
    return name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
