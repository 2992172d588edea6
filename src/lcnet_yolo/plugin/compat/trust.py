"""The trust boundaries Ultralytics could cross on its own: datasets it would download, and ``.pt`` files it reads.

Ultralytics' trainer, validator and exporter call ``check_det_dataset`` / ``check_cls_dataset`` (imported into each
module) with ``autodownload=True``: a missing dataset's URL is fetched, or its ``download:`` field run as a shell
command or Python. ``lcnet_yolo.data.trust`` refuses such data first; :func:`no_dataset_downloads` is the net (URLs
and archives: :func:`_refuse_remote_dataset`).

For ``.pt`` files (lcnet_yolo.io.safe_load, lcnet_yolo.io.checkpoint_pickle), where Ultralytics reads a checkpoint
on its own, and the classes a checkpoint of its may name:

``tasks.torch_safe_load``      every ``load_checkpoint`` (``YOLO(x.pt)``, the trainer's resume and ``pretrained=``,
                               the validator's ``best.pt`` through AutoBackend, a distillation teacher) reads the
                               file through it; :func:`checkpoint_reader` puts ours in its place for a block.
``torch_utils.torch_load``     ``strip_optimizer`` re-reads ``last.pt``/``best.pt`` after training with
                               ``weights_only=False``; replaced for the block as well.
``tasks`` model classes,       what a pickled checkpoint may name (:func:`task_model`, :func:`ultralytics_layer`).
``ultralytics.nn.modules``
``IterableSimpleNamespace``    the namespace class of training arguments a model may carry.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ultralytics.data import utils as _data_utils
from ultralytics.engine import exporter as _exporter
from ultralytics.engine import trainer as _trainer
from ultralytics.engine import validator as _validator
from ultralytics.utils import ROOT as _ULTRALYTICS_ROOT
from ultralytics.utils import IterableSimpleNamespace
from ultralytics.utils import torch_utils as _torch_utils
from ultralytics.utils.downloads import attempt_download_asset

from lcnet_yolo.plugin.compat.core import tasks

__all__ = [
    "DATASET_CHECK_MODULES",
    "PACKAGED_DATASETS_DIR",
    "IterableSimpleNamespace",
    "attempt_download_asset",
    "checkpoint_reader",
    "no_dataset_downloads",
    "task_model",
    "ultralytics_layer",
]

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


_READER_LOCK = threading.RLock()


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
        obj = getattr(sys.modules.get(module) or importlib.import_module(module), name, None)
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
