"""Where lcnet-yolo keeps what it downloads and builds: ``$LCNET_YOLO_HOME``, default ``~/.cache/lcnet-yolo``
(datasets in ``datasets/``, downloads in ``downloads/``, ImageNet weights in ``weights/``), and the file digest
they are checked by."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["HOME_ENV", "lcnet_yolo_home", "sha256_file"]

HOME_ENV = "LCNET_YOLO_HOME"


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
