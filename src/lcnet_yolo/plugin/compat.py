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
``ARGV`` of ``engine.model``               ``Model.predict`` takes a program named ``...yolo`` for its own CLI
(:func:`not_ultralytics_cli`)              and returns None; predict/track run under a neutral ``ARGV[0]``
``cfg`` helpers, ``LetterBox``,            argument parsing and checking as the ``yolo`` command does, the
``data.utils``, ``torch_utils``            predictor's letterbox, dataset paths and formats, FLOPs counts
``nn.modules`` (:func:`is_ultralytics_layer`)
                                           model YAMLs from files may name Ultralytics' layers, not its models
:class:`FusableConv`, :class:`ClassifyHead`
                                           our layers subclass ``Conv``/``Classify`` without their ``__init__``
ONNX node names (:func:`detect_decoding_nodes`)
                                           Detect's decoding stays float in int8 models; found by module path
export files (:func:`write_export_metadata`, :func:`read_export_metadata`)
                                           ``metadata.yaml`` written as the exporter writes it; metadata of any
                                           export read as AutoBackend reads it
export tables (:func:`export_format_names`, :func:`export_suffixes`, :func:`export_format_aliases`)
                                           formats, path endings and ``format=`` aliases of the exporter
``results.csv`` (:data:`RESULTS_CSV_COLUMNS`)
                                           the columns of a training log that hold validation mAP
loss batch (:func:`detection_batch`, :func:`detection_loss`)
                                           training throughput runs the detection loss on a made-up batch
trainer (:func:`validate_on_epochs`, :func:`save_checkpoints_through`)
                                           ``args.val`` read after ``on_train_epoch_end``; checkpoints written by
                                           ``last``/``best``'s ``write_bytes``
dataset checks of trainer, validator,      :func:`no_dataset_downloads`: no dataset is downloaded, unpacked or
exporter (``check_det_dataset``)           its ``download:`` script run, whatever names it (URLs and archives:
                                           :func:`_refuse_remote_dataset`)
``Results``, ``get_save_dir``, metrics    sliced prediction: one result per picture (:func:`detection_results`),
                                           :func:`model_stride`, :func:`predict_save_dir`, windows predicted by
                                           :func:`predict_in_python` (``Model.predict``'s ``ARGV`` test); its
                                           benchmark matches and scores as ``val`` does
                                           (:func:`match_detections`, :func:`box_iou`, :func:`ap_per_class`)
``tasks.torch_safe_load``,                 where Ultralytics reads a ``.pt`` on its own (``load_checkpoint``) and
``torch_utils.torch_load``                 re-reads its weights after training (``strip_optimizer``):
(:func:`checkpoint_reader`)                ours is put in their place during our runs (the trust boundary)
``tasks`` model classes, ``nn.modules``    what a checkpoint's pickle may name (:func:`task_model`,
(:func:`ultralytics_layer`)                :func:`ultralytics_layer`), ``IterableSimpleNamespace``,
                                           ``attempt_download_asset`` (official asset names the user gives)
=========================================  ======================================================================
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

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
    "not_ultralytics_cli",
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


# --------------------------------------------------------------------------------------------------------------
# Layers, export files, formats and training internals that other modules of ours rely on (each pinned in
# tests/test_compat.py). Imported where used, so that this block stands on its own.

ULTRALYTICS_LAYERS_PACKAGE = "ultralytics.nn.modules"  # where Ultralytics' YAML layers (Conv, C2f, Detect ...) live
DETECT_CONV_BRANCHES = ("cv2", "cv3", "one2one_cv2", "one2one_cv3")  # Detect's box/class convs (one2one_: end2end)
LEGACY_SUFFIXES = {".mlmodel": "coreml"}  # what AutoBackend still recognises beside the exporter's table
# Our name -> the column of a detection training's results.csv (``DetMetrics.keys``) that holds it.
RESULTS_CSV_COLUMNS = {"map50": "metrics/mAP50(B)", "map50_95": "metrics/mAP50-95(B)"}


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


