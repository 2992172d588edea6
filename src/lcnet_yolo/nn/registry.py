"""The layers our model YAMLs name, in one table, and the PP-LCNet inside a model.

:data:`YAML_LAYERS` is the only list of our YAML layers: registration with Ultralytics
(:mod:`lcnet_yolo.plugin.register`), the model-YAML allow-list and the classes a checkpoint may hold
(:mod:`lcnet_yolo.io.checkpoints`) are all derived from it and from :data:`NN_MODULES`. A new layer is one row here.
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType

from torch import nn

from lcnet_yolo.nn.layers import Classifier, PPLCNetBackbone
from lcnet_yolo.nn.neck import LCBlock, LCDown
from lcnet_yolo.nn.pplcnet import PPLCNet

# YAML module name -> class (what `parse_model` finds in a model YAML row)
YAML_LAYERS: dict[str, type[nn.Module]] = {
    "PPLCNetBackbone": PPLCNetBackbone,
    "LCBlock": LCBlock,
    "LCDown": LCDown,
    "Classifier": Classifier,
}
# The modules whose nn.Module classes a model of ours is made of (and so a pickled checkpoint may contain).
# (by import_module: the attribute ``lcnet_yolo.nn.pplcnet`` is the builder function of that name)
NN_MODULES: tuple[ModuleType, ...] = tuple(
    importlib.import_module(f"lcnet_yolo.nn.{name}") for name in ("pplcnet", "layers", "neck")
)


def module_classes() -> list[type[nn.Module]]:
    """Every ``nn.Module`` class defined in :data:`NN_MODULES` (the YAML layers and the blocks inside them)."""
    return [
        obj
        for module in NN_MODULES
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, nn.Module) and obj.__module__ == module.__name__
    ]


def find_backbone(model: nn.Module) -> PPLCNet:
    """The PP-LCNet in ``model``: ``model`` itself, or its only PP-LCNet submodule (the ``PPLCNetBackbone`` row of
    a detector or classifier built from our YAMLs). ``ValueError`` when it holds none or more than one."""
    if isinstance(model, PPLCNet):
        return model
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, PPLCNet)]
    if not found:
        raise ValueError(f"this {type(model).__name__} has no PP-LCNet backbone (no PPLCNetBackbone layer)")
    if len(found) > 1:
        names = ", ".join(name for name, _ in found)
        raise ValueError(f"the model holds {len(found)} PP-LCNet modules ({names}); pass the one to use")
    return found[0][1]
