"""lcnet-yolo's errors: one family, each a one-line message about what the user gave us.

The ``lcnet-yolo`` command prints any :class:`LCNetYoloError` as one line and exits with status 2. Each class also
derives from the built-in exception a caller would already catch (``ValueError``, ``FileNotFoundError``,
``ImportError``).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "ArgumentError",
    "DatasetError",
    "HubError",
    "LCNetYoloError",
    "MissingPackageError",
    "WeightsError",
    "WeightsFileNotFoundError",
    "existing_file",
    "file_error",
    "short_reason",
]


class LCNetYoloError(Exception):
    """Bad input to lcnet-yolo: the message says what and, where it can, what to do instead."""


class WeightsError(LCNetYoloError, ValueError):
    """A weights file (checkpoint, ImageNet weights, export) that cannot be used: missing, damaged, of an unknown
    format, refused as unsafe, or not fitting the model. Messages about a file start with its path."""


class WeightsFileNotFoundError(WeightsError, FileNotFoundError):
    """The weights file does not exist."""


class HubError(WeightsError):
    """Weights named by name (``backbone_weights=imagenet``) that cannot be had: unknown name, a scale the
    publisher has no file for, or a download that failed (the message says where to put the file by hand)."""


class DatasetError(LCNetYoloError, ValueError):
    """A dataset that cannot be built or trained on (missing split, no usable image, a failed download)."""


class ArgumentError(LCNetYoloError, ValueError):
    """A ``key=value`` argument of the wrong type or out of range."""


class MissingPackageError(LCNetYoloError, ImportError):
    """An optional package a format or mode needs is not installed; the message names the extra to install."""


def short_reason(error: BaseException, limit: int = 160) -> str:
    """The first sentence of an exception's message, with its type: enough to identify it, no traceback wall."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = re.split(r"(?<=[a-z)])\. ", text)[0]
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def file_error(path: str | Path, reason: str) -> WeightsError:
    """The error for an unusable weights file: one line, starting with its path."""
    return WeightsError(f"{path}: {reason}")


def existing_file(path: str | Path) -> Path:
    """``path`` as a ``Path`` if it is a non-empty file, else the :class:`WeightsError` saying what it is."""
    path = Path(path)
    if not path.exists():
        raise WeightsFileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise file_error(path, "not a file")
    if path.stat().st_size == 0:
        raise file_error(path, "the file is empty (0 bytes): an interrupted download or write?")
    return path
