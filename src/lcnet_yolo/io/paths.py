"""Where lcnet-yolo keeps what it downloads and builds: ``$LCNET_YOLO_HOME``, default ``~/.cache/lcnet-yolo``
(datasets in ``datasets/``, ImageNet weights in ``weights/``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["HOME_ENV", "lcnet_yolo_home"]

HOME_ENV = "LCNET_YOLO_HOME"


def lcnet_yolo_home() -> Path:
    """Cache root: ``$LCNET_YOLO_HOME`` or ``~/.cache/lcnet-yolo``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "lcnet-yolo").expanduser()
