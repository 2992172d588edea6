"""lcnet-yolo: YOLOv8 detection with a PP-LCNet backbone, as a plug-in for Ultralytics."""

from lcnet_yolo.integration import register
from lcnet_yolo.nn import PPLCNet, pplcnet
from lcnet_yolo.weights import LoadReport, WeightsError, load_pretrained

__version__ = "0.1.0"
__all__ = ["LoadReport", "PPLCNet", "WeightsError", "__version__", "load_pretrained", "pplcnet", "register"]

register()
