"""Run exported lcnet-yolo / Ultralytics detectors with numpy and ONNX Runtime only: no torch, no Ultralytics.

>>> from lcnet_yolo_runtime import Detector
>>> detections = Detector("best.onnx").predict("image.jpg")
>>> detections.boxes, detections.scores, detections.classes
"""

from lcnet_yolo_runtime.detector import Detector
from lcnet_yolo_runtime.errors import InputError
from lcnet_yolo_runtime.postprocess import Detections

__all__ = ["Detections", "Detector", "InputError"]
__version__ = "0.1.0"
