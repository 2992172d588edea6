"""lcnet-yolo: YOLOv8 detection with a PP-LCNet backbone, as a plug-in for Ultralytics.

Importing the package registers its layers and model YAMLs with Ultralytics. Unless the user set them, it also
sets ``YOLO_OFFLINE=1`` and ``YOLO_AUTOINSTALL=false`` before Ultralytics is imported, so nothing stalls on
network checks and nothing is pip-installed at run time.

Layout, lowest layer first (a module imports only from its own layer or lower ones; ``tests/test_layout.py``):
``version``, ``plugin.compat`` (every reach into Ultralytics) → ``nn`` (the network and its YAML layers) →
``io`` (weights, checkpoints, run files, errors) → ``data`` → ``plugin`` (registration, trainers) →
``formats``, ``quantize``, ``slicing`` (deployment, sliced prediction) → ``benchmark`` → ``cli``.
"""

import os

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

# after YOLO_OFFLINE: Ultralytics reads it at import
from lcnet_yolo.io.errors import LCNetYoloError, WeightsError
from lcnet_yolo.io.weights import LoadReport, load_pretrained
from lcnet_yolo.nn import PPLCNet, find_backbone, pplcnet
from lcnet_yolo.plugin.register import packaged_models, register, resolve_model
from lcnet_yolo.plugin.trainers import LCNetClassificationTrainer, LCNetDetectionTrainer
from lcnet_yolo.version import __version__

__all__ = [
    "LCNetClassificationTrainer",
    "LCNetDetectionTrainer",
    "LCNetYoloError",
    "LoadReport",
    "PPLCNet",
    "WeightsError",
    "__version__",
    "find_backbone",
    "load_pretrained",
    "packaged_models",
    "pplcnet",
    "register",
    "resolve_model",
]

register()
