"""The glue to Ultralytics, kept in one place: register our YAML layers and resolve our packaged model YAMLs.

Ultralytics' ``parse_model`` looks YAML module names up in the globals of ``ultralytics.nn.tasks`` and finds
model YAMLs through ``check_yaml``; :func:`register` adds our layers to the first and our ``cfg/models``
folder to the second. It is idempotent and runs on ``import lcnet_yolo``.
"""

from __future__ import annotations

from pathlib import Path

from lcnet_yolo.nn.layers import PPLCNetBackbone
from lcnet_yolo.nn.neck import LCBlock, LCDown, PPLCNetFeatures

MODELS_DIR = Path(__file__).parent / "cfg" / "models"
LAYERS = {"PPLCNetBackbone": PPLCNetBackbone}
LAYERS.update(LCBlock=LCBlock, LCDown=LCDown, PPLCNetFeatures=PPLCNetFeatures)  # nn/neck.py
_registered = False


def packaged_models() -> list[str]:
    """Names of the model YAMLs shipped with lcnet-yolo."""
    return sorted(p.name for p in MODELS_DIR.glob("*.yaml"))


def register() -> None:
    """Make our layers and model YAMLs known to Ultralytics (safe to call more than once)."""
    global _registered
    if _registered:
        return
    from ultralytics.nn import tasks

    tasks.__dict__.update(LAYERS)
    ultralytics_check_yaml = tasks.check_yaml

    def check_yaml(file, *args, **kwargs):
        packaged = MODELS_DIR / Path(str(file)).name
        if not Path(str(file)).exists() and packaged.is_file():
            return str(packaged)
        return ultralytics_check_yaml(file, *args, **kwargs)

    tasks.check_yaml = check_yaml
    _registered = True
