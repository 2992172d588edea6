"""int8 post-training quantization of exported detectors, for ONNX Runtime and for OpenVINO.

* :func:`quantize_onnx_int8` — ONNX Runtime static quantization (QDQ format, per-channel int8 weights, uint8
  activations) of an Ultralytics ONNX export, calibrated on training images letterboxed as Ultralytics'
  predictor does, Detect's box decoding and the thin stem (:func:`thin_front_nodes`) kept in float. On top of
  ``quantize_static`` it rewrites every hardswish so that ONNX Runtime runs it on uint8 tensors (see
  :func:`hardsigmoid_as_lookup`): without that each hardswish is a dequantize, a float HardSigmoid and a
  quantize, and the int8 model is slower than fp32.
* :func:`quantize_openvino_int8` — Ultralytics' own OpenVINO exporter with ``int8=True`` (NNCF, calibrated
  on the ``data`` training split).
* :func:`quantize_openvino_nncf` — NNCF directly on the OpenVINO model of an ONNX export, with our own
  calibration reader and ignored scope.

``python -m lcnet_yolo.quantize --model yolov8n-pplcnet --data neon-trees`` prints fp32 and int8 latency in
ONNX Runtime and OpenVINO side by side with YOLOv8n's fp32 ONNX Runtime latency, and the mAP50-95 of the fp32
and int8 files through Ultralytics' ``val``.

The package, one concern per module:

* :mod:`.calibration` — calibration images of a ``data.yaml`` and the predictor's letterbox;
* :mod:`.onnx_int8` — ONNX Runtime QDQ quantization and the hardswish lookup rewrite;
* :mod:`.openvino_int8` — OpenVINO int8 through Ultralytics' exporter or NNCF directly;
* :mod:`.timing` — ONNX Runtime / OpenVINO runners and interleaved timing;
* :mod:`.models` — the fp32 model (weights or name), its ONNX export, ``val`` of exported files;
* :mod:`.comparison` — the side-by-side measurement and its tables; :mod:`.cli` — its arguments.
"""

from lcnet_yolo.quantize.calibration import IMAGE_SUFFIXES, calibration_images, letterboxed
from lcnet_yolo.quantize.cli import main
from lcnet_yolo.quantize.comparison import measure, report
from lcnet_yolo.quantize.models import build_yolo, export_onnx, load_yolo, val_map, weights_or_model
from lcnet_yolo.quantize.onnx_int8 import (
    CALIBRATIONS,
    decoding_nodes,
    hardsigmoid_as_lookup,
    quantize_onnx_int8,
    thin_front_nodes,
)
from lcnet_yolo.quantize.openvino_int8 import quantize_openvino_int8, quantize_openvino_nncf, write_openvino_folder
from lcnet_yolo.quantize.timing import (
    interleaved_samples,
    onnxruntime_runner,
    onnxruntime_session,
    openvino_runner,
    time_interleaved,
)

__all__ = [
    "CALIBRATIONS",
    "IMAGE_SUFFIXES",
    "build_yolo",
    "calibration_images",
    "decoding_nodes",
    "export_onnx",
    "hardsigmoid_as_lookup",
    "interleaved_samples",
    "letterboxed",
    "load_yolo",
    "main",
    "measure",
    "onnxruntime_runner",
    "onnxruntime_session",
    "openvino_runner",
    "quantize_onnx_int8",
    "quantize_openvino_int8",
    "quantize_openvino_nncf",
    "report",
    "thin_front_nodes",
    "time_interleaved",
    "val_map",
    "weights_or_model",
    "write_openvino_folder",
]
