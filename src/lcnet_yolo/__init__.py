"""lcnet-yolo: YOLOv8 detection with a PP-LCNet backbone, as a plug-in for Ultralytics.

Importing the package registers its layers and model YAMLs with Ultralytics. Unless the user set them, it also
sets ``YOLO_OFFLINE=1`` and ``YOLO_AUTOINSTALL=false`` before Ultralytics is imported, so nothing stalls on
network checks and nothing is pip-installed at run time.
"""

import os

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

from lcnet_yolo.integration import (  # after YOLO_OFFLINE: Ultralytics reads it at import
    LCNetClassificationTrainer,
    LCNetDetectionTrainer,
    load_backbone_weights,
    packaged_models,
    register,
    resolve_model,
)
from lcnet_yolo.nn import PPLCNet, pplcnet
from lcnet_yolo.weights import LoadReport, WeightsError, load_pretrained

__version__ = "0.1.0"
__all__ = [
    "LCNetClassificationTrainer",
    "LCNetDetectionTrainer",
    "LoadReport",
    "PPLCNet",
    "WeightsError",
    "__version__",
    "load_backbone_weights",
    "load_pretrained",
    "packaged_models",
    "pplcnet",
    "register",
    "resolve_model",
]

register()
