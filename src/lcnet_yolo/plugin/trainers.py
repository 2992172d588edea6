"""Our trainers: Ultralytics' detection and classification trainers plus three things they lack.

* ``backbone_weights=PATH|NAME`` (:class:`BackboneWeightsTrainer`): PP-LCNet ImageNet weights loaded into the
  backbone each time the trainer builds a fresh model;
* defaults that train on small datasets, for arguments the user left unset (:class:`TrainingDefaults`);
* runs that are safe to start, kill and resume (:class:`ReliableTrainerMixin`);
* multi-GPU ranks that train what one process trains (:class:`SameInEveryRank`).

Nothing else from Ultralytics is replaced: training, losses, metrics, NMS and export are its own. The trainer
methods we override are listed in :data:`lcnet_yolo.plugin.compat.TRAINER_HOOKS`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch import nn

from lcnet_yolo.data import check_dataset, trusted_data
from lcnet_yolo.io.errors import LCNetYoloError, file_error, short_reason
from lcnet_yolo.io.model_yaml import check_model_yaml, check_model_yaml_file
from lcnet_yolo.io.runs import AtomicPath, reserve_save_dir, trim_results_csv
from lcnet_yolo.io.safe_load import restricted_loading, safe_load
from lcnet_yolo.io.weights import load_pretrained
from lcnet_yolo.nn.pplcnet import PPLCNet
from lcnet_yolo.plugin.compat import (
    DEFAULT_CFG,
    DEFAULT_CFG_DICT,
    LOGGER,
    RANK,
    YAML,
    ClassificationTrainer,
    DetectionTrainer,
    cfg2dict,
    colorstr,
    ddp_launch_keeps_save_dir,
    no_dataset_downloads,
    safe_load_active,
    save_checkpoints_through,
)
from lcnet_yolo.plugin.ddp import LaunchState, launch_state, passed_to_ranks

__all__ = [
    "BackboneWeightsTrainer",
    "LCNetClassificationTrainer",
    "LCNetDetectionTrainer",
    "ReliableTrainerMixin",
    "SameInEveryRank",
    "TrainingDefaults",
]

MIN_STEPS_PER_EPOCH = 8  # below this, the nominal batch is lowered (see TrainingDefaults)
# What a PP-LCNet detector gets when the user leaves `optimizer` unset (BENCHMARKS.md, "Defaults that train"):
# AdamW at Ultralytics' default lr0 instead of its automatic choice (AdamW at 0.002 for one class).
PPLCNET_DETECT_RECIPE = {"optimizer": "AdamW", "lr0": DEFAULT_CFG_DICT["lr0"]}


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
            report = load_pretrained(model, self.backbone_weights, strict=True)
            LOGGER.info(f"Loaded PP-LCNet backbone weights from {report.path}")
        return model


def user_set_keys(cfg: Any, overrides: dict | None) -> set[str]:
    """Training arguments the user chose: every key of ``overrides`` (what ``YOLO.train``/the CLI passed) plus
    the keys of a custom ``cfg`` whose values differ from Ultralytics' defaults."""
    keys = set(overrides or {})
    if cfg is not None and cfg is not DEFAULT_CFG:
        keys |= {k for k, v in cfg2dict(cfg).items() if DEFAULT_CFG_DICT.get(k, object()) != v}
    return keys


