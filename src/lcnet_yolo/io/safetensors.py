"""``.safetensors`` copies of checkpoints: raw tensors plus a metadata block, safe to share.

:func:`convert` turns a checkpoint into a ``.safetensors`` file (the network's tensors and a JSON metadata block with
the model YAML, class names and versions) and :func:`load_safetensors` builds the model back from it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from torch import nn

from lcnet_yolo.io.errors import existing_file, file_error, short_reason
from lcnet_yolo.io.model_yaml import check_model_yaml
from lcnet_yolo.io.paths import model_yaml_name
from lcnet_yolo.io.runs import AtomicPath
from lcnet_yolo.io.safe_load import restricted_loading, safe_load
from lcnet_yolo.nn.registry import find_backbone
from lcnet_yolo.version import __version__

__all__ = ["METADATA_FORMAT", "convert", "load_safetensors", "read_safetensors"]

METADATA_FORMAT = "lcnet-yolo/1"  # value of the "format" key in the metadata of our .safetensors files


def _backbone_scale(model: nn.Module) -> float | None:
    try:
        return find_backbone(model).scale
    except ValueError:  # an Ultralytics model without a PP-LCNet
        return None


def convert(src: str | Path, dst: str | Path | None = None) -> Path:
    """Convert an Ultralytics ``.pt`` checkpoint into a ``.safetensors`` file; returns its path.

    The tensors are the network's state dict (the EMA weights a checkpoint is evaluated with), stored in their
    checkpoint precision. The metadata block (JSON strings) holds ``format``, ``model_yaml`` (the full model
    definition), ``model_name`` (its YAML file name), ``scale`` (the YAML scale letter), ``backbone_scale``
    (PP-LCNet width), ``nc``, ``names``, ``task``, ``stride``, ``imgsz`` and the lcnet-yolo / Ultralytics /
    torch versions. The source is read with :func:`~lcnet_yolo.io.safe_load.safe_load`, so converting an untrusted
    file is safe too.
    """
    import safetensors.torch
    import ultralytics

    src = Path(src)
    dst = Path(dst) if dst is not None else src.with_suffix(".safetensors")
    ckpt = safe_load(src)
    model = ckpt.get("ema") or ckpt.get("model")
    yaml_dict = dict(getattr(model, "yaml", None) or {})
    if not yaml_dict:
        raise file_error(src, "the checkpoint's model has no YAML definition to record")
    names = getattr(model, "names", None) or {i: str(i) for i in range(int(yaml_dict.get("nc", 0)))}
    names = {int(k): str(v) for k, v in (names.items() if isinstance(names, dict) else enumerate(names))}
    train_args = ckpt.get("train_args") or {}
    metadata = {
        "format": METADATA_FORMAT,
        "model_yaml": json.dumps(yaml_dict),
        "model_name": Path(str(yaml_dict.get("yaml_file", ""))).name,
        "scale": str(yaml_dict.get("scale", "")),
        "backbone_scale": json.dumps(_backbone_scale(model)),
        "nc": str(len(names)),
        "names": json.dumps(names),
        "task": str(getattr(model, "task", "detect")),
        "stride": json.dumps([float(s) for s in getattr(model, "stride", torch.tensor([32.0]))]),
        "imgsz": json.dumps(train_args.get("imgsz")),
        "lcnet_yolo_version": __version__,
        "ultralytics_version": ultralytics.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "source": src.name,
    }
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    AtomicPath(dst).write_bytes(safetensors.torch.save(tensors, metadata=metadata))
    return dst


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor and the metadata block of a ``.safetensors`` file (all tensors are read: damage shows here)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except Exception as error:  # SafetensorError, OSError, ValueError, MemoryError, ...
        raise file_error(
            path, f"not a readable .safetensors file: truncated or corrupted ({short_reason(error)})"
        ) from None
    return tensors, metadata


def load_safetensors(path: str | Path):
    """Build the model recorded in a :func:`convert`-ed ``.safetensors`` file and load its tensors; returns ``YOLO``.

    The model is rebuilt from the metadata's YAML (after checking that it names only layer classes and a plain
    ``torch.nn`` activation), the tensors are loaded strictly, and class names come from the metadata. The
    returned object predicts, validates, exports and fine-tunes like ``YOLO("best.pt")``.
    """
    import yaml
    from ultralytics import YOLO

    path = existing_file(path)
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != METADATA_FORMAT:
        raise file_error(path, f"no lcnet-yolo metadata (format {metadata.get('format')!r}); write it with convert()")
    try:
        cfg = json.loads(metadata["model_yaml"])
        names = {int(k): str(v) for k, v in json.loads(metadata["names"]).items()}
        try:
            check_model_yaml(cfg)
        except ValueError as error:
            raise ValueError(f"model_yaml {error}") from None
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise file_error(path, f"invalid metadata: {short_reason(error)}") from None
    task = metadata.get("task", "detect")
    if task not in ("detect", "classify", "segment", "pose", "obb"):
        raise file_error(path, f"invalid metadata: field 'task' {str(task)[:40]!r} is not a task")
    model_name = model_yaml_name(Path(metadata.get("model_name") or "model.yaml").name)
    cfg = {k: v for k, v in cfg.items() if k not in {"yaml_file", "ch"}}
    with tempfile.TemporaryDirectory() as tmp:  # YOLO builds models from YAML files; the file name keeps the scale
        yaml_path = Path(tmp) / model_name
        yaml_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        try:
            with restricted_loading():
                yolo = YOLO(str(yaml_path), task=task)
        except Exception as error:  # an allowed layer given arguments it cannot take
            raise file_error(path, f"invalid metadata: its model_yaml does not build ({short_reason(error)})") from None
    model = yolo.model
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise file_error(path, f"the tensors do not fit the recorded model ({short_reason(error, 200)})") from None
    model.float().eval()
    model.names = names
    model.yaml["yaml_file"] = model_name
    model.pt_path = str(path)
    yolo.ckpt = {"model": model, "train_args": {}}  # so YOLO.train fine-tunes from these weights
    yolo.ckpt_path = str(path)
    yolo.overrides["model"] = yolo.model_name = str(path)
    return yolo
