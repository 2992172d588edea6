"""lcnet-yolo's errors: one family, each a one-line message about what the user gave us.

The ``lcnet-yolo`` command prints any :class:`LCNetYoloError` as one line and exits with status 2. Each class also
derives from the built-in exception a caller would already catch (``ValueError``, ``FileNotFoundError``,
``ImportError``).
"""

from __future__ import annotations

__all__ = [
    "ArgumentError",
    "DatasetError",
    "HubError",
    "LCNetYoloError",
    "MissingPackageError",
    "WeightsError",
    "WeightsFileNotFoundError",
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