def detect_decoding_nodes(node_names: Iterable[str]) -> list[str]:
    """Of the node names of an Ultralytics ONNX export (``/model.<layer>/<path>/<op>``, named after the modules), those
    of Detect's box decoding: every node of the last layer but its conv branches (:data:`DETECT_CONV_BRANCHES`)."""
    names = list(node_names)
    heads = [n for n in names if n.startswith("/model.")]
    if not heads:
        return []
    last = max(int(name.split("/")[1].split(".")[1]) for name in heads)
    prefix = f"/model.{last}/"
    branches = tuple(f"{prefix}{b}" for b in DETECT_CONV_BRANCHES)
    return [n for n in names if n.startswith(prefix) and not n.startswith(branches)]


def write_export_metadata(folder: str | Path, metadata: Mapping[str, object]) -> Path:
    """Write ``metadata`` as the ``metadata.yaml`` of an export folder, with Ultralytics' writer (``YAML.save``, as
    its OpenVINO exporter does); ``YOLO(folder)`` reads it back. Returns the file."""
    path = Path(folder) / "metadata.yaml"
    YAML.save(path, dict(metadata))
    return path


def read_export_metadata(path: str | Path) -> dict:
    """The metadata Ultralytics recorded in an exported model (file or folder), read without loading the model
    (``BaseBackend.read_metadata``: ONNX properties, TorchScript's ``config.txt``, ``metadata.yaml`` ...); values as
    stored (often strings); ``{}`` where there is none."""
    from ultralytics.nn.backends.base import BaseBackend

    return dict(BaseBackend.read_metadata(path) or {})


def export_format_names() -> tuple[str, ...]:
    """The ``format=`` values of Ultralytics' exporter, in its order (``export_formats()``, without PyTorch)."""
    from ultralytics.engine.exporter import export_formats

    return tuple(name for name in export_formats()["Argument"] if name != "-")


def export_suffixes() -> dict[str, str]:
    """Path ending -> export format, as Ultralytics' AutoBackend recognises exported models (the exporter's suffix
    table, plus :data:`LEGACY_SUFFIXES`); ``.pt`` is not an export."""
    from ultralytics.engine.exporter import export_formats

    table = export_formats()
    pairs = dict(zip(table["Suffix"], table["Argument"], strict=True))
    return {suffix: fmt for suffix, fmt in {**pairs, **LEGACY_SUFFIXES}.items() if fmt != "-"}


# ``format=`` aliases that ``Exporter.__call__`` maps to a format name before it checks the name. They are written
# there as ``if fmt in {...}`` statements, not as a table, so they are listed here and the pin reads that code.
EXPORT_FORMAT_ALIASES: dict[str, str] = {
    **dict.fromkeys(("tensorrt", "trt"), "engine"),
    **dict.fromkeys(("mlmodel", "mlpackage", "mlprogram", "apple", "ios"), "coreml"),
    **dict.fromkeys(("huawei", "cann", "om"), "ascend"),
    **dict.fromkeys(("vitis", "vitisai", "versal"), "xilinx"),
    **dict.fromkeys(("tflite", "tfjs"), "litert"),
}


def export_format_aliases() -> dict[str, str]:
    """Alias -> the format name Ultralytics' exporter uses for it (``tflite`` -> ``litert``, ``trt`` -> ``engine``)."""
    return dict(EXPORT_FORMAT_ALIASES)


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


__all__ += [  # the names of this block
    "EXPORT_FORMAT_ALIASES",
    "RESULTS_CSV_COLUMNS",
    "ClassifyHead",
    "FusableConv",
    "detect_decoding_nodes",
    "detection_batch",
    "detection_loss",
    "export_format_aliases",
    "export_format_names",
    "export_suffixes",
    "is_ultralytics_layer",
    "read_export_metadata",
    "save_checkpoints_through",
    "validate_on_epochs",
    "write_export_metadata",
]


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


# --- Multi-GPU (DDP) launch: Ultralytics' launcher (ultralytics.utils.dist) and its default callbacks ---

from ultralytics.utils.callbacks import base as _callbacks_base  # noqa: E402  (block kept apart for merges)
from ultralytics.utils.torch_utils import init_seeds, unset_deterministic  # noqa: E402

