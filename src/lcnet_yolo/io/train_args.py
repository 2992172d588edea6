"""A checkpoint's ``train_args``: data read from a file, checked before anything uses it, never instructions.

:func:`check_train_args` checks the type (and, for names, the allow-list) of each key Ultralytics reads back from
a checkpoint, and raises one line naming the file and the field otherwise. :func:`usable_train_args` is what
Ultralytics gets to use: the values that only say *how* the model was trained; every value that says *where* to
write (``save_dir``, ``project``, ``name``) or *what* to open (``distill_model``, ``pretrained``, ``model``,
``cfg``, ``tracker``, ``source``, ``augmentations``, and ``data`` unless it is a local dataset) is dropped, so
nothing named in a file is followed, downloaded or written to unless the user names it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lcnet_yolo.io.errors import file_error
from lcnet_yolo.io.plain_yaml import is_plain_value
from lcnet_yolo.plugin.compat import DEFAULT_CFG_DICT, check_cfg

__all__ = ["FOLLOWED_KEYS", "check_train_args", "local_data", "usable_train_args"]

TASKS = ("detect", "classify", "segment", "pose", "obb")
MODES = ("train", "val", "predict", "export", "track", "benchmark")
OPTIMIZERS = ("SGD", "MuSGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSprop", "auto")
# Keys whose value names a place or a file: dropped from what Ultralytics uses (data: kept when local)
FOLLOWED_KEYS = (
    "model",
    "data",
    "project",
    "name",
    "save_dir",
    "pretrained",
    "resume",
    "distill_model",
    "cfg",
    "tracker",
    "source",
    "augmentations",
)
PATH_KEYS = ("model", "data", "project", "name", "save_dir", "distill_model", "cfg", "tracker", "source")
MAX_TEXT = 4096
MAX_DEPTH = 4


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ints(value: Any, low: int | None = None) -> bool:
    """An int, or a flat list/tuple of ints (each >= ``low`` when given)."""
    items = value if isinstance(value, list | tuple) else [value]
    return len(items) <= 64 and all(_is_int(v) and (low is None or v >= low) for v in items)


def _plain(value: Any) -> bool:
    """A plain YAML-like value (None, bool, number, short string, lists/dicts of them), at most MAX_DEPTH deep."""
    return is_plain_value(value, MAX_TEXT, 1024, MAX_DEPTH)


# key -> (check, what it must be) for keys whose default (None, or several types) check_cfg does not type
_SPECIAL: dict[str, tuple] = {
    "task": (lambda v: v in TASKS, f"one of {', '.join(TASKS)}"),
    "mode": (lambda v: v in MODES, f"one of {', '.join(MODES)}"),
    "optimizer": (lambda v: isinstance(v, str) and v.lower() in {o.lower() for o in OPTIMIZERS}, "an optimizer name"),
    "imgsz": (lambda v: _ints(v, 1) and 1 <= len(v if isinstance(v, list | tuple) else [v]) <= 2, "a positive size"),
    "batch": (lambda v: _is_number(v) and (v == -1 or 0 < v < 1 or (v >= 1 and float(v).is_integer())), "a batch"),
    "epochs": (lambda v: _is_int(v) and v >= 0, "a whole number of epochs"),
    "pretrained": (lambda v: isinstance(v, bool | str), "true, false or a path"),
    "resume": (lambda v: isinstance(v, bool | str), "true, false or a path"),
    "cache": (lambda v: isinstance(v, bool) or v in ("ram", "disk"), "true, false, 'ram' or 'disk'"),
    "device": (lambda v: v is None or isinstance(v, str) or _ints(v), "a device name or GPU indices"),
    "time": (lambda v: v is None or _is_number(v), "a number of hours"),
    "freeze": (lambda v: v is None or _ints(v), "layer indices"),
    "classes": (lambda v: v is None or _ints(v), "class indices"),
    "embed": (lambda v: v is None or _ints(v), "layer indices"),
    "conf": (lambda v: v is None or _is_number(v), "a number"),
    "workspace": (lambda v: v is None or _is_number(v), "a number"),
    "line_width": (lambda v: v is None or _is_int(v), "an integer"),
    "opset": (lambda v: v is None or _is_int(v), "an integer"),
    "channels_last": (lambda v: v is None or isinstance(v, bool), "true or false"),
    "nms": (lambda v: v is None or isinstance(v, bool), "true or false"),
    "quantize": (lambda v: v is None or isinstance(v, str | int), "a quantization name"),
    "augmentations": (lambda v: v is None or (isinstance(v, list) and _plain(v)), "a list of transforms"),
}
for _key in PATH_KEYS:
    _SPECIAL.setdefault(_key, (lambda v: v is None or (isinstance(v, str) and len(v) <= MAX_TEXT), "a path or none"))


def check_train_args(path: str | Path, raw: Any) -> dict:
    """``raw`` (a checkpoint's ``train_args``) checked key by key; keys this Ultralytics does not know are dropped.

    Raises:
        WeightsError: one line naming ``path`` and the first field of the wrong type or outside its allow-list.
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise file_error(path, f"field 'train_args' is a {type(raw).__name__}, expected a mapping of arguments")
    checked = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise file_error(path, f"field 'train_args' has a key {key!r} that is not a name")
        if key not in DEFAULT_CFG_DICT and key not in ("save_dir", "augmentations"):
            continue  # an argument of another Ultralytics release: not used here
        _check_value(path, key, value)
        checked[key] = value
    return checked


def _check_value(path: str | Path, key: str, value: Any) -> None:
    where = f"field 'train_args.{key}'"
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    if key in _SPECIAL:
        check, what = _SPECIAL[key]
        try:
            valid = bool(check(value))
        except Exception:
            valid = False
        if not valid:
            raise file_error(path, f"{where} is {shown} ({type(value).__name__}), expected {what}")
        return
    default = DEFAULT_CFG_DICT.get(key)
    if isinstance(default, str) and not (isinstance(value, str) and len(value) <= MAX_TEXT):
        raise file_error(path, f"{where} is {shown} ({type(value).__name__}), expected text")
    if not _plain(value):
        raise file_error(path, f"{where} is {shown} ({type(value).__name__}), expected a plain value")
    try:
        check_cfg({key: value}, hard=True)  # Ultralytics' own types and ranges of numbers and switches
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise file_error(path, f"{where} is {shown}: {reason}") from None


def local_data(value: Any) -> str | None:
    """``value`` when it names a dataset on this machine, else None: an existing folder, or an existing data YAML
    without a ``download`` field (a file's dataset is never fetched or scripted); never a URL or a bare name."""
    if not isinstance(value, str) or not value or "://" in value or len(value) > MAX_TEXT:
        return None
    try:
        path = Path(value)
        if path.is_dir():
            return value
        if not path.is_file() or path.suffix.lower() not in (".yaml", ".yml") or path.stat().st_size > 1 << 20:
            return None
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError, RecursionError):
        return None
    return value if isinstance(config, dict) and "download" not in config else None


def usable_train_args(path: str | Path, raw: Any) -> dict:
    """The checked ``train_args`` (:func:`check_train_args`) without the :data:`FOLLOWED_KEYS`: what Ultralytics
    may use when it opens the checkpoint (``data`` is kept when :func:`local_data` finds it here)."""
    args = check_train_args(path, raw)
    data = local_data(args.get("data"))
    for key in FOLLOWED_KEYS:
        if key in args:
            args[key] = DEFAULT_CFG_DICT.get(key)
    args.pop("save_dir", None)
    args.pop("augmentations", None)
    if data is not None:
        args["data"] = data
    return args
