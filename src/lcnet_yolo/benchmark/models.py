"""Building the benchmarked models from their YAMLs, counting them and exporting them to ONNX."""

from __future__ import annotations

import shutil
from pathlib import Path

from torch import nn

from lcnet_yolo.plugin.compat import quiet  # re-exported: the benchmark's modules silence Ultralytics with it


def model_yaml(name: str) -> str:
    """The YAML a benchmark model name stands for: ``yolov8n`` -> ``yolov8n.yaml`` (ours resolve from the package)."""
    return name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"


def build(name: str):
    """An Ultralytics ``YOLO`` object built from the model's YAML (random init)."""
    from ultralytics import YOLO

    import lcnet_yolo  # noqa: F401  (registers our layers and YAMLs)

    with quiet():
        return YOLO(model_yaml(name))


def yaml_exists(name: str) -> bool:
    """Whether Ultralytics (with our YAMLs registered) finds the model's YAML."""
    from ultralytics.nn.tasks import yaml_model_load

    import lcnet_yolo  # noqa: F401

    try:
        with quiet():
            yaml_model_load(model_yaml(name))
        return True
    except (FileNotFoundError, AttributeError):
        return False


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def gflops(model: nn.Module, imgsz: int) -> float:
    """GFLOPs at ``imgsz`` x ``imgsz`` as Ultralytics reports them (thop, 2 FLOPs per multiply-add)."""
    from ultralytics.utils.torch_utils import get_flops

    return float(get_flops(model, imgsz))


def export_onnx(yolo, imgsz: int, dest: Path) -> Path:
    """Export with Ultralytics (opset default, onnxslim on) and move the file to ``dest``."""
    with quiet():
        path = Path(yolo.export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False, verbose=False))
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, dest)
    return dest
