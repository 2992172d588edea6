"""Network modules: PP-LCNet (:mod:`.pplcnet`), the layers our model YAMLs use (:mod:`.layers`, :mod:`.neck`) and
their one registry (:mod:`.registry`)."""

from lcnet_yolo.nn.pplcnet import (
    NET_CONFIG,
    SCALES,
    PPLCNet,
    make_divisible,
    pplcnet,
    pplcnet_x0_5,
    pplcnet_x0_25,
    pplcnet_x0_35,
    pplcnet_x0_75,
    pplcnet_x1_0,
    pplcnet_x1_5,
    pplcnet_x2_0,
    pplcnet_x2_5,
)
from lcnet_yolo.nn.registry import YAML_LAYERS, find_backbone, module_classes

__all__ = [
    "NET_CONFIG",
    "SCALES",
    "YAML_LAYERS",
    "PPLCNet",
    "find_backbone",
    "make_divisible",
    "module_classes",
    "pplcnet",
    "pplcnet_x0_5",
    "pplcnet_x0_25",
    "pplcnet_x0_35",
    "pplcnet_x0_75",
    "pplcnet_x1_0",
    "pplcnet_x1_5",
    "pplcnet_x2_0",
    "pplcnet_x2_5",
]
