"""What a ``.pt`` checkpoint's pickle may name, decided by reading the pickle without running any of it.

:func:`checked_globals` walks the ``data.pkl`` of a ``torch.save`` archive with an unpickler whose ``find_class``
only records the name and hands back an inert stand-in, so nothing of the file is imported, called or built. The
names it records are checked against our own allow-list (:func:`allowed_global`), not Ultralytics' (which admits
classes whose construction loads, downloads or evaluates something: ``DistillationModel``, ``TorchVision``,
``WorldModel``, ``YOLOEModel``, ``RTDETRDetectionModel``, ``Ensemble``, CLIP, the loss and assigner classes and
``builtins.getattr``). Model classes may only be *created* (``NEWOBJ``, no constructor runs), never *called*
(``REDUCE``); only the plain-value rebuilders of :data:`CALLABLE` may be called. The result is the exact list of
globals that ``torch.load(weights_only=True)`` then gets for this one file.
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import importlib
import io
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lcnet_yolo.io.errors import WeightsError, file_error, short_reason
from lcnet_yolo.nn.registry import module_classes
from lcnet_yolo.plugin.compat import IterableSimpleNamespace, task_model, ultralytics_layer

__all__ = ["CALLABLE", "TASK_MODELS", "allowed_global", "checked_globals"]

# Ultralytics' model classes a checkpoint may hold: they only assemble layers. Not WorldModel/YOLOE* (they fetch a
# text model), RTDETRDetectionModel, Ensemble, or DistillationModel (its constructor loads a teacher, pickle and all).
TASK_MODELS = ("DetectionModel", "ClassificationModel", "SegmentationModel", "PoseModel", "OBBModel")
# Ultralytics layer classes refused although they are in ultralytics.nn.modules: TorchVision downloads weights.
REFUSED_LAYERS = frozenset({"TorchVision"})
MAX_PICKLE_BYTES = 64 << 20  # the pickle of a YOLOv8x checkpoint is under 1 MB; tensors live outside it


def _numpy_scalar():
    return np.float64(0).__reduce__()[0]


def _plain_values() -> dict[str, object]:
    """Name -> object for the non-layer globals a checkpoint holds: tensor rebuilders, containers, numbers."""
    rebuild = torch._utils
    values: dict[str, object] = {
        "collections.OrderedDict": __import__("collections").OrderedDict,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
        "builtins.slice": slice,
        "builtins.complex": complex,
        "torch.Size": torch.Size,
        "torch.device": torch.device,
        "torch._utils._rebuild_tensor": rebuild._rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": rebuild._rebuild_tensor_v2,
        "torch._utils._rebuild_parameter": rebuild._rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": rebuild._rebuild_parameter_with_state,
        "numpy.core.multiarray.scalar": _numpy_scalar(),
        "numpy._core.multiarray.scalar": _numpy_scalar(),
        "numpy.dtype": np.dtype,
        "_codecs.encode": __import__("_codecs").encode,
        "ultralytics.utils.IterableSimpleNamespace": IterableSimpleNamespace,
        "ultralytics.yolo.utils.IterableSimpleNamespace": IterableSimpleNamespace,
        "pathlib.PosixPath": Path("").__class__,
        "pathlib.WindowsPath": Path("").__class__,
    }
    for attr in dir(torch):
        obj = getattr(torch, attr, None)
        if isinstance(obj, torch.dtype) or (attr.endswith("Storage") and isinstance(obj, type)):
            values[f"torch.{attr}"] = obj
    return values


# Globals that the pickle may call (REDUCE): they rebuild tensors and plain values and run nothing of the file.
CALLABLE = frozenset(
    {
        "collections.OrderedDict",
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.complex",
        "torch.Size",
        "torch.device",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.dtype",
        "_codecs.encode",
        "ultralytics.utils.IterableSimpleNamespace",
        "ultralytics.yolo.utils.IterableSimpleNamespace",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
    }
)
_VALUES: dict[str, object] | None = None


def _layer_class(module: str, attr: str) -> type | None:
    """An ``nn.Module`` class defined in a ``torch.nn`` or Ultralytics layer module (imported from those only)."""
    if not attr.isidentifier() or attr in REFUSED_LAYERS:
        return None
    if module.startswith("ultralytics.nn.modules"):
        return ultralytics_layer(module, attr)
    if not module.startswith("torch.nn.modules."):
        return None
    try:
        obj = getattr(sys.modules.get(module) or importlib.import_module(module), attr, None)
    except ImportError:
        return None
    if isinstance(obj, type) and issubclass(obj, nn.Module) and obj.__module__ == module:
        return obj
    return None


def allowed_global(name: str) -> object | None:
    """The object a checkpoint's pickle may reference by ``name`` (``module.attr``), or None when it is refused.

    Allowed: lcnet-yolo's layers, ``torch.nn`` and Ultralytics layer classes (not ``TorchVision``), the task
    models of :data:`TASK_MODELS`, tensor rebuilders, storages, dtypes and plain containers (:data:`CALLABLE`).
    """
    global _VALUES
    if _VALUES is None:
        _VALUES = _plain_values()
    if name in _VALUES:
        return _VALUES[name]
    module, _, attr = name.rpartition(".")
    if module.startswith("lcnet_yolo."):
        return next((c for c in module_classes() if c.__module__ == module and c.__qualname__ == attr), None)
    if module == "ultralytics.nn.tasks":
        return task_model(attr) if attr in TASK_MODELS else None
    return _layer_class(module, attr)


class _Walk(pickle._Unpickler):
    """An unpickler that builds nothing: every global is an inert stand-in that records how the pickle uses it.

    The pure-Python unpickler of the standard library: its memo is a dict, so a damaged ``LONG_BINPUT`` index
    cannot make it allocate gigabytes (the C unpickler grows an array to the index), and it is as fast here.
    """

    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data))
        self.names: list[str] = []
        self.called: set[str] = set()
        self.stubs: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> type:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names of protocol-2 pickles, as torch maps them
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{name}"
        if full not in self.stubs:
            self.names.append(full)
            self.stubs[full] = _StubMeta(full, (_Stub,), {"walk": self, "full": full})
        return self.stubs[full]

    def persistent_load(self, pid: object) -> None:
        return None  # a tensor's storage: read later by torch from the archive, never by this walk


class _StubMeta(type):
    def __call__(cls, *args, **kwargs):  # REDUCE / INST / OBJ: the pickle calls this global
        cls.walk.called.add(cls.full)
        return object.__new__(cls)


class _Stub:
    walk: _Walk
    full: str

    def __new__(cls, *args, **kwargs):  # NEWOBJ: created without calling it
        return object.__new__(cls)

    def __call__(self, *args, **kwargs):  # REDUCE on a value built by the pickle
        self.walk.called.add(f"the result of {self.full}")
        return self

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


def _pickle_bytes(path: Path) -> bytes:
    """The ``data.pkl`` of a ``torch.save`` zip archive; a bare (non-zip) pickle is refused."""
    try:
        if not zipfile.is_zipfile(path):
            data = path.read_bytes()[:MAX_PICKLE_BYTES]
            if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:  # a pickle's PROTO opcode
                walk = _Walk(data)
                with contextlib.suppress(Exception):
                    walk.load()
                named = f" naming {', '.join(sorted(walk.names))}" if walk.names else ""
                raise file_error(
                    path, f"refused to load: a bare pickle{named}, not a torch.save archive; it could run code"
                )
            raise file_error(
                path, "not a readable checkpoint: the file is truncated or corrupted (not a torch.save archive)"
            )
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
            if len(names) != 1:
                raise file_error(path, "not a readable checkpoint: no single data.pkl inside the archive")
            if archive.getinfo(names[0]).file_size > MAX_PICKLE_BYTES:
                raise file_error(path, "refused to load: its pickle is larger than any checkpoint's")
            return archive.read(names[0])
    except WeightsError:
        raise
    except Exception as error:  # BadZipFile, OSError, zlib.error, ...
        raise file_error(
            path, f"not a readable checkpoint: the file is truncated or corrupted ({short_reason(error)})"
        ) from None


def checked_globals(path: Path) -> list[tuple[object, str]]:
    """The ``(object, name)`` allow-list entries for exactly the globals ``path``'s pickle names, after checking
    each against :func:`allowed_global` and that no model class is called. Nothing of the file runs.

    Raises:
        WeightsError: one line naming the file and the refused globals or calls.
    """
    walk = _Walk(_pickle_bytes(path))
    try:
        walk.load()
    except Exception as error:  # truncated, malformed, or a pickle that calls a plain value
        refused = sorted(n for n in walk.names if allowed_global(n) is None)
        if refused:
            raise _refusal(path, refused) from None
        raise file_error(path, f"refused to load: its pickle is malformed ({short_reason(error)})") from None
    refused = sorted(n for n in walk.names if allowed_global(n) is None)
    if refused:
        raise _refusal(path, refused)
    calls = sorted(n for n in walk.called if n not in CALLABLE)
    if calls:
        raise file_error(
            path,
            f"refused to load: its pickle calls {', '.join(calls)} to build it (a constructor or call that could "
            "load, download or run code); checkpoints only create model classes without calling them",
        )
    entries = [(allowed_global(n), n) for n in walk.names]
    if "numpy.dtype" in walk.names:  # BUILD sets the state of the dtype instance, whose class is never named
        kinds = (np.float64, np.float32, np.float16, np.int64, np.int32, np.int8, np.uint8, np.bool_)
        entries += [(type(np.dtype(kind)), f"numpy.dtypes.{type(np.dtype(kind)).__name__}") for kind in kinds]
    return entries


def _refusal(path: Path, refused: list[str]) -> WeightsError:
    return file_error(
        path,
        f"refused to load: its pickle references {', '.join(refused)}, which is not an allowed model class "
        "and could run code. Load it with torch.load(weights_only=False) only if you trust where it came from.",
    )
