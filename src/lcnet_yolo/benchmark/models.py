"""Measuring the benchmarked models: GFLOPs as Ultralytics reports them and whether a model's YAML exists.

Models are built from their YAMLs by :func:`lcnet_yolo.quantize.build_yolo` (``build`` here) and exported by
:func:`lcnet_yolo.quantize.export_onnx`; parameters are counted by Ultralytics' ``get_num_params``.
"""

from __future__ import annotations

from torch import nn

from lcnet_yolo.io.paths import model_yaml_name
from lcnet_yolo.plugin.compat import get_flops, quiet, yaml_model_load
from lcnet_yolo.quantize import build_yolo as build
from lcnet_yolo.quantize import export_onnx

__all__ = ["build", "export_onnx", "gflops", "yaml_exists"]


def yaml_exists(name: str) -> bool:
    """Whether Ultralytics (with our YAMLs registered) finds the model's YAML."""
    try:
        with quiet():
            yaml_model_load(model_yaml_name(name))
        return True
    except (FileNotFoundError, AttributeError):
        return False


def gflops(model: nn.Module, imgsz: int) -> float:
    """GFLOPs at ``imgsz`` x ``imgsz`` as Ultralytics reports them (thop, 2 FLOPs per multiply-add)."""
    return float(get_flops(model, imgsz))
