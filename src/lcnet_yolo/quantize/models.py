"""The fp32 side through Ultralytics' ``YOLO``: a model from weights (:func:`lcnet_yolo.io.checkpoints.load_yolo`,
re-exported here) or built from a name (:func:`build_yolo`), its ONNX export, and the mAP of any exported file
(fp32 or int8) through Ultralytics' ``val``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml
from ultralytics import YOLO

from lcnet_yolo.io.checkpoints import load_yolo
from lcnet_yolo.io.model_yaml import check_model_yaml_file
from lcnet_yolo.io.paths import model_yaml_name
from lcnet_yolo.plugin.compat import quiet

__all__ = ["build_yolo", "export_onnx", "load_yolo", "val_map", "weights_or_model"]


def weights_or_model(model: str | Path, nc: int | None = None):
    """A ``YOLO`` object from a ``.pt`` file (:func:`lcnet_yolo.io.checkpoints.load_yolo`; ``nc`` is not used) or
    built from a model name/YAML (:func:`build_yolo`)."""
    text = str(model)
    if not text.endswith(".pt"):
        return build_yolo(text, nc)
    if not Path(text).is_file():
        raise FileNotFoundError(f"weights not found: {text}")
    with quiet():
        return load_yolo(text)


def build_yolo(name: str | Path, nc: int | None = None):
    """A ``YOLO`` object built from a model name or YAML (``yolov8n`` is ``yolov8n.yaml``), random init, with
    ``nc`` classes if given."""
    name = model_yaml_name(name)
    with quiet():
        if nc is None:
            return load_yolo(name)  # checked by the model-YAML check before it is built
        spec = check_model_yaml_file(name)
        spec["nc"] = nc
        folder = Path(tempfile.mkdtemp(prefix="lcnet-yolo-quantize-"))
        path = folder / Path(name).name  # same file name: Ultralytics reads the scale from it
        path.write_text(yaml.safe_dump({k: v for k, v in spec.items() if k != "yaml_file"}, sort_keys=False))
        return YOLO(str(path))


def export_onnx(yolo, imgsz: int, dest: str | Path) -> Path:
    """Ultralytics' ONNX export (fixed input size, onnxslim on), moved to ``dest``."""
    dest = Path(dest)
    with quiet():
        path = Path(yolo.export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False, verbose=False))
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, dest)
    return dest


def val_map(path: str | Path, data: str | Path, imgsz: int = 640) -> dict[str, float]:
    """mAP50 and mAP50-95 of an exported model (ONNX file or OpenVINO folder) through Ultralytics' ``val``; its
    run folder goes beside the model (``STEM-val``), not into Ultralytics' runs directory."""
    path = Path(path)
    with quiet():
        metrics = YOLO(str(path), task="detect").val(
            data=str(data),
            imgsz=imgsz,
            batch=1,
            device="cpu",
            plots=False,
            verbose=False,
            project=str(path.parent.resolve()),
            name=f"{path.stem}-val",
            exist_ok=True,
        )
    return {"map50": float(metrics.box.map50), "map50_95": float(metrics.box.map)}
