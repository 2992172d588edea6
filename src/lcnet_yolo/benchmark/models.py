"""Building the benchmarked models from their YAMLs and counting them (parameters, GFLOPs).

The ONNX export is :func:`lcnet_yolo.quantize.export_onnx` (re-exported here); loading goes through
:func:`lcnet_yolo.quantize.load_yolo`.
"""

from __future__ import annotations

from torch import nn

from lcnet_yolo.plugin.compat import get_flops, quiet, yaml_model_load
from lcnet_yolo.quantize import export_onnx, load_yolo

__all__ = ["build", "count_params", "export_onnx", "gflops", "model_yaml", "yaml_exists"]


def model_yaml(name: str) -> str:
    """The YAML a benchmark model name stands for: ``yolov8n`` -> ``yolov8n.yaml`` (ours resolve from the package)."""
    return name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"


def build(name: str):
    """An Ultralytics ``YOLO`` object built from the model's YAML (random init)."""
    return load_yolo(model_yaml(name))


def yaml_exists(name: str) -> bool:
    """Whether Ultralytics (with our YAMLs registered) finds the model's YAML."""
    try:
        with quiet():
            yaml_model_load(model_yaml(name))
        return True
    except (FileNotFoundError, AttributeError):
        return False


def count_params(model: nn.Module) -> int:
    """The number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def gflops(model: nn.Module, imgsz: int) -> float:
    """GFLOPs at ``imgsz`` x ``imgsz`` as Ultralytics reports them (thop, 2 FLOPs per multiply-add)."""
    return float(get_flops(model, imgsz))
