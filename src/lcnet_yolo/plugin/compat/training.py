"""Training internals: the detection loss on a made-up batch (:func:`detection_batch`, :func:`detection_loss`), the
columns of ``results.csv`` (:data:`RESULTS_CSV_COLUMNS`), validation on chosen epochs (:func:`validate_on_epochs`),
checkpoint writes (:func:`save_checkpoints_through`), and the multi-GPU (DDP) launch, relied on by
:mod:`lcnet_yolo.plugin.ddp` and the trainers:

* ``callbacks.base.default_callbacks`` (:func:`add_default_callback`): every ``YOLO`` model copies these; the
  launcher pickles the trainer's callbacks (cloudpickle: a module-level function by reference) for its ranks, so a
  callback of ours makes each rank import ``lcnet_yolo`` before it builds the model.
* ``generate_ddp_command`` removes ``trainer.save_dir`` unless ``trainer.resume`` (:func:`ddp_launch_keeps_save_dir`);
  rank 0 recreates it from ``args.save_dir``.
* ``tasks.SAFE_LOAD`` read by :func:`~lcnet_yolo.plugin.compat.core.safe_load_active` (the restricted mode
  :func:`~lcnet_yolo.plugin.compat.core.safe_load_mode` switches).
* ``BaseTrainer.ddp`` (true in the launching process only) and the ``RANK`` environment of a rank.
* ``torch_utils.init_seeds(seed, deterministic)`` / ``unset_deterministic`` (:func:`deterministic_algorithms`): the
  deterministic mode training runs in (``deterministic=True``, Ultralytics' default), for the GPU benchmark.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from ultralytics.utils.callbacks import base as _callbacks_base
from ultralytics.utils.torch_utils import init_seeds, unset_deterministic

from lcnet_yolo.plugin.compat.core import BaseTrainer, get_cfg

__all__ = [
    "RESULTS_CSV_COLUMNS",
    "add_default_callback",
    "ddp_launch_keeps_save_dir",
    "detection_batch",
    "detection_loss",
    "deterministic_algorithms",
    "save_checkpoints_through",
    "validate_on_epochs",
]

# Our name -> the column of a detection training's results.csv (``DetMetrics.keys``) that holds it.
RESULTS_CSV_COLUMNS = {"map50": "metrics/mAP50(B)", "map50_95": "metrics/mAP50-95(B)"}


def detection_batch(images, targets) -> dict:
    """A training batch as Ultralytics' detection loss reads it: ``images`` (B, 3, H, W) in 0..1 and ``targets`` rows
    ``(image index, class, x, y, w, h)`` with the box centre and size normalised to 0..1."""
    return {"img": images, "batch_idx": targets[:, 0], "cls": targets[:, 1:2], "bboxes": targets[:, 2:6]}


def detection_loss(model, batch: dict):
    """The summed training loss of a ``DetectionModel`` on a :func:`detection_batch`, as its trainer computes it (the
    default hyperparameters where the model has none: ``model.args`` is what a trainer would have set)."""
    if not hasattr(model, "args") or isinstance(model.args, dict):
        model.args = get_cfg()
    loss, _ = model.loss(batch)
    return loss.sum()


def validate_on_epochs(yolo, validate: Callable[[int, int], bool]) -> None:
    """Make ``yolo.train()`` validate after epoch ``e`` (1-based, of ``n``) only where ``validate(e, n)`` is true;
    Ultralytics still validates the final epoch and whenever early stopping may stop. Sets the trainer's
    ``args.val`` in ``on_train_epoch_end``, which runs before the trainer reads it."""

    def decide(trainer) -> None:
        trainer.args.val = bool(validate(trainer.epoch + 1, trainer.epochs))

    yolo.add_callback("on_train_epoch_end", decide)


def save_checkpoints_through(trainer, path_type: type[Path]) -> None:
    """Make ``trainer`` write ``last.pt``/``best.pt`` through ``path_type`` (a ``Path`` subclass): Ultralytics'
    ``save_model`` writes them with ``self.last.write_bytes(...)`` / ``self.best.write_bytes(...)``."""
    trainer.last, trainer.best = path_type(trainer.last), path_type(trainer.best)


def add_default_callback(event: str, callback: Callable) -> None:
    """Add ``callback`` to Ultralytics' default callbacks for ``event`` (each ``YOLO`` made afterwards has it).
    Idempotent."""
    callbacks = _callbacks_base.default_callbacks[event]
    if callback not in callbacks:
        callbacks.append(callback)


@contextlib.contextmanager
def ddp_launch_keeps_save_dir(trainer: BaseTrainer) -> Iterator[None]:
    """Within the block, Ultralytics' DDP launch leaves ``trainer.save_dir`` in place.

    ``generate_ddp_command`` deletes the run folder of a new run (rank 0 makes it again): between the two, another run
    could take the name. It skips the deletion for a resumed run; ``trainer.resume`` reads true in the block only.
    """
    resume = trainer.resume
    trainer.resume = True
    try:
        yield
    finally:
        trainer.resume = resume


@contextlib.contextmanager
def deterministic_algorithms(on: bool) -> Iterator[None]:
    """Within the block, torch runs as Ultralytics' trainer sets it for ``deterministic=on`` (seed 0); afterwards
    deterministic mode is off, as the trainer leaves it."""
    init_seeds(0, deterministic=on)
    try:
        yield
    finally:
        unset_deterministic()