__doc__ += """
Multi-GPU (DDP) launch, relied on by :mod:`lcnet_yolo.plugin.ddp` and the trainers:

* ``callbacks.base.default_callbacks`` (:func:`add_default_callback`): every ``YOLO`` model copies these; the
  launcher pickles the trainer's callbacks (cloudpickle: a module-level function by reference) for its ranks, so a
  callback of ours makes each rank import ``lcnet_yolo`` before it builds the model.
* ``generate_ddp_command`` removes ``trainer.save_dir`` unless ``trainer.resume`` (:func:`ddp_launch_keeps_save_dir`);
  rank 0 recreates it from ``args.save_dir``.
* ``tasks.SAFE_LOAD`` read by :func:`safe_load_active` (the restricted mode :func:`safe_load_mode` switches).
* ``BaseTrainer.ddp`` (true in the launching process only) and the ``RANK`` environment of a rank.
* ``torch_utils.init_seeds(seed, deterministic)`` / ``unset_deterministic`` (:func:`deterministic_algorithms`): the
  deterministic mode training runs in (``deterministic=True``, Ultralytics' default), for the GPU benchmark.
"""


def add_default_callback(event: str, callback: Callable) -> None:
    """Add ``callback`` to Ultralytics' default callbacks for ``event`` (each ``YOLO`` made afterwards has it).
    Idempotent."""
    callbacks = _callbacks_base.default_callbacks[event]
    if callback not in callbacks:
        callbacks.append(callback)


def safe_load_active() -> bool:
    """Whether Ultralytics' restricted loading (:func:`safe_load_mode`, ``ULTRALYTICS_SAFE_LOAD=1``) is on."""
    return bool(tasks.SAFE_LOAD)


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


TRAINER_HOOKS["train"] = ()  # overridden to hand the launch state to DDP ranks (lcnet_yolo.plugin.ddp)


@contextlib.contextmanager
def deterministic_algorithms(on: bool) -> Iterator[None]:
    """Within the block, torch runs as Ultralytics' trainer sets it for ``deterministic=on`` (seed 0); afterwards
    deterministic mode is off, as the trainer leaves it."""
    init_seeds(0, deterministic=on)
    try:
        yield
    finally:
        unset_deterministic()


# ------------------------------------------------------------------------------------ datasets are never downloaded
# Ultralytics' trainer, validator and exporter call ``check_det_dataset`` / ``check_cls_dataset`` (imported into each
# module) with ``autodownload=True``: a missing dataset's URL is fetched, or its ``download:`` field run as a shell
# command or Python. ``lcnet_yolo.data.trust`` refuses such data first; :func:`no_dataset_downloads` is the net.
from ultralytics.data import utils as _data_utils  # noqa: E402
from ultralytics.engine import exporter as _exporter  # noqa: E402
from ultralytics.engine import trainer as _trainer  # noqa: E402
from ultralytics.engine import validator as _validator  # noqa: E402
from ultralytics.utils import ROOT as _ULTRALYTICS_ROOT  # noqa: E402

PACKAGED_DATASETS_DIR = _ULTRALYTICS_ROOT / "cfg" / "datasets"  # coco8.yaml, VOC.yaml, ...: found by bare name
DATASET_CHECK_MODULES = (_trainer, _validator, _exporter)  # each imports check_det_dataset and check_cls_dataset


def _refuse_remote_dataset(dataset: object) -> None:
    """``FileNotFoundError`` for a dataset Ultralytics would fetch or unpack: a URL or an archive (name or bytes)."""
    import tarfile
    import zipfile

    text, path = str(dataset), Path(str(dataset))
    archive = text.lower().endswith((".zip", ".tar", ".gz", ".tgz", ".xz", ".bz2", ".txz", ".tbz2"))
    with contextlib.suppress(OSError):
        archive = (archive and not path.is_dir()) or (
            path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))
        )
    if "://" in text or archive:
        raise FileNotFoundError(f"{text}: a URL or archive; lcnet-yolo never downloads or unpacks datasets")


