"""The glue to Ultralytics, kept in one place.

* :func:`register` makes our YAML layers and packaged model YAMLs known to Ultralytics: ``parse_model`` looks
  module names up in the globals of ``ultralytics.nn.tasks`` and finds YAMLs through its ``check_yaml``. It runs
  on ``import lcnet_yolo`` and is idempotent.
* :func:`ensure_local_fonts` gives Ultralytics' plots their font from matplotlib's bundled DejaVu Sans, so
  plotting never tries to download ``Arial.ttf``.
* :class:`LCNetDetectionTrainer` and :class:`LCNetClassificationTrainer` are Ultralytics' trainers plus one
  argument, ``backbone_weights``: a PP-LCNet ImageNet checkpoint loaded into the backbone each time the trainer
  builds a fresh model; and, for arguments the user left unset, defaults that train on small datasets
  (:class:`TrainingDefaults`).

Nothing else from Ultralytics is replaced: training, losses, metrics, NMS and export are its own.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from torch import nn
from ultralytics.models.yolo.classify import ClassificationTrainer
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import DEFAULT_CFG, DEFAULT_CFG_DICT, LOGGER, RANK, USER_CONFIG_DIR, YAML, colorstr

from lcnet_yolo.checkpoints import ReliableTrainerMixin
from lcnet_yolo.nn.layers import Classifier, PPLCNetBackbone
from lcnet_yolo.nn.neck import LCBlock, LCDown

MODELS_DIR = Path(__file__).parent / "cfg" / "models"
LAYERS = {
    "PPLCNetBackbone": PPLCNetBackbone,
    "LCBlock": LCBlock,
    "LCDown": LCDown,
    "Classifier": Classifier,
}
PLOT_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")  # the names Ultralytics' plotting asks check_font for
_registered = False


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
        from ultralytics.nn.tasks import yaml_model_load

        try:
            yaml_model_load(path)
            return str(name)
        except FileNotFoundError:
            pass
    raise FileNotFoundError(
        f"model '{name}' is neither a file nor a packaged model; packaged models: {', '.join(packaged_models())}"
    )


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
        if "pplcnet" in Path(str(file)).name and not Path(str(file)).exists():
            resolve_model(file)  # raises with the list of packaged models
        return ultralytics_check_yaml(file, *args, **kwargs)

    tasks.check_yaml = check_yaml
    ensure_local_fonts()
    _registered = True


def find_backbone(model: nn.Module) -> PPLCNetBackbone:
    """The PP-LCNet backbone inside an Ultralytics model (``ValueError`` if there is none)."""
    for module in model.modules():
        if isinstance(module, PPLCNetBackbone):
            return module
    raise ValueError("this model has no PPLCNetBackbone layer to load PP-LCNet weights into")


def load_backbone_weights(model: nn.Module, path: str | Path) -> Any:
    """Load a PP-LCNet ImageNet checkpoint (PaddleClas ``.pdparams``, timm or PyTorch file, or a name such as
    ``"imagenet"`` from :data:`lcnet_yolo.hub.WEIGHTS`) into ``model``'s backbone with
    :func:`lcnet_yolo.weights.load_pretrained`; classifier-head keys are skipped. Returns its report.
    """
    from lcnet_yolo.weights import load_pretrained

    report = load_pretrained(find_backbone(model), path, strict=True)
    LOGGER.info(f"Loaded PP-LCNet backbone weights from {report.path}")
    return report


class BackboneWeightsTrainer:
    """Adds ``backbone_weights=PATH`` to an Ultralytics trainer (mixed in before it; see the trainers below).

    The weights are loaded into the backbone of every model the trainer builds from scratch (not on resume,
    which restores the checkpoint). When the model is a YAML, it is built as soon as the trainer exists, so that
    Ultralytics' multi-GPU launcher, which pickles the trainer's model for its workers, ships the loaded weights.
    """

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks=None):
        overrides = dict(overrides or {})
        self.backbone_weights = overrides.pop("backbone_weights", None)
        super().__init__(cfg, overrides, _callbacks)
        if self.backbone_weights and not self.resume and str(self.model).lower().endswith((".yaml", ".yml")):
            self.model = self.get_model(cfg=self.model)

    def get_model(self, cfg: str | dict | None = None, weights: nn.Module | None = None, verbose: bool = True):
        """Build the model as Ultralytics does, then load ``backbone_weights`` into its backbone."""
        model = super().get_model(cfg=cfg, weights=weights, verbose=verbose)
        if self.backbone_weights and not self.resume:
            load_backbone_weights(model, self.backbone_weights)
        return model


MIN_STEPS_PER_EPOCH = 8  # below this, the nominal batch is lowered (see TrainingDefaults)
# What a PP-LCNet detector gets when the user leaves `optimizer` unset (BENCHMARKS.md, "Defaults that train"):
# AdamW at Ultralytics' default lr0 instead of its automatic choice (AdamW at 0.002 for one class).
PPLCNET_DETECT_RECIPE = {"optimizer": "AdamW", "lr0": DEFAULT_CFG_DICT["lr0"]}


def user_set_keys(cfg: Any, overrides: dict | None) -> set[str]:
    """Training arguments the user chose: every key of ``overrides`` (what ``YOLO.train``/the CLI passed) plus
    the keys of a custom ``cfg`` whose values differ from Ultralytics' defaults."""
    keys = set(overrides or {})
    if cfg is not None and cfg is not DEFAULT_CFG:
        from ultralytics.cfg import cfg2dict

        keys |= {k for k, v in cfg2dict(cfg).items() if DEFAULT_CFG_DICT.get(k, object()) != v}
    return keys


