"""An exported model's Ultralytics metadata, read strictly and checked field by field before Ultralytics opens it.

Ultralytics' AutoBackend reads the metadata of an export (an ONNX file's ``metadata_props``, a ``metadata.yaml``
beside an OpenVINO, NCNN, ... model) and converts it with ``int()`` and ``ast.literal_eval`` without checking what
comes out: an ``args`` that is a list, ``names`` that are a set, a ``stride`` of 0 end in a traceback deep inside
prediction, and an unreadable ``metadata.yaml`` is silently ignored. :func:`exported_metadata` reads the same
fields and raises one ``ValueError`` line naming the file and the field instead.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

from lcnet_yolo.io.plain_yaml import check_regular_file, read_plain_yaml
from lcnet_yolo.plugin.compat import read_export_metadata

__all__ = ["check_metadata", "exported_metadata", "read_sidecar"]

MAX_BYTES = 1 << 20  # a metadata.yaml or metadata value is a few kilobytes
LITERAL_KEYS = ("imgsz", "names", "kpt_shape", "kpt_names", "args", "end2end")  # parsed as Python literals
INTEGER_KEYS = ("stride", "batch", "channels")  # converted with int()
# where Ultralytics reads metadata from the model itself (every other export has a metadata.yaml sidecar)
EMBEDDED = (".engine", ".tflite", ".torchscript", ".onnx", ".mlpackage", ".mlmodel", ".aimodel", ".pb")
EMBEDDED_FOLDERS = ("_imx_model", "_xilinx_model")


def read_sidecar(path: Path) -> dict[str, Any]:
    """A ``metadata.yaml``: a regular UTF-8 file of plain YAML (a ``!!python/...`` tag is refused) holding a mapping."""
    data = read_plain_yaml(path, "metadata file", MAX_BYTES)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: holds a {type(data).__name__}, not a mapping of metadata keys")
    return data


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_metadata(raw: dict[str, Any], source: str | Path) -> dict[str, Any]:
    """The metadata converted as Ultralytics converts it, each field Ultralytics reads checked; ``ValueError`` (one
    line naming ``source`` and the field) otherwise."""

    def refuse(key: str, why: str) -> ValueError:
        return ValueError(f"{source}: metadata '{key}' {why}")

    parsed = dict(raw)
    for key in LITERAL_KEYS:
        value = parsed.get(key)
        if isinstance(value, str):
            try:
                parsed[key] = ast.literal_eval(value) if len(value) <= MAX_BYTES else value
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                raise refuse(key, f"{_describe(value)} is not a Python literal") from None
    for key in INTEGER_KEYS:
        if key in parsed:
            value = parsed[key]
            try:
                number = int(value) if not isinstance(value, bool | float) else None
            except (TypeError, ValueError):
                number = None
            if number is None or not 1 <= number <= (1024 if key == "stride" else 4096):
                raise refuse(key, f"{_describe(value)} is not a positive integer")
            parsed[key] = number
    names = parsed.get("names")
    if names is not None:
        if isinstance(names, list):
            names = dict(enumerate(names))
        if not isinstance(names, dict) or not names:
            raise refuse("names", f"must be a non-empty list or {{id: name}} mapping, not {_describe(names)}")
        try:
            ids = sorted(int(k) for k in names if not isinstance(k, bool | float))
        except (TypeError, ValueError):
            ids = []
        if ids != list(range(len(names))):
            raise refuse("names", "must map class ids 0, 1, ..., n-1 to names")
        if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in names.values()):
            raise refuse("names", "must hold strings")
    imgsz = parsed.get("imgsz")
    if imgsz is not None:
        sizes = imgsz if isinstance(imgsz, list | tuple) else [imgsz]
        if not 1 <= len(sizes) <= 2 or not all(_is_int(s) and 1 <= s <= 16384 for s in sizes):
            raise refuse("imgsz", f"{_describe(imgsz)} is not one or two positive integers")
    if not isinstance(parsed.get("args", {}), dict):
        raise refuse("args", f"is a {type(parsed['args']).__name__}, not a mapping of export arguments")
    for key in ("task", "description", "author", "version"):
        if parsed.get(key) is not None and not isinstance(parsed[key], str):
            raise refuse(key, f"{_describe(parsed[key])} is not a string")
    for key in ("end2end", "dynamic"):
        if parsed.get(key) not in (None, True, False):
            raise refuse(key, f"{_describe(parsed[key])} is not True or False")
    for key in ("kpt_shape", "kpt_names"):
        if parsed.get(key) is not None and not isinstance(parsed[key], list | tuple | dict):
            raise refuse(key, f"{_describe(parsed[key])} is not a list")
    return parsed


def exported_metadata(model: str | Path) -> dict[str, Any] | None:
    """Ultralytics' export metadata (task, imgsz, args, ...) of an exported model, checked; None where it has none.

    Formats that embed it (ONNX properties, TorchScript's ``config.txt`` ...) are read where Ultralytics' AutoBackend
    reads them (:func:`lcnet_yolo.plugin.compat.read_export_metadata`), after checking the file is a regular one; a
    ``metadata.yaml`` (OpenVINO, NCNN, ... folders) is read by :func:`read_sidecar`, which, unlike AutoBackend, does
    not ignore an unreadable one. ``ValueError`` for metadata Ultralytics could not use.
    """
    path = Path(model)
    if not path.exists():
        return None
    if not path.is_dir():
        check_regular_file(path, "exported model", "an exported model: a device or a pipe?")
    if path.suffix.lower() in EMBEDDED or path.name.lower().endswith(EMBEDDED_FOLDERS):
        raw = read_export_metadata(path)
    else:
        sidecar = (path if path.is_dir() else path.parent) / "metadata.yaml"
        raw = read_sidecar(sidecar) if os.path.lexists(sidecar) else {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: its metadata is a {type(raw).__name__}, not a mapping")
    return check_metadata(raw, path) if raw else None
