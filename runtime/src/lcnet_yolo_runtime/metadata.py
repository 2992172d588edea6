"""What an exported model needs to be run: class names, input size, stride, task, end-to-end head.

Ultralytics' exporter writes these as strings into the ONNX ``metadata_props`` (Python literals: ``"{0: 'tree'}"``,
``"[640, 640]"``) and, for OpenVINO, into a ``metadata.yaml`` beside the ``.xml``. They are parsed with
``ast.literal_eval``, never evaluated as code.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lcnet_yolo_runtime.errors import InputError

DETECT = "detect"


@dataclass(frozen=True)
class ModelInfo:
    """Everything about an exported detector that inference depends on."""

    names: dict[int, str]
    imgsz: tuple[int, int]  # (height, width) the model was exported at
    stride: int = 32
    task: str = DETECT
    end2end: bool = False  # the graph already ends in NMS (or is NMS-free): outputs (1, N, 6)
    dynamic: bool = False  # exported with dynamic=True: any stride multiple is accepted


MAX_TEXT = 1 << 20  # a metadata value is a few kilobytes at most (names of thousands of classes)
MAX_CLASSES = 100_000
MAX_SIDE = 16_384  # pixels: larger than any export Ultralytics makes


def _literal(value: Any) -> Any:
    """A metadata value as Python data: strings hold literals; other types (from YAML) are kept. A string that is
    no literal (or too large, or too deeply nested to parse) stays a string."""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # TypeError: {[1]: 'a'}
        return value


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_names(value: Any) -> dict[int, str]:
    """Class names from ``{0: 'a'}``, ``['a', 'b']`` or ``"a,b"``: ids 0..n-1, at least one class."""
    value = _literal(value)
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "[", "("):
        raise InputError(f"class names {_describe(value)} are not a readable list or {{id: name}} mapping")
    if isinstance(value, str):
        value = [name.strip() for name in value.split(",") if name.strip()]
    if isinstance(value, Mapping):
        keys = list(value)
        if not all(_is_int(k) for k in keys) or sorted(keys) != list(range(len(keys))):
            raise InputError(f"class names {_describe(value)} must map ids 0, 1, ..., n-1 to names")
        names = dict(sorted(value.items()))
    elif isinstance(value, list | tuple):
        names = dict(enumerate(value))
    else:
        raise InputError(f"cannot read class names from {_describe(value)}; pass them as --names a,b,c")
    if not names:
        raise InputError("the model has no class names (zero classes); pass them as --names a,b,c")
    if len(names) > MAX_CLASSES:
        raise InputError(f"{len(names)} class names: more than {MAX_CLASSES}")
    if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in names.values()):
        raise InputError(f"class names {_describe(value)} must be strings")
    return {k: str(v) for k, v in names.items()}


def parse_imgsz(value: Any) -> tuple[int, int]:
    """Input size ``(h, w)`` from ``640``, ``[640, 480]`` or ``"640,480"``."""
    value = _literal(value)
    if isinstance(value, str):
        value = [v for v in value.replace("x", ",").split(",") if v.strip()]
    try:
        items = list(value) if isinstance(value, list | tuple) else [value]
        if any(isinstance(v, bool | float) and not float(v).is_integer() for v in items):
            raise ValueError
        sizes = [int(v) for v in items]
    except (TypeError, ValueError, OverflowError):
        raise InputError(
            f"cannot read an image size from {_describe(value)}; use --imgsz 640 or --imgsz 480,640"
        ) from None
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or min(sizes) < 1 or max(sizes) > MAX_SIDE:
        raise InputError(f"image size {_describe(value)} must be one or two positive integers, e.g. --imgsz 640")
    return sizes[0], sizes[1]


def _field(model_name: str, key: str, why: str) -> InputError:
    return InputError(f"{model_name}: metadata '{key}' {why}")


def check_metadata(metadata: Any, model_name: str, overridden: tuple[str, ...] = ()) -> dict[str, Any]:
    """Exported metadata checked field by field; returns the fields inference reads, as Python data.

    Raises :class:`InputError` naming the model and the field: ``names`` (ids 0..n-1 to strings), ``imgsz``,
    ``stride`` (a positive integer), ``task`` (a string), ``args`` (a mapping), ``end2end`` and ``batch``.
    Other keys (author, date, version, ...) are not read, nor are the ``overridden`` ones (given by the user).
    """
    if not isinstance(metadata, Mapping):
        raise InputError(f"{model_name}: metadata is a {type(metadata).__name__}, not a mapping of keys")
    checked: dict[str, Any] = {}
    if metadata.get("names") is not None and "names" not in overridden:
        try:
            checked["names"] = parse_names(metadata["names"])
        except InputError as error:
            raise _field(model_name, "names", f"is unusable ({error})") from None
    if metadata.get("imgsz") is not None and "imgsz" not in overridden:
        try:
            checked["imgsz"] = parse_imgsz(metadata["imgsz"])
        except InputError:
            raise _field(model_name, "imgsz", f"{_describe(metadata['imgsz'])} is not an image size") from None
    stride = _literal(metadata.get("stride", 32))
    if isinstance(stride, float) and stride.is_integer():
        stride = int(stride)
    if not _is_int(stride) or not 1 <= stride <= 1024:
        raise _field(model_name, "stride", f"{_describe(stride)} is not a positive integer (32 for YOLOv8)")
    checked["stride"] = stride
    task = _literal(metadata.get("task", DETECT))
    if not isinstance(task, str):
        raise _field(model_name, "task", f"{_describe(task)} is not a task name")
    checked["task"] = task
    args = _literal(metadata.get("args", {}))
    if not isinstance(args, Mapping):
        raise _field(model_name, "args", f"is a {type(args).__name__}, not a mapping of export arguments")
    checked["args"] = dict(args)
    for key in ("end2end", "dynamic"):
        flag = _literal(metadata.get(key, False))
        if flag not in (True, False, None):
            raise _field(model_name, key, f"{_describe(flag)} is not True or False")
    checked["end2end"] = bool(_literal(metadata.get("end2end", False))) or bool(args.get("nms", False))
    batch = _literal(metadata.get("batch", 1))
    if not _is_int(batch) or batch < 1:
        raise _field(model_name, "batch", f"{_describe(batch)} is not a positive integer")
    return checked


def model_info(
    metadata: Mapping[str, Any],
    model_name: str,
    input_hw: tuple[int | None, int | None],
    names: Any = None,
    imgsz: Any = None,
) -> ModelInfo:
    """Build :class:`ModelInfo` from exported metadata, the model's input shape and the user's overrides.

    ``input_hw`` is the graph's input height and width, ``None`` where the export is dynamic. Overrides win; what is
    neither in the metadata nor given raises :class:`InputError` naming the missing keys and the options to pass.
    """
    dynamic = None in input_hw
    overridden = tuple(key for key, given in (("names", names), ("imgsz", imgsz)) if given is not None)
    checked = check_metadata(metadata, model_name, overridden)
    missing = [key for key, given in (("names", names), ("imgsz", imgsz)) if given is None and key not in checked]
    if "imgsz" in missing and not dynamic:  # a fixed input shape is the image size
        missing.remove("imgsz")
    if missing:
        options = " and ".join({"names": "--names a,b,c", "imgsz": "--imgsz 640"}[key] for key in missing)
        raise InputError(f"{model_name} lacks Ultralytics metadata ({', '.join(missing)} missing); pass {options}")
    task = checked["task"]
    if task != DETECT:
        raise InputError(f"{model_name} is a {task} model; lcnet-yolo-infer runs detection (task 'detect') models only")
    end2end = checked["end2end"]
    exported = checked.get("imgsz")
    if not dynamic:
        static = (int(input_hw[0]), int(input_hw[1]))
        if imgsz is not None and parse_imgsz(imgsz) != static:
            wanted = parse_imgsz(imgsz)
            raise InputError(
                f"--imgsz {wanted[0]},{wanted[1]} does not fit {model_name}: it was exported with a fixed "
                f"{static[0]}x{static[1]} input; leave --imgsz out or re-export with dynamic=True"
            )
        size = static
    else:
        size = parse_imgsz(imgsz) if imgsz is not None else exported
    return ModelInfo(
        names=parse_names(names) if names is not None else checked["names"],
        imgsz=size,
        stride=checked["stride"],
        task=task,
        end2end=end2end,
        dynamic=dynamic,
    )