@contextlib.contextmanager
def no_dataset_downloads() -> Iterator[None]:
    """In the block, Ultralytics' trainer, validator and exporter check datasets with ``autodownload=False`` (a
    missing dataset is a ``FileNotFoundError``, its ``download:`` never runs), refuse URLs and archives, and never
    fetch a classification dataset that is not a local folder. Restored afterwards; nests."""
    check_det, check_cls = _data_utils.check_det_dataset, _data_utils.check_cls_dataset

    def local_det_dataset(dataset, autodownload: bool = True, split: str = ""):
        _refuse_remote_dataset(dataset)
        return check_det(dataset, autodownload=False, split=split)

    def local_cls_dataset(dataset, split: str = ""):
        _refuse_remote_dataset(dataset)
        if not Path(str(dataset)).is_dir():
            raise FileNotFoundError(f"{dataset}: a classification dataset must be a local folder")
        return check_cls(dataset, split=split)

    saved = [(m, m.check_det_dataset, m.check_cls_dataset) for m in DATASET_CHECK_MODULES]
    try:
        for module, _, _ in saved:
            module.check_det_dataset, module.check_cls_dataset = local_det_dataset, local_cls_dataset
        yield
    finally:
        for module, det, cls in saved:
            module.check_det_dataset, module.check_cls_dataset = det, cls


# ------------------------------------------------------------------------------- sliced prediction and its metrics
# ``Results`` (one result for a whole picture built from the boxes of its windows), the model's stride, the predict
# run folder, and the validator's matching and ``ap_per_class`` (the sliced benchmark's mAP, computed as
# ``yolo val`` computes it).


def detection_results(orig_img: object, path: str, names: dict[int, str], boxes: object) -> object:
    """``ultralytics.engine.results.Results`` of a detector for ``orig_img`` (BGR), ``boxes`` ``(N, 6)`` as
    ``x1, y1, x2, y2, conf, cls`` in its pixels."""
    import torch
    from ultralytics.engine.results import Results

    return Results(orig_img, path=path, names=names, boxes=torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 6))


def model_stride(model: object) -> int:
    """Largest stride of a ``YOLO`` model's network (input sizes must be multiples of it)."""
    stride = getattr(getattr(model, "model", None), "stride", None)  # exported models (a file name) have none
    return int(max(stride)) if stride is not None else 32


def predict_save_dir(overrides: dict[str, object]) -> object:
    """The run folder ``predict`` would save into for these arguments (``runs/detect/predict{N}``, not created)."""
    return get_save_dir(get_cfg(DEFAULT_CFG, {"mode": "predict", "task": "detect", **overrides}))


def match_detections(pred_classes: object, true_classes: object, iou: object) -> object:
    """The detection validator's matching: ``(N, 10)`` correct flags at IoU 0.50:0.95 for predictions sorted by
    confidence, from the ``(M, N)`` IoU of targets and predictions."""
    from ultralytics.models.yolo.detect import DetectionValidator

    return DetectionValidator().match_predictions(pred_classes, true_classes, iou)


def box_iou(boxes1: object, boxes2: object) -> object:
    """Pairwise IoU ``(M, N)`` of xyxy boxes (``ultralytics.utils.metrics.box_iou``)."""
    from ultralytics.utils.metrics import box_iou as _box_iou

    return _box_iou(boxes1, boxes2)


def ap_per_class(tp: object, conf: object, pred_cls: object, target_cls: object) -> object:
    """``ultralytics.utils.metrics.ap_per_class``: its tuple, ``ap`` ``(nc, 10)`` at index 5."""
    from ultralytics.utils.metrics import ap_per_class as _ap_per_class

    return _ap_per_class(tp, conf, pred_cls, target_cls)


def predict_in_python(model: object, source: object, **args: object) -> list:
    """``model.predict(source, **args)`` as called from Python, a list of ``Results``, also inside a command whose
    name ends in ``yolo``: there ``Model.predict`` reads ``ARGV`` as the ``yolo`` command's own run, saves and
    returns nothing."""
    with not_ultralytics_cli():
        return model.predict(source, **args)


