"""lcnet-yolo: YOLOv8 detection with a PP-LCNet backbone, as a plug-in for Ultralytics."""

from lcnet_yolo.integration import register
from lcnet_yolo.nn import PPLCNet, pplcnet

__version__ = "0.1.0"
__all__ = ["PPLCNet", "__version__", "pplcnet", "register"]

register()
