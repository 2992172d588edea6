"""Every place lcnet-yolo relies on Ultralytics beyond ``YOLO(...)`` and its documented arguments, in one file.

lcnet-yolo is pinned to ``ultralytics==8.4.190`` (:data:`ULTRALYTICS_VERSION`); ``tests/test_compat.py`` checks each
entry below against that release, so the next Ultralytics release is checked here and nowhere else. Outside this
module our code imports only ``from ultralytics import YOLO`` (and ``ultralytics.__version__``); a test enforces it.

=========================================  ======================================================================
What we rely on                            Why
=========================================  ======================================================================
``tasks`` globals (:func:`add_layers`)     ``parse_model`` finds a YAML module name in ``ultralytics.nn.tasks``'
                                           globals; our layers are added there. :func:`layer_named` looks a name
                                           up where ``parse_model`` does (the model-YAML allow-list).
``tasks.check_yaml`` (:func:`hook_check_yaml`)
                                           model YAMLs are found through it; a packaged YAML name resolves to our
                                           ``cfg/models`` folder.
``tasks.SAFE_LOAD``, ``torch_safe_load``   restricted (``weights_only=True``) loading of ``.pt`` files
(:func:`safe_load_mode`)
``yaml_model_load``                        reads a model YAML as Ultralytics does (scale letter from the name)
``Conv``, ``Classify``                     ``BaseModel.fuse`` folds BN into instances of ``Conv`` that have a
                                           ``bn``; ``initialize_weights`` sets eps 1e-3 on modules whose type *is*
                                           ``nn.BatchNorm2d``. Our conv units subclass ``Conv``, our backbone's
                                           norms are a named subclass (``lcnet_yolo.nn.layers``). ``Classify`` is
                                           the base of our classifier head (Ultralytics resizes ``.linear``).
trainer methods (:data:`TRAINER_HOOKS`)    our trainers override these ``BaseTrainer`` methods and read
                                           ``accumulate``, ``train_loader``, ``batch_size``, ``last``/``best``,
                                           ``csv``, ``start_epoch``
``patches._image_open`` (:func:`plain_image_open`)
                                           PIL's ``open`` without Ultralytics' patch, which pip-installs a HEIF
                                           plugin on the first file PIL cannot read
``LOGGER`` (:func:`logger_disabled`, :func:`quiet`)
                                           silencing Ultralytics' messages around helpers that print
the trainer's dataset message (:func:`dataset_error_cause`)
                                           the trainer wraps any dataset problem in ``RuntimeError("Dataset 'x'
                                           error ❌ <cause>")``; the CLI reports the cause in one line
``cfg`` helpers, ``LetterBox``,            argument parsing and checking as the ``yolo`` command does, the
``data.utils``, ``torch_utils``            predictor's letterbox, dataset paths and formats, FLOPs counts
=========================================  ======================================================================
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterator

from ultralytics.cfg import (
    cfg2dict,
    check_cfg,
    check_dict_alignment,
    get_cfg,
    get_save_dir,
    merge_equals_args,
    parse_key_value_pair,
)
from ultralytics.data.augment import LetterBox
from ultralytics.data.utils import IMG_FORMATS, check_det_dataset, img2label_paths
from ultralytics.engine.trainer import BaseTrainer
from ultralytics.models.yolo.classify import ClassificationTrainer
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.nn import tasks
from ultralytics.nn.modules import Classify, Conv
from ultralytics.nn.tasks import DetectionModel, torch_safe_load, yaml_model_load
from ultralytics.utils import (
    ASSETS,
    DATASETS_DIR,
    DEFAULT_CFG,
    DEFAULT_CFG_DICT,
    LOGGER,
    RANK,
    TQDM,
    USER_CONFIG_DIR,
    YAML,
    colorstr,
)
from ultralytics.utils import patches as _patches
from ultralytics.utils.torch_utils import get_flops, get_num_params

__all__ = [
    "ASSETS",
    "DATASETS_DIR",
    "DEFAULT_CFG",
    "DEFAULT_CFG_DICT",
    "IMG_FORMATS",
    "LOGGER",
    "RANK",
    "TQDM",
    "TRAINER_HOOKS",
    "ULTRALYTICS_VERSION",
    "USER_CONFIG_DIR",
    "YAML",
    "BaseTrainer",
    "ClassificationTrainer",
    "Classify",
    "Conv",
    "DetectionModel",
    "DetectionTrainer",
    "LetterBox",
    "add_layers",
    "cfg2dict",
    "check_cfg",
    "check_det_dataset",
    "check_dict_alignment",
    "colorstr",
    "dataset_error_cause",
    "get_cfg",
    "get_flops",
    "get_num_params",
    "get_save_dir",
    "hook_check_yaml",
    "img2label_paths",
    "layer_named",
    "logger_disabled",
    "merge_equals_args",
    "parse_key_value_pair",
    "plain_image_open",
    "quiet",
    "safe_load_mode",
    "torch_safe_load",
    "yaml_model_load",
]

ULTRALYTICS_VERSION = "8.4.190"  # the release every entry of this module is checked against

# BaseTrainer methods our trainers override (lcnet_yolo.plugin.trainers), with the parameters they pass on.
TRAINER_HOOKS: dict[str, tuple[str, ...]] = {
    "build_optimizer": ("model", "name", "lr", "momentum", "decay", "iterations"),
    "check_resume": ("overrides",),
    "setup_model": (),
    "get_model": ("cfg", "weights", "verbose"),
    "get_dataset": (),
    "resume_training": ("ckpt",),
}
DATASET_ERROR_PREFIX = "Dataset '"  # start of the trainer's wrapped dataset error


def add_layers(layers: dict[str, type]) -> None:
    """Make ``layers`` (YAML name -> class) visible to ``parse_model``, which looks names up in ``tasks``' globals."""
    vars(tasks).update(layers)


