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

from torch import nn

from lcnet_yolo.io.errors import short_reason
from lcnet_yolo.nn.registry import YAML_LAYERS
from lcnet_yolo.plugin.compat import is_ultralytics_layer, layer_named

__all__ = ["check_model_yaml"]

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
    except ValueError:
        raise
    except Exception as error:  # a YAML from a pickle may hold any allowed object; none may escape as a traceback
        raise ValueError(f"cannot be checked ({short_reason(error)})") from None