def small_dataset_accumulate(batches_per_epoch: int, nominal_accumulate: int) -> int:
    """Batches per optimizer step so that an epoch has at least ``MIN_STEPS_PER_EPOCH`` steps, never more than
    Ultralytics' nominal ``round(nbs / batch)`` (large datasets keep Ultralytics' value)."""
    return max(1, min(nominal_accumulate, batches_per_epoch // MIN_STEPS_PER_EPOCH))


def has_pplcnet_backbone(model: nn.Module) -> bool:
    """Whether ``model`` holds a :class:`PPLCNetBackbone`."""
    return any(isinstance(m, PPLCNetBackbone) for m in model.modules())


class TrainingDefaults:
    """Defaults that train, for arguments the user did not set (mixed in first; each applied one is logged).

    * ``nbs``: Ultralytics accumulates gradients over ``round(nbs / batch)`` batches (``nbs=64``) before each
      optimizer step. On a small dataset that is less than one step per epoch (26 images at batch 4: 7 batches
      per epoch, a step every 16 batches; 30 epochs are then about 20 steps, whatever the model). When ``nbs``
      was not given, it is lowered so that every epoch has at least :data:`MIN_STEPS_PER_EPOCH` steps (one step
      per batch below 8 batches per epoch); weight decay keeps Ultralytics' ``batch * accumulate / nbs`` scaling.
    * ``optimizer``/``lr0`` (detection models with a PP-LCNet backbone, when ``optimizer`` was not given):
      :data:`PPLCNET_DETECT_RECIPE`, AdamW at lr0 0.01 (a user-set ``lr0`` is kept), instead of Ultralytics'
      automatic AdamW at ``0.002 * 5 / (4 + nc)``, at which these models barely learn from scratch.

    One ``lcnet-yolo defaults:`` line says what was applied and why; :attr:`applied_defaults` holds it. A
    user-set value, a resumed run (its checkpoint holds the values used) and large datasets are left alone.
    """

    apply_pplcnet_recipe: bool = True

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks=None):
        self.user_keys = user_set_keys(cfg, overrides)
        self.applied_defaults: dict[str, Any] = {}
        super().__init__(cfg, overrides, _callbacks)

    def build_optimizer(self, model, name="auto", lr=0.001, momentum=0.9, decay=1e-5, iterations=1e5):
        """Apply the defaults (see the class) to the arguments, then build Ultralytics' optimizer."""
        if self.resume:
            return super().build_optimizer(model, name, lr, momentum, decay, iterations)
        reasons = []
        if "nbs" not in self.user_keys and getattr(self, "train_loader", None) is not None:
            batches = len(self.train_loader)
            accumulate = small_dataset_accumulate(batches, self.accumulate)
            if accumulate < self.accumulate:
                nominal_nbs, nominal_accumulate = self.args.nbs, self.accumulate
                self.args.nbs = accumulate * self.batch_size
                self.accumulate = accumulate
                decay = self.args.weight_decay * self.batch_size * accumulate / self.args.nbs
                images = len(self.train_loader.dataset)
                iterations = math.ceil(images / max(self.batch_size, self.args.nbs)) * self.epochs
                self.applied_defaults["nbs"] = self.args.nbs
                reasons.append(
                    f"nbs={self.args.nbs} (an optimizer step every {accumulate} batch{'es' if accumulate > 1 else ''}"
                    f"): {images} training images make {batches} batches of {self.batch_size} per epoch, and "
                    f"Ultralytics' nbs={nominal_nbs} would step every {nominal_accumulate} batches "
                    f"({batches / nominal_accumulate:.1f} steps per epoch)"
                )
        if (
            self.apply_pplcnet_recipe
            and "optimizer" not in self.user_keys
            and str(name).lower() == "auto"
            and has_pplcnet_backbone(model)
        ):
            name = self.args.optimizer = PPLCNET_DETECT_RECIPE["optimizer"]
            if "lr0" not in self.user_keys:
                self.args.lr0 = PPLCNET_DETECT_RECIPE["lr0"]
            lr = self.args.lr0
            self.applied_defaults.update(optimizer=name, lr0=lr)
            reasons.append(
                f"optimizer={name} lr0={lr:g}: PP-LCNet detectors trained from scratch barely learn at "
                f"Ultralytics' automatic choice (AdamW, lr0 {0.002 * 5 / (4 + self.data.get('nc', 10)):g} here)"
            )
        if reasons:
            if RANK in {-1, 0} and (self.save_dir / "args.yaml").is_file():  # written at init, before the defaults
                YAML.save(self.save_dir / "args.yaml", vars(self.args))
            LOGGER.info(
                f"{colorstr('lcnet-yolo defaults:')} {'; '.join(reasons)}. Set these arguments to choose yourself "
                f"(BENCHMARKS.md, 'Defaults that train')."
            )
        return super().build_optimizer(model, name, lr, momentum, decay, iterations)


class LCNetDetectionTrainer(TrainingDefaults, BackboneWeightsTrainer, ReliableTrainerMixin, DetectionTrainer):
    """Ultralytics' detection trainer with ``backbone_weights=PATH`` (PP-LCNet ImageNet weights for the backbone).

    Usage: ``YOLO("yolov8n-pplcnet.yaml").train(data=..., trainer=LCNetDetectionTrainer, backbone_weights=PATH)``.
    """


class LCNetClassificationTrainer(TrainingDefaults, BackboneWeightsTrainer, ReliableTrainerMixin, ClassificationTrainer):
    """Ultralytics' classification trainer with ``backbone_weights=PATH``, for the ``pplcnet_*-cls.yaml`` models.

    Of :class:`TrainingDefaults` it applies the small-dataset ``nbs`` only (the optimizer recipe was measured for
    detection).
    """

    apply_pplcnet_recipe = False
