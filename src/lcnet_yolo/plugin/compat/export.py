"""Export files and formats: Detect's decoding nodes in an ONNX export (:func:`detect_decoding_nodes`), export
metadata written and read as Ultralytics does (:func:`write_export_metadata`, :func:`read_export_metadata`), and the
exporter's tables (:func:`export_format_names`, :func:`export_suffixes`, :func:`export_format_aliases`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from lcnet_yolo.plugin.compat.core import YAML

__all__ = [
    "DETECT_CONV_BRANCHES",
    "EXPORT_FORMAT_ALIASES",
    "LEGACY_SUFFIXES",
    "detect_decoding_nodes",
    "export_format_aliases",
    "export_format_names",
    "export_suffixes",
    "read_export_metadata",
    "write_export_metadata",
]

DETECT_CONV_BRANCHES = ("cv2", "cv3", "one2one_cv2", "one2one_cv3")  # Detect's box/class convs (one2one_: end2end)
LEGACY_SUFFIXES = {".mlmodel": "coreml"}  # what AutoBackend still recognises beside the exporter's table


def detect_decoding_nodes(node_names: Iterable[str]) -> list[str]:
    """Of the node names of an Ultralytics ONNX export (``/model.<layer>/<path>/<op>``, named after the modules), those
    of Detect's box decoding: every node of the last layer but its conv branches (:data:`DETECT_CONV_BRANCHES`)."""
    names = list(node_names)
    heads = [n for n in names if n.startswith("/model.")]
    if not heads:
        return []
    last = max(int(name.split("/")[1].split(".")[1]) for name in heads)
    prefix = f"/model.{last}/"
    branches = tuple(f"{prefix}{b}" for b in DETECT_CONV_BRANCHES)
    return [n for n in names if n.startswith(prefix) and not n.startswith(branches)]


def write_export_metadata(folder: str | Path, metadata: Mapping[str, object]) -> Path:
    """Write ``metadata`` as the ``metadata.yaml`` of an export folder, with Ultralytics' writer (``YAML.save``, as
    its OpenVINO exporter does); ``YOLO(folder)`` reads it back. Returns the file."""
    path = Path(folder) / "metadata.yaml"
    YAML.save(path, dict(metadata))
    return path


def read_export_metadata(path: str | Path) -> dict:
    """The metadata Ultralytics recorded in an exported model (file or folder), read without loading the model
    (``BaseBackend.read_metadata``: ONNX properties, TorchScript's ``config.txt``, ``metadata.yaml`` ...); values as
    stored (often strings); ``{}`` where there is none."""
    from ultralytics.nn.backends.base import BaseBackend

    return dict(BaseBackend.read_metadata(path) or {})


def export_format_names() -> tuple[str, ...]:
    """The ``format=`` values of Ultralytics' exporter, in its order (``export_formats()``, without PyTorch)."""
    from ultralytics.engine.exporter import export_formats

    return tuple(name for name in export_formats()["Argument"] if name != "-")


def export_suffixes() -> dict[str, str]:
    """Path ending -> export format, as Ultralytics' AutoBackend recognises exported models (the exporter's suffix
    table, plus :data:`LEGACY_SUFFIXES`); ``.pt`` is not an export."""
    from ultralytics.engine.exporter import export_formats

    table = export_formats()
    pairs = dict(zip(table["Suffix"], table["Argument"], strict=True))
    return {suffix: fmt for suffix, fmt in {**pairs, **LEGACY_SUFFIXES}.items() if fmt != "-"}


# ``format=`` aliases that ``Exporter.__call__`` maps to a format name before it checks the name. They are written
# there as ``if fmt in {...}`` statements, not as a table, so they are listed here and the pin reads that code.
EXPORT_FORMAT_ALIASES: dict[str, str] = {
    **dict.fromkeys(("tensorrt", "trt"), "engine"),
    **dict.fromkeys(("mlmodel", "mlpackage", "mlprogram", "apple", "ios"), "coreml"),
    **dict.fromkeys(("huawei", "cann", "om"), "ascend"),
    **dict.fromkeys(("vitis", "vitisai", "versal"), "xilinx"),
    **dict.fromkeys(("tflite", "tfjs"), "litert"),
}


def export_format_aliases() -> dict[str, str]:
    """Alias -> the format name Ultralytics' exporter uses for it (``tflite`` -> ``litert``, ``trt`` -> ``engine``)."""
    return dict(EXPORT_FORMAT_ALIASES)
