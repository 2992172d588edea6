"""int8 copies of trained detectors: ONNX Runtime static quantization calibrated on training images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def calibration_images(data_yaml: Path, count: int) -> list[Path]:
    """The first ``count`` training images (sorted) of a YOLO data.yaml."""
    import yaml

    spec = yaml.safe_load(Path(data_yaml).read_text())
    root = Path(spec.get("path") or Path(data_yaml).parent)
    if not root.is_absolute():
        root = Path(data_yaml).parent / root
    train_dirs = spec["train"] if isinstance(spec["train"], list) else [spec["train"]]
    files: list[Path] = []
    for entry in train_dirs:
        path = Path(entry) if Path(entry).is_absolute() else root / entry
        if path.is_file():  # a list of image paths
            files += [Path(line.strip()) for line in path.read_text().splitlines() if line.strip()]
        else:
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".tif", ".bmp"})
    if not files:
        raise RuntimeError(f"no training images found for calibration in {data_yaml}")
    return sorted(files)[:count]


def decoding_nodes(model) -> list[str]:
    """Names of the ONNX nodes of Detect's box decoding (everything of the last layer but its conv branches).

    They stay in float: Detect concatenates pixel coordinates with 0..1 scores, one int8 scale cannot hold both.
    """
    heads = [n.name for n in model.graph.node if n.name.startswith("/model.")]
    last = max(int(name.split("/")[1].split(".")[1]) for name in heads)
    prefix = f"/model.{last}/"
    branches = tuple(f"{prefix}{b}" for b in ("cv2", "cv3", "one2one_cv2", "one2one_cv3"))
    return [n.name for n in model.graph.node if n.name.startswith(prefix) and not n.name.startswith(branches)]


def quantize_int8(fp32: Path, int8: Path, images: Sequence[Path], op_types: Sequence[str] | None = None) -> Path:
    """ONNX Runtime static int8 quantization (QDQ, per-channel int8 weights, uint8 activations) of all the ops ORT
    has int8 kernels for (or of ``op_types``), Detect's box decoding excepted, calibrated on ``images``
    letterboxed as Ultralytics' predictor does; Ultralytics' metadata is carried over so that ``YOLO(int8)``
    loads it as a detector."""
    import cv2
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from ultralytics.data.augment import LetterBox

    model = onnx.load(str(fp32))
    input_name = model.graph.input[0].name
    height, width = (d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[2:])
    letterbox = LetterBox((height, width), auto=False)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.files = iter(images)

        def get_next(self):
            path = next(self.files, None)
            if path is None:
                return None
            image = letterbox(image=cv2.imread(str(path)))
            x = image[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
            return {input_name: np.ascontiguousarray(x)}

    prepared = int8.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(int8),
        Reader(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=op_types,
        nodes_to_exclude=decoding_nodes(onnx.load(str(prepared))),
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    prepared.unlink()
    quantized = onnx.load(str(int8))
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    onnx.save(quantized, str(int8))
    return int8
