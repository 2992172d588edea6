"""Registration with Ultralytics: our YAML layers and packaged model names (run on ``import lcnet_yolo``).

* :func:`register` adds :data:`lcnet_yolo.nn.registry.YAML_LAYERS` to the names ``parse_model`` knows and puts
  :func:`packaged_yaml` in front of Ultralytics' YAML lookup, so ``YOLO("yolov8n-pplcnet.yaml")`` finds our file.
  It also gives Ultralytics' plots their font (:func:`ensure_local_fonts`). Idempotent.
* :func:`packaged_models` and :func:`resolve_model` name and find the model YAMLs we ship.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lcnet_yolo.nn.registry import YAML_LAYERS
from lcnet_yolo.plugin.compat import LOGGER, USER_CONFIG_DIR, add_layers, hook_check_yaml, yaml_model_load

__all__ = ["MODELS_DIR", "ensure_local_fonts", "packaged_models", "packaged_yaml", "register", "resolve_model"]

MODELS_DIR = Path(__file__).resolve().parent.parent / "cfg" / "models"
PLOT_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")  # the names Ultralytics' plotting asks check_font for


def packaged_models() -> list[str]:
    """Names of the model YAMLs shipped with lcnet-yolo."""
    return sorted(p.name for p in MODELS_DIR.glob("*.yaml"))


def resolve_model(name: str | Path) -> str:
    """Return what to give ``YOLO()`` for a model name: an existing file, a packaged YAML of ours (``.yaml`` may be
    left out), or one of Ultralytics' own YAML names (e.g. ``yolov8n.yaml``, for comparisons).

    Raises ``FileNotFoundError`` listing the packaged models when ``name`` is none of these.
    """
    path = Path(str(name))
    if path.exists():
        return str(path)
    for candidate in (path.name, f"{path.name}.yaml"):
        if (MODELS_DIR / candidate).is_file():
            return str(MODELS_DIR / candidate)
    if "pplcnet" not in path.name and path.suffix in {".yaml", ".yml"}:
        try:
            yaml_model_load(path)
            return str(name)
        except FileNotFoundError:
            pass
    raise FileNotFoundError(
        f"model '{name}' is neither a file nor a packaged model; packaged models: {', '.join(packaged_models())}"
    )


def packaged_yaml(file: str) -> str | None:
    """Ultralytics' YAML lookup, our part: a packaged model name (that is not a local file) gives our file; an
    unknown ``*pplcnet*`` name raises with the list of packaged models; anything else is left to Ultralytics."""
    path = Path(file)
    if path.exists():
        return None
    if (MODELS_DIR / path.name).is_file():
        return str(MODELS_DIR / path.name)
    if "pplcnet" in path.name:
        resolve_model(file)  # raises FileNotFoundError naming the packaged models
    return None


def ensure_local_fonts() -> None:
    """Copy matplotlib's DejaVu Sans to Ultralytics' config dir as the fonts its plots ask for, if missing."""
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in PLOT_FONTS:
        target = USER_CONFIG_DIR / name
        if not target.exists() and source.is_file():
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
            except OSError as error:  # a read-only config dir must not break `import lcnet_yolo`
                LOGGER.warning(f"could not provide plot font {target}: {error}")


def register() -> None:
    """Make our layers and model YAMLs known to Ultralytics (safe to call more than once)."""
    add_layers(YAML_LAYERS)
    hook_check_yaml(packaged_yaml)
    ensure_local_fonts()
