"""int8 OpenVINO models: Ultralytics' own exporter with ``int8=True`` (NNCF), or NNCF directly on an ONNX export
with our calibration reader and ignored scope; both give an Ultralytics ``*_openvino_model`` folder."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from ultralytics import YOLO

from lcnet_yolo.plugin.compat import quiet, write_export_metadata
from lcnet_yolo.quantize.calibration import letterboxed
from lcnet_yolo.quantize.onnx_int8 import decoding_nodes

__all__ = ["quantize_openvino_int8", "quantize_openvino_nncf", "write_openvino_folder"]


def quantize_openvino_int8(
    model, data: str | Path, imgsz: int = 640, split: str = "train", dest: str | Path | None = None
) -> Path:
    """Ultralytics' own OpenVINO int8 export (``format=openvino int8=True``: NNCF, mixed preset, Detect's
    decoding and every Sigmoid kept in float) of a ``.pt`` file or ``YOLO`` object, calibrated on all the
    ``split`` images of ``data``; returns the ``*_int8_openvino_model`` folder, which ``YOLO(folder)`` loads.
    With ``dest`` the folder is moved there (replacing what ``dest`` holds) instead of staying beside the
    weights."""
    with quiet():
        yolo = model if isinstance(model, YOLO) else YOLO(str(model))
        folder = Path(
            yolo.export(format="openvino", int8=True, data=str(data), imgsz=imgsz, split=split, batch=1, dynamic=False)
        )
    if dest is None:
        return folder
    dest = Path(dest)
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(folder), str(dest))
    return dest


def write_openvino_folder(model, folder: str | Path, metadata: dict[str, str]) -> Path:
    """Save an OpenVINO model as an Ultralytics ``*_openvino_model`` folder (IR files, and metadata.yaml written as
    Ultralytics' exporter writes it)."""
    import openvino as ov

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(folder / "model.xml"), compress_to_fp16=False)
    write_export_metadata(folder, metadata)
    return folder


def quantize_openvino_nncf(
    fp32_onnx: str | Path,
    folder: str | Path,
    calibration_images: Sequence[str | Path],
    *,
    preset: str = "performance",
    fast_bias_correction: bool = True,
    keep_float: Iterable[str] = (),
) -> Path:
    """NNCF post-training int8 quantization of an ONNX export, converted to OpenVINO; returns an Ultralytics
    ``*_openvino_model`` folder (``YOLO(folder)`` loads it).

    Calibrated on ``calibration_images`` (all of them) letterboxed to the model's input size. ``preset``:
    ``performance`` (symmetric activations and weights) or ``mixed`` (asymmetric activations). Detect's box
    decoding and the ``keep_float`` node names stay in float.
    """
    import nncf
    import onnx
    import openvino as ov

    images = [Path(p) for p in calibration_images]
    if not images:
        raise ValueError("quantize_openvino_nncf needs at least one calibration image")
    if preset not in ("performance", "mixed"):
        raise ValueError(f"preset must be 'performance' or 'mixed', not {preset!r}")
    onnx_model = onnx.load(str(fp32_onnx))
    height, width = (d.dim_value for d in onnx_model.graph.input[0].type.tensor_type.shape.dim[2:])
    model = ov.Core().read_model(str(fp32_onnx))
    names = {op.get_friendly_name() for op in model.get_ops()}
    float_names = [n for n in [*decoding_nodes(onnx_model), *keep_float] if n in names]
    quantized = nncf.quantize(
        model,
        nncf.Dataset(images, lambda path: letterboxed(path, height, width)),
        preset=nncf.QuantizationPreset.PERFORMANCE if preset == "performance" else nncf.QuantizationPreset.MIXED,
        subset_size=len(images),
        fast_bias_correction=fast_bias_correction,
        ignored_scope=nncf.IgnoredScope(names=float_names, validate=False) if float_names else None,
    )
    metadata = {p.key: p.value for p in onnx_model.metadata_props}
    return write_openvino_folder(quantized, folder, metadata)
