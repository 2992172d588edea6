"""Where lcnet-yolo keeps what it downloads and builds (``$LCNET_YOLO_HOME``), and the file digest it checks them by."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["HOME_ENV", "default_dataset_dir", "lcnet_yolo_home", "sha256_file"]

HOME_ENV = "LCNET_YOLO_HOME"


def lcnet_yolo_home() -> Path:
    """Cache root: ``$LCNET_YOLO_HOME`` or ``~/.cache/lcnet-yolo``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "lcnet-yolo").expanduser()


def default_dataset_dir(name: str = "neon-trees") -> Path:
    """Where the dataset ``name`` is built by default: ``<cache root>/datasets/<name>``."""
    return lcnet_yolo_home() / "datasets" / name


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
