"""The base of :mod:`lcnet_yolo.plugin.compat`: the pinned version, Ultralytics names we re-export, our layers in
``parse_model``'s namespace (:func:`add_layers`, :func:`layer_named`, :func:`is_ultralytics_layer`,
:class:`FusableConv`, :class:`ClassifyHead`), the model-YAML hook (:func:`hook_check_yaml`), restricted loading
(:func:`safe_load_mode`, :func:`safe_load_active`), PIL without Ultralytics' patch (:func:`plain_image_open`), its
logger (:func:`logger_disabled`, :func:`quiet`) and the trainer's dataset message (:func:`dataset_error_cause`).
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
    "DATASET_ERROR_PREFIX",
    "DEFAULT_CFG",
    "DEFAULT_CFG_DICT",
    "IMG_FORMATS",
    "LOGGER",
    "RANK",
    "TQDM",
    "TRAINER_HOOKS",
    "ULTRALYTICS_LAYERS_PACKAGE",
    "ULTRALYTICS_VERSION",
    "USER_CONFIG_DIR",
    "YAML",
    "BaseTrainer",
    "ClassificationTrainer",
    "Classify",
    "ClassifyHead",
    "Conv",
    "DetectionModel",
    "DetectionTrainer",
    "FusableConv",
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
    "is_ultralytics_layer",
    "layer_named",
    "logger_disabled",
    "merge_equals_args",
    "parse_key_value_pair",
    "plain_image_open",
    "quiet",
    "safe_load_active",
    "safe_load_mode",
    "tasks",
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
    "train": (),  # overridden to hand the launch state to DDP ranks (lcnet_yolo.plugin.ddp)
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


ULTRALYTICS_LAYERS_PACKAGE = "ultralytics.nn.modules"  # where Ultralytics' YAML layers (Conv, C2f, Detect ...) live


def is_ultralytics_layer(layer: object) -> bool:
    """Whether ``layer`` is a layer class of Ultralytics' ``nn.modules`` (not a whole model such as
    ``DetectionModel``, which lives in ``nn.tasks``)."""
    import torch

    module = getattr(layer, "__module__", "") or ""
    return (
        isinstance(layer, type)
        and issubclass(layer, torch.nn.Module)
        and (module == ULTRALYTICS_LAYERS_PACKAGE or module.startswith(ULTRALYTICS_LAYERS_PACKAGE + "."))
    )


class FusableConv(Conv):
    """Base of a conv+BN+act unit that Ultralytics' ``BaseModel.fuse()`` folds like its own ``Conv``: it folds ``bn``
    into ``conv`` for every ``Conv`` instance that has a ``bn`` and switches the instance to ``Conv.forward_fuse``
    (``act(conv(x))``). ``Conv.__init__`` does not run: a subclass brings its own ``conv``, ``bn``, ``act`` and
    ``forward`` (lcnet_yolo.nn.layers.FusableConvBNAct)."""


class ClassifyHead(Classify):
    """Base of a classification head that Ultralytics treats as its ``Classify``: the class flag ``export`` (softmax
    only when exported) and the ``linear`` layer its ``ClassificationModel.reshape_outputs`` resizes to the
    dataset's classes. ``Classify.__init__``'s layers are not built: a subclass builds its own and exposes
    ``linear`` (lcnet_yolo.nn.layers.Classifier)."""

    def __init__(self) -> None:
        import torch

        torch.nn.Module.__init__(self)  # not Classify.__init__: no layers of Classify's own


def safe_load_active() -> bool:
    """Whether Ultralytics' restricted loading (:func:`safe_load_mode`, ``ULTRALYTICS_SAFE_LOAD=1``) is on."""
    return bool(tasks.SAFE_LOAD)
