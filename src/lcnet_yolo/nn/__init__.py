"""Network modules: PP-LCNet and the layers the detector YAMLs use."""

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

__all__ = [
    "NET_CONFIG",
    "SCALES",
    "PPLCNet",
    "make_divisible",
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
