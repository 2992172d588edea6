"""The benchmark's int8 recipes: ONNX Runtime static quantization of the trained detectors.

The quantizer, the calibration images and Detect's decoding nodes are :mod:`lcnet_yolo.quantize`'s (re-exported
here). The int8 mAP stored with every training was made without :mod:`lcnet_yolo.quantize`'s later changes
(hardswish as uint8 lookups, the thin stem kept in float, percentile calibration), so :func:`quantize_int8`
leaves them off: new results stay comparable with the stored ones. The deployed-latency phase times what a user
of ``lcnet-yolo quantize`` gets instead: :func:`lcnet_yolo.quantize.quantize_onnx_int8` with its defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lcnet_yolo.quantize import calibration_images, decoding_nodes, quantize_onnx_int8

__all__ = ["calibration_images", "decoding_nodes", "quantize_int8"]


def quantize_int8(fp32: Path, int8: Path, images: Sequence[Path], op_types: Sequence[str] | None = None) -> Path:
    """ONNX Runtime static int8 quantization (QDQ, per-channel int8 weights, uint8 activations) of all the ops ORT
    has int8 kernels for (or of ``op_types``), Detect's box decoding excepted, calibrated on ``images``
    letterboxed as Ultralytics' predictor does (min/max ranges); Ultralytics' metadata is carried over so that
    ``YOLO(int8)`` loads it as a detector."""
    return quantize_onnx_int8(
        fp32, int8, images, hardswish_lookup=False, float_stem=False, calibration="minmax", op_types=op_types
    )