# --- Ultralytics' own-CLI detection in Model.predict ------------------------------------------------------------
# ``Model.predict`` (hence ``Model.track``) takes any program whose ``ARGV[0]`` ends in "yolo" or "ultralytics" and
# whose arguments name predict/track for its own ``yolo`` command: it then runs ``predictor.predict_cli`` and returns
# None instead of results. It reads its module's global ``ARGV`` (``sys.argv``) at each call.
NEUTRAL_ARGV0 = "lcnet-yolo-cli"  # a program name Ultralytics does not take for its own


@contextlib.contextmanager
def not_ultralytics_cli() -> Iterator[None]:
    """In the block, ``Model.predict``/``track`` see the program :data:`NEUTRAL_ARGV0` (``sys.argv`` itself is left
    alone), so they return results (a generator with ``stream=True``) also inside the ``lcnet-yolo`` executable."""
    from ultralytics.engine import model as model_module

    argv = model_module.ARGV
    model_module.ARGV = [NEUTRAL_ARGV0]
    try:
        yield
    finally:
        model_module.ARGV = argv


# ---------------------------------------------------------------------------------------------------------------
# The trust boundary for .pt files (lcnet_yolo.io.safe_load, lcnet_yolo.io.checkpoint_pickle): where Ultralytics
# reads a checkpoint on its own, and the classes a checkpoint of its may name.
#
# ``tasks.torch_safe_load``      every ``load_checkpoint`` (``YOLO(x.pt)``, the trainer's resume and ``pretrained=``,
#                                the validator's ``best.pt`` through AutoBackend, a distillation teacher) reads the
#                                file through it; :func:`checkpoint_reader` puts ours in its place for a block.
# ``torch_utils.torch_load``     ``strip_optimizer`` re-reads ``last.pt``/``best.pt`` after training with
#                                ``weights_only=False``; replaced for the block as well.
# ``tasks`` model classes,       what a pickled checkpoint may name (:func:`task_model`, :func:`ultralytics_layer`).
# ``ultralytics.nn.modules``
# ``IterableSimpleNamespace``    the namespace class of training arguments a model may carry.
# ---------------------------------------------------------------------------------------------------------------
import importlib as _importlib  # noqa: E402
import sys as _sys  # noqa: E402
import threading as _threading  # noqa: E402

from ultralytics.utils import IterableSimpleNamespace  # noqa: E402
from ultralytics.utils import torch_utils as _torch_utils  # noqa: E402
from ultralytics.utils.downloads import attempt_download_asset  # noqa: E402

__all__ += ["IterableSimpleNamespace", "attempt_download_asset", "checkpoint_reader", "task_model", "ultralytics_layer"]

_READER_LOCK = _threading.RLock()


def task_model(name: str) -> type | None:
    """The model class ``ultralytics.nn.tasks.<name>`` (None when it has none)."""
    obj = vars(tasks).get(name)
    return obj if isinstance(obj, type) else None


def ultralytics_layer(module: str, name: str) -> type | None:
    """An ``nn.Module`` class defined in ``module``, one of the packages under ``ultralytics.nn.modules``."""
    if not (module == "ultralytics.nn.modules" or module.startswith("ultralytics.nn.modules.")):
        return None
    import torch

    try:
        obj = getattr(_sys.modules.get(module) or _importlib.import_module(module), name, None)
    except ImportError:
        return None
    if isinstance(obj, type) and issubclass(obj, torch.nn.Module) and obj.__module__ == module:
        return obj
    return None


@contextlib.contextmanager
def checkpoint_reader(read_checkpoint: Callable, read_file: Callable) -> Iterator[None]:
    """For the block, Ultralytics reads every checkpoint with ``read_checkpoint(weight) -> (ckpt, file)`` (in place of
    ``tasks.torch_safe_load``) and re-reads its own weights files after training with ``read_file(f, **kwargs)``
    (in place of ``torch_utils.torch_load``); both are put back afterwards. Blocks nest."""
    with _READER_LOCK:
        saved = tasks.torch_safe_load, _torch_utils.torch_load

        def torch_safe_load(weight, safe_only=None):
            return read_checkpoint(weight)

        tasks.torch_safe_load, _torch_utils.torch_load = torch_safe_load, read_file
        try:
            yield
        finally:
            tasks.torch_safe_load, _torch_utils.torch_load = saved
