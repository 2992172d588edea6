"""Model definitions that are safe to build: what a model YAML from a file may contain.

Ultralytics' ``parse_model`` ``eval``s a YAML's ``activation`` field and looks every row's module name up among its
globals, so a model definition that comes from a file (inside a ``.pt`` checkpoint, a ``.safetensors`` metadata
block, a resumed or fine-tuned run) could make it run code or build something that downloads. :func:`check_model_yaml`
is the one check all of them pass before Ultralytics sees them.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

from torch import nn

from lcnet_yolo.io.errors import file_error, short_reason
from lcnet_yolo.io.plain_yaml import is_plain_value
from lcnet_yolo.nn.registry import YAML_LAYERS
from lcnet_yolo.plugin.compat import is_ultralytics_layer, layer_named, yaml_model_load

__all__ = ["check_model_yaml", "check_model_yaml_file"]

# Layer classes of Ultralytics that a model YAML from a file may not name: TorchVision downloads weights when built.
REFUSED_LAYERS = frozenset({"TorchVision"})


def _check_activation(spec: object) -> None:
    """Accept only ``nn.X(literals)`` / ``torch.nn.X(literals)``: Ultralytics ``eval``s this YAML field."""
    try:
        assert isinstance(spec, str)
        call = ast.parse(spec.strip(), mode="eval").body
        assert isinstance(call, ast.Call)
        dotted = ast.unparse(call.func)
        assert re.fullmatch(r"(torch\.)?nn\.[A-Za-z_]\w*", dotted)
        assert issubclass(getattr(nn, dotted.rsplit(".", 1)[1]), nn.Module)
        for arg in [*call.args, *(kw.value for kw in call.keywords)]:
            ast.literal_eval(arg)
    except Exception as error:
        raise ValueError(
            f"field 'activation' {_clip(spec)} is not a torch.nn layer with literal arguments "
            "(Ultralytics would run it as Python)"
        ) from error


def _allowed_layer(name: str) -> bool:
    """Whether a model YAML from a file may name this module: a ``torch.nn`` or ``torchvision.ops`` layer, a layer of
    ``ultralytics.nn.modules`` (not a whole model such as ``DetectionModel``, which builds from a YAML of its own, and
    not ``TorchVision``, which downloads weights) or one of :data:`~lcnet_yolo.nn.registry.YAML_LAYERS`. Looked up
    where ``parse_model`` looks it up."""
    if name in REFUSED_LAYERS:
        return False
    if name.startswith("nn."):
        layer, package = getattr(nn, name[3:], None), "torch.nn.modules"
    elif name.startswith("torchvision.ops."):
        layer, package = getattr(importlib.import_module("torchvision.ops"), name[16:], None), "torchvision.ops"
    else:
        layer = layer_named(name)
        return (layer is not None and YAML_LAYERS.get(name) is layer) or is_ultralytics_layer(layer)
    if not (isinstance(layer, type) and issubclass(layer, nn.Module)):
        return False
    return layer.__module__ == package or layer.__module__.startswith(package + ".")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _literal(value: object) -> bool:
    """A plain YAML value (None, bool, number, short text, lists/dicts of them), at most 4 levels deep."""
    return is_plain_value(value, max_text=256, max_items=64, max_depth=4)


def _check_row(where: str, row: list | tuple) -> None:
    """``from`` an int or list of ints, ``repeats`` a positive int, ``args`` a list of plain values."""
    source, repeats, _, args = row
    sources = source if isinstance(source, list | tuple) else [source]
    if not (sources and len(sources) <= 64 and all(_is_int(s) for s in sources)):
        raise ValueError(f"{where} 'from' {_clip(source)} is not a layer index or a list of them")
    if not (_is_int(repeats) and 1 <= repeats <= 64):
        raise ValueError(f"{where} 'repeats' {_clip(repeats)} is not a whole number from 1 to 64")
    if not (isinstance(args, list | tuple) and _literal(args)):
        raise ValueError(f"{where} 'args' {_clip(args)} is not a list of plain values")


def _check_numbers(cfg: dict) -> None:
    """The top-level numbers Ultralytics reads before building: ``nc``, ``channels``, multipliers, ``scales``."""
    for key in ("nc", "channels"):
        if key in cfg and not (_is_int(cfg[key]) and 1 <= cfg[key] <= 100_000):
            raise ValueError(f"field '{key}' {_clip(cfg[key])} is not a positive whole number")
    for key in ("depth_multiple", "width_multiple"):
        value = cfg.get(key)
        if key in cfg and not (isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 64):
            raise ValueError(f"field '{key}' {_clip(value)} is not a positive number")
    scales = cfg.get("scales")
    if scales is not None:
        valid = isinstance(scales, dict) and all(
            isinstance(k, str)
            and isinstance(v, list | tuple)
            and len(v) == 3
            and all(isinstance(x, int | float) and not isinstance(x, bool) and x > 0 for x in v)
            for k, v in scales.items()
        )
        if not valid:
            raise ValueError(f"field 'scales' {_clip(scales)} is not a mapping of [depth, width, max_channels]")
    kpt = cfg.get("kpt_shape")
    if kpt is not None and not (isinstance(kpt, list | tuple) and all(_is_int(k) and k >= 0 for k in kpt)):
        raise ValueError(f"field 'kpt_shape' {_clip(kpt)} is not a list of whole numbers")


def check_model_yaml_file(path: str | Path) -> dict:
    """Read a model YAML named by ``model=`` as Ultralytics will, and refuse it before anything builds it.

    Returns the model dict. Raises :class:`~lcnet_yolo.io.errors.WeightsError` (one line naming the file and the
    field) for an unreadable file or a definition :func:`check_model_yaml` refuses.
    """
    try:
        cfg = yaml_model_load(str(path))
    except FileNotFoundError:
        raise
    except Exception as error:  # yaml.YAMLError, not a mapping, undecodable bytes, ...
        raise file_error(path, f"not a readable model YAML ({short_reason(error)})") from None
    try:
        check_model_yaml(cfg)
    except ValueError as error:
        raise file_error(path, f"refused: the model YAML {error}") from None
    return cfg


def _clip(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_model_yaml(cfg: object) -> None:
    """Refuse a model definition that would make Ultralytics' ``parse_model`` run anything but layer constructors.

    ``activation`` must be a ``torch.nn`` layer call with literal arguments (Ultralytics ``eval``s it) and every
    row's module a layer class from the allow-list of :func:`_allowed_layer`. This is the one check for every
    model YAML that comes from a file: ``.pt`` checkpoints (:mod:`lcnet_yolo.io.safe_load`), ``.safetensors``
    metadata, resumed and fine-tuned runs (:mod:`lcnet_yolo.plugin.trainers`).

    Raises:
        ValueError: one line naming the offending field.
    """
    try:
        if not (isinstance(cfg, dict) and isinstance(cfg.get("backbone"), list) and isinstance(cfg.get("head"), list)):
            raise ValueError("has no 'backbone' and 'head' lists")
        activation = cfg.get("activation")
        if activation is not None and not (isinstance(activation, str) and not activation):  # None, "": not used
            _check_activation(activation)
        for section in ("backbone", "head"):
            for index, row in enumerate(cfg[section]):
                where = f"field '{section}' row {index}"
                if not (isinstance(row, list | tuple) and len(row) == 4 and isinstance(row[2], str)):
                    raise ValueError(f"{where} {_clip(row)} is not [from, repeats, module, args]")
                if not _allowed_layer(row[2]):
                    raise ValueError(f"{where} names {_clip(row[2])}, which is not an allowed layer")
                _check_row(where, row)
        _check_numbers(cfg)
    except ValueError:
        raise
    except Exception as error:  # a YAML from a pickle may hold any allowed object; none may escape as a traceback
        raise ValueError(f"cannot be checked ({short_reason(error)})") from None