def layer_named(name: str) -> object:
    """What ``parse_model`` finds for a YAML module name that is not ``nn.X`` / ``torchvision.ops.X`` (or None)."""
    return vars(tasks).get(name)


def hook_check_yaml(resolve: Callable[[str], str | None]) -> None:
    """Put ``resolve`` in front of ``tasks.check_yaml``: it returns a path for a name it knows, or None to let
    Ultralytics look (``resolve`` may raise for a name it knows is wrong). Idempotent for one ``resolve``."""
    original = tasks.check_yaml
    if getattr(original, "lcnet_yolo_resolve", None) is resolve:
        return

    def check_yaml(file, *args, **kwargs):
        found = resolve(str(file))
        return found if found is not None else original(file, *args, **kwargs)

    check_yaml.lcnet_yolo_resolve = resolve
    tasks.check_yaml = check_yaml


@contextlib.contextmanager
def safe_load_mode() -> Iterator[None]:
    """Ultralytics' restricted mode for the block (``ULTRALYTICS_SAFE_LOAD=1``): ``.pt`` files are read with
    ``torch.load(weights_only=True)`` and model YAMLs are built without ``eval``; switched back afterwards."""
    previous = tasks.SAFE_LOAD
    tasks.SAFE_LOAD = True
    try:
        yield
    finally:
        tasks.SAFE_LOAD = previous


def plain_image_open() -> Callable:
    """``PIL.Image.open`` without Ultralytics' patch (which pip-installs a HEIF plugin on an unreadable file)."""
    from PIL import Image

    return getattr(_patches, "_image_open", Image.open)


@contextlib.contextmanager
def logger_disabled() -> Iterator[None]:
    """No message from Ultralytics' logger in the block (e.g. the ``yolo`` help text its argument check prints)."""
    disabled, LOGGER.disabled = LOGGER.disabled, True
    try:
        yield
    finally:
        LOGGER.disabled = disabled


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Only errors from Ultralytics' logger, and no stdout, in the block (exports and validation print a lot)."""
    level = LOGGER.level
    LOGGER.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        LOGGER.setLevel(level)


def dataset_error_cause(error: BaseException) -> BaseException | None:
    """The dataset problem inside the trainer's ``RuntimeError("Dataset 'x' error ❌ ...")``, else None."""
    if isinstance(error, RuntimeError) and str(error).startswith(DATASET_ERROR_PREFIX):
        return error.__cause__
    return None