def small_dataset_accumulate(batches_per_epoch: int, nominal_accumulate: int) -> int:
    """Batches per optimizer step so that an epoch has at least ``MIN_STEPS_PER_EPOCH`` steps, never more than
    Ultralytics' nominal ``round(nbs / batch)`` (large datasets keep Ultralytics' value)."""
    return max(1, min(nominal_accumulate, batches_per_epoch // MIN_STEPS_PER_EPOCH))


def has_pplcnet_backbone(model: nn.Module) -> bool:
    """Whether ``model`` holds a PP-LCNet (the ``PPLCNetBackbone`` row of our YAMLs)."""
    return any(isinstance(m, PPLCNet) for m in model.modules())


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

    One ``lcnet-yolo defaults:`` line states the decision (optimizer, lr0, nbs, accumulate) and what was applied and
    why; :attr:`defaults_line` holds it, :attr:`applied_defaults` the values applied. A user-set value, a resumed run
    (its checkpoint holds the values used) and large datasets are left alone. In a multi-GPU rank, the user-set
    arguments are those of the launching process (:mod:`lcnet_yolo.plugin.ddp`), so every rank decides as one
    process does.
    """

    apply_pplcnet_recipe: bool = True

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks=None):
        launched = launch_state((overrides or {}).get("save_dir"))
        self.user_keys = set(launched.user_keys) if launched else user_set_keys(cfg, overrides)
        self.applied_defaults: dict[str, Any] = {}
        self.defaults_line: str | None = None
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
        if reasons and RANK in {-1, 0} and (self.save_dir / "args.yaml").is_file():  # written before the defaults
            YAML.save(self.save_dir / "args.yaml", vars(self.args))
        optimizer = super().build_optimizer(model, name, lr, momentum, decay, iterations)
        decision = (  # after Ultralytics resolved optimizer=auto into args
            f"optimizer={self.args.optimizer} lr0={self.args.lr0:g} nbs={self.args.nbs} accumulate={self.accumulate}"
        )
        if reasons:
            why = f"applied {'; '.join(reasons)}. Set these arguments to choose yourself"
            why += " (BENCHMARKS.md, 'Defaults that train')."
        else:
            why = "none applied (set by the user, or not needed for this model and dataset)."
        self.defaults_line = f"lcnet-yolo defaults: {decision}; {why}"
        LOGGER.info(f"{colorstr('lcnet-yolo defaults:')} {decision}; {why}")
        return optimizer


def _safe_load_local(source: object) -> None:
    """:func:`safe_load` a trainer's ``model=``/``pretrained=`` value when it is a local ``.pt`` (an official
    Ultralytics name without a folder, not present here, is left to Ultralytics to download)."""
    if isinstance(source, str | Path) and str(source).lower().endswith(".pt"):
        path = Path(source)
        if path.exists() or path.parent != Path("."):
            safe_load(path)


class ReliableTrainerMixin:
    """Mix into an Ultralytics trainer (``class T(ReliableTrainerMixin, DetectionTrainer)``) for safe runs.

    * the run directory is claimed with :func:`reserve_save_dir` (no two runs share one);
    * ``last.pt``/``best.pt`` are written through :class:`AtomicPath` (a kill never leaves half a file);
    * on resume, ``results.csv`` is trimmed to the epochs ``last.pt`` holds (no duplicated or broken rows);
    * with ``check_data`` (default), ``data=`` passes :func:`lcnet_yolo.data.trusted_data` (no URL, archive or
      download script; fields checked; missing images named), no dataset is ever downloaded, and a detection
      dataset is checked by :func:`lcnet_yolo.data.check_dataset` first: each file Ultralytics will skip is
      named once with its reason, then the counts. It opens every image
      once, as Ultralytics' first label-cache build does; set ``check_data = False`` to skip it;
    * every ``.pt`` the trainer or Ultralytics opens during the run (the checkpoint to resume, ``model=``/
      ``pretrained=`` files, ``best.pt`` for the final validation, a distillation teacher) is read through
      :func:`safe_load` under :func:`restricted_loading`, and every model definition it builds (a YAML file, a
      checkpoint's YAML when fine-tuning or resuming) passes :func:`check_model_yaml` first;
    * a resumed run writes beside its checkpoint (``RUN/weights/last.pt`` -> ``RUN``) or to the ``save_dir`` the
      caller gives, never where the checkpoint's ``train_args`` say, and needs ``data=`` when the dataset those
      name is not on this machine (:func:`lcnet_yolo.io.train_args.usable_train_args`).
    """

    check_data: bool = True

    def __init__(self, cfg=None, overrides: dict | None = None, _callbacks=None):
        cfg = DEFAULT_CFG if cfg is None else cfg
        overrides = dict(overrides or {})
        if not overrides.get("resume") and not overrides.get("save_dir"):
            overrides["save_dir"] = str(reserve_save_dir(cfg, overrides))
        super().__init__(cfg, overrides, _callbacks)
        save_checkpoints_through(self, AtomicPath)
        if not self.resume:  # YOLO.train opens ``pretrained=`` itself (weights_only=False) after building the trainer
            _safe_load_local(self.args.pretrained)

    def check_resume(self, overrides) -> None:
        resume = self.args.resume
        checked = None
        if resume and isinstance(resume, str | Path) and Path(resume).is_file():
            safe_load(resume)  # one clear error for a damaged or refused file (Ultralytics says "not found")
            checked = Path(resume).resolve()
        with restricted_loading():  # Ultralytics gets the checkpoint's usable train_args only
            super().check_resume(overrides)
        if self.resume:
            if Path(self.args.model).resolve() != checked:  # the latest run, found by Ultralytics
                safe_load(self.args.model)
            self._confine_resume(overrides)

    def _confine_resume(self, overrides: dict) -> None:
        """Where a resumed run writes and what it reads: decided here, not by the checkpoint's ``train_args``."""
        last = Path(self.args.model)
        if not self.args.data:
            raise file_error(
                last,
                "resuming needs data=: the dataset its train_args name is not on this machine, and a dataset "
                "named in a file is not followed",
            )
        if not overrides.get("save_dir"):
            self.args.save_dir = str(last.parent.parent if last.parent.name == "weights" else last.parent)

    def setup_model(self):
        with restricted_loading():
            return super().setup_model()

    def get_model(self, cfg=None, weights=None, verbose: bool = True):
        if isinstance(cfg, str | Path) and str(cfg).lower().endswith((".yaml", ".yml")):
            check_model_yaml_file(cfg)
        if not isinstance(cfg, dict):
            return super().get_model(cfg=cfg, weights=weights, verbose=verbose)
        try:  # a checkpoint's model YAML (fine-tuning or resuming); Ultralytics evals parts of it
            check_model_yaml(cfg)
        except ValueError as error:
            raise file_error(self.args.model, f"refused: the model YAML of its network {error}") from None
        try:
            with restricted_loading():
                return super().get_model(cfg=cfg, weights=weights, verbose=verbose)
        except LCNetYoloError:
            raise
        except Exception as error:  # an allowed layer with arguments it cannot take
            raise file_error(self.args.model, f"its model YAML does not build ({short_reason(error)})") from None

    def train(self):
        """Ultralytics' training, with every ``.pt`` it reads on its own going through :func:`safe_load`."""
        with restricted_loading():
            return super().train()

    def get_dataset(self) -> dict:
        if self.check_data:
            self.args.data = trusted_data(self.args.data, self.args.task, self.args.split)
        with no_dataset_downloads():
            data = super().get_dataset()
        if self.check_data and self.args.task == "detect" and RANK in {-1, 0} and data.get("train"):
            check_dataset(data, log=self.log_data_check)
        return data

    def log_data_check(self, line: str) -> None:
        """Where the dataset check's lines go (Ultralytics' logger)."""
        LOGGER.info(f"data check: {line}")

    def resume_training(self, ckpt) -> None:
        super().resume_training(ckpt)
        if ckpt is not None and self.resume:
            trim_results_csv(self.csv, self.start_epoch)


class SameInEveryRank:
    """Multi-GPU training (``device=0,1``) that trains in every rank what one process trains (mixed in first).

    Ultralytics' launcher starts torchrun from :meth:`train` and rebuilds the trainer in each rank. Here the launching
    process passes its :class:`~lcnet_yolo.plugin.ddp.LaunchState` (the user-set arguments, so each rank applies
    :class:`TrainingDefaults` as one process does, and whether ``.pt`` files are read in restricted mode), and keeps
    the run folder it reserved (Ultralytics deletes it before the launch). ``backbone_weights=`` are read once, in the
    launching process: the model it built travels to the ranks with its weights.
    """

    def train(self):
        """Train here, or launch the ranks with this process's state (multi-GPU)."""
        if self.ddp:
            state = LaunchState(str(self.save_dir), tuple(sorted(getattr(self, "user_keys", ()))), safe_load_active())
            with passed_to_ranks(state), ddp_launch_keeps_save_dir(self):
                return super().train()
        launched = launch_state(self.save_dir)
        if launched and launched.restricted and not safe_load_active():
            with restricted_loading():  # as the launching process read them: best.pt for the final validation
                return super().train()
        return super().train()


class LCNetDetectionTrainer(
    SameInEveryRank, TrainingDefaults, BackboneWeightsTrainer, ReliableTrainerMixin, DetectionTrainer
):
    """Ultralytics' detection trainer with ``backbone_weights=PATH`` (PP-LCNet ImageNet weights for the backbone).

    Usage: ``YOLO("yolov8n-pplcnet.yaml").train(data=..., trainer=LCNetDetectionTrainer, backbone_weights=PATH)``.
    """


class LCNetClassificationTrainer(
    SameInEveryRank, TrainingDefaults, BackboneWeightsTrainer, ReliableTrainerMixin, ClassificationTrainer
):
    """Ultralytics' classification trainer with ``backbone_weights=PATH``, for the ``pplcnet_*-cls.yaml`` models.

    Of :class:`TrainingDefaults` it applies the small-dataset ``nbs`` only (the optimizer recipe was measured for
    detection).
    """

    apply_pplcnet_recipe = False
