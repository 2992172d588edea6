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


def _literal(value: Any) -> Any:
    """A metadata value as Python data: strings hold literals; other types (from YAML) are kept."""
    if not isinstance(value, str):
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def parse_names(value: Any) -> dict[int, str]:
    """Class names from ``{0: 'a'}``, ``['a', 'b']`` or ``"a,b"``."""
    value = _literal(value)
    if isinstance(value, str):
        value = [name.strip() for name in value.split(",") if name.strip()]
    if isinstance(value, Mapping):
        return {int(k): str(v) for k, v in value.items()}
    if isinstance(value, list | tuple) and value:
        return dict(enumerate(str(v) for v in value))
    raise InputError(f"cannot read class names from {value!r}; pass them as --names a,b,c")


def parse_imgsz(value: Any) -> tuple[int, int]:
    """Input size ``(h, w)`` from ``640``, ``[640, 480]`` or ``"640,480"``."""
    value = _literal(value)
    if isinstance(value, str):
        value = [v for v in value.replace("x", ",").split(",") if v.strip()]
    try:
        sizes = [int(v) for v in value] if isinstance(value, list | tuple) else [int(value)]
    except (TypeError, ValueError):
        raise InputError(f"cannot read an image size from {value!r}; use --imgsz 640 or --imgsz 480,640") from None
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise InputError(f"image size {value!r} must be one or two positive integers, e.g. --imgsz 640")
    return sizes[0], sizes[1]


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
    missing = [key for key, given in (("names", names), ("imgsz", imgsz)) if given is None and key not in metadata]
    if "imgsz" in missing and not dynamic:  # a fixed input shape is the image size
        missing.remove("imgsz")
    if missing:
        options = " and ".join({"names": "--names a,b,c", "imgsz": "--imgsz 640"}[key] for key in missing)
        raise InputError(f"{model_name} lacks Ultralytics metadata ({', '.join(missing)} missing); pass {options}")
    task = str(_literal(metadata.get("task", DETECT)))
    if task != DETECT:
        raise InputError(f"{model_name} is a {task} model; lcnet-yolo-infer runs detection (task 'detect') models only")
    args = _literal(metadata.get("args", {}))
    args = args if isinstance(args, Mapping) else {}
    end2end = bool(_literal(metadata.get("end2end", False))) or bool(args.get("nms", False))
    exported = parse_imgsz(metadata["imgsz"]) if "imgsz" in metadata else None
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
        names=parse_names(names if names is not None else metadata["names"]),
        imgsz=size,
        stride=int(_literal(metadata.get("stride", 32))),
        task=task,
        end2end=end2end,
        dynamic=dynamic,
    )
