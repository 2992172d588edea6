"""Registration with Ultralytics: our YAML layers and packaged model names (run on ``import lcnet_yolo``).

* :func:`register` adds :data:`lcnet_yolo.nn.registry.YAML_LAYERS` to the names ``parse_model`` knows and puts
  :func:`packaged_yaml` in front of Ultralytics' YAML lookup, so ``YOLO("yolov8n-pplcnet.yaml")`` finds our file.
  It also gives Ultralytics' plots their font (:func:`ensure_local_fonts`), and every ``YOLO`` model a callback
  that makes multi-GPU ranks import lcnet-yolo (:func:`lcnet_yolo.plugin.ddp.import_in_ranks`). Idempotent.
* :func:`packaged_models` and :func:`resolve_model` name and find the model YAMLs we ship: the files of
  ``cfg/models`` and the ablations of ``cfg/ablations.yaml``, each a base model plus changes
  (:func:`ablation_yaml`), written out as a YAML file when Ultralytics asks for it.
"""

from __future__ import annotations

import atexit
import copy
import functools
import inspect
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from lcnet_yolo.nn.registry import YAML_LAYERS
from lcnet_yolo.plugin.compat import (
    LOGGER,
    USER_CONFIG_DIR,
    add_default_callback,
    add_layers,
    hook_check_yaml,
    yaml_model_load,
)
from lcnet_yolo.plugin.ddp import import_in_ranks

__all__ = [
    "MODELS_DIR",
    "ablation_yaml",
    "ablations",
    "ensure_local_fonts",
    "packaged_models",
    "packaged_yaml",
    "register",
    "resolve_model",
]

MODELS_DIR = Path(__file__).resolve().parent.parent / "cfg" / "models"
ABLATIONS_FILE = MODELS_DIR.parent / "ablations.yaml"
PLOT_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")  # the names Ultralytics' plotting asks check_font for


def packaged_models() -> list[str]:
    """Names of the model YAMLs shipped with lcnet-yolo (files and ablations)."""
    return sorted([p.name for p in MODELS_DIR.glob("*.yaml")] + [f"{name}.yaml" for name in ablations()])


@functools.cache
def ablations() -> dict[str, dict[str, Any]]:
    """The table of ``cfg/ablations.yaml``: ablation name -> its base and changes."""
    return yaml.safe_load(ABLATIONS_FILE.read_text())


def _with_act(row: list, act: str) -> list:
    """``row`` with its layer's ``act`` argument set (earlier optional arguments filled with their defaults)."""
    layer = YAML_LAYERS.get(row[2])
    if layer is None:
        return row
    parameters = list(inspect.signature(layer.__init__).parameters.values())[1:]
    index = [p.name for p in parameters].index("act")
    args = list(row[3]) + [p.default for p in parameters[len(row[3]) : index]]
    args[index : index + 1] = [act]
    return [*row[:3], args]


def ablation_yaml(name: str) -> dict[str, Any]:
    """The model definition of ablation ``name`` (without ``.yaml``): its base's, with the changes of its entry."""
    entry = ablations()[name]
    base = entry["base"]
    cfg = ablation_yaml(base) if base in ablations() else yaml.safe_load((MODELS_DIR / f"{base}.yaml").read_text())
    cfg = copy.deepcopy(cfg)
    cfg.update(entry.get("set", {}))
    for key in entry.get("drop", []):
        cfg.pop(key, None)
    rows = cfg["backbone"] + cfg["head"]
    if "act" in entry:
        rows = [_with_act(row, entry["act"]) for row in rows]
    for index in sorted(entry.get("rows", {}), reverse=True):
        rows[index : index + 1] = entry["rows"][index]
    cfg["backbone"], cfg["head"] = rows[: len(cfg["backbone"])], rows[len(cfg["backbone"]) :]
    return cfg


@functools.cache
def _generated_dir() -> Path:
    """The folder ablation YAMLs are written to: one per process (cached), removed by one ``atexit`` hook."""
    folder = Path(tempfile.mkdtemp(prefix="lcnet-yolo-models-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _ablation_file(name: str) -> Path:
    """Ablation ``name`` written as a model YAML (named like it, so Ultralytics reads the scale from the name)."""
    path = _generated_dir() / f"{name}.yaml"
    if not path.is_file():
        header = f"# {name}: generated from lcnet_yolo/cfg/ablations.yaml. {ablations()[name]['about']}\n"
        path.write_text(header + yaml.safe_dump(ablation_yaml(name), sort_keys=False))
    return path


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
        if Path(candidate).stem in ablations() and candidate.endswith(".yaml"):
            return candidate  # Ultralytics' YAML lookup (packaged_yaml) writes it out
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
    if path.suffix == ".yaml" and path.stem in ablations():
        return str(_ablation_file(path.stem))
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
    """Make our layers and model YAMLs known to Ultralytics, here and in multi-GPU ranks (safe to call more than
    once)."""
    add_layers(YAML_LAYERS)
    hook_check_yaml(packaged_yaml)
    add_default_callback("on_pretrain_routine_start", import_in_ranks)
    ensure_local_fonts()
