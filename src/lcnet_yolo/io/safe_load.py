"""The trust boundary for ``.pt`` checkpoints: every one is read here, the same way, whoever asks.

:func:`safe_load` first walks the file's pickle without running it and checks every global it names against our
allow-list (:func:`lcnet_yolo.io.checkpoint_pickle.checked_globals`: our layers, torch and Ultralytics layers, the
plain task models, tensor rebuilders; model classes created, never called), then reads it with
``torch.load(weights_only=True)`` allowed exactly those globals for this call (:func:`scoped_safe_globals`), then
checks the model YAMLs inside (:func:`lcnet_yolo.io.model_yaml.check_model_yaml`) and the types of ``train_args``
(:func:`lcnet_yolo.io.train_args.check_train_args`). :func:`restricted_loading` routes every ``.pt`` Ultralytics
reads on its own within a block (``YOLO(x.pt)``, resume, ``pretrained=``, ``best.pt`` after training, a
distillation teacher) through :func:`safe_load`, with only :func:`~lcnet_yolo.io.train_args.usable_train_args`.
"""

from __future__ import annotations

import contextlib
import pickle
import re
import threading
import zipfile
from pathlib import Path

import torch
from torch import nn

from lcnet_yolo.io.checkpoint_pickle import checked_globals
from lcnet_yolo.io.errors import WeightsError, existing_file, file_error, short_reason
from lcnet_yolo.io.model_yaml import check_model_yaml
from lcnet_yolo.io.train_args import check_train_args, usable_train_args
from lcnet_yolo.nn.registry import module_classes
from lcnet_yolo.plugin.compat import attempt_download_asset, checkpoint_reader, safe_load_mode

__all__ = ["allow_our_classes", "check_checkpoint_yamls", "restricted_loading", "safe_load", "scoped_safe_globals"]

_SAFE_LOAD_LOCK = threading.RLock()  # guards torch's process-wide allow-list and Ultralytics' SAFE_LOAD switch


def allow_our_classes() -> None:
    """Add our model classes to torch's ``weights_only`` allow-list for the whole process (idempotent).

    Only for code that calls Ultralytics' own restricted mode (``ULTRALYTICS_SAFE_LOAD=1`` or
    ``torch_safe_load(path, safe_only=True)``) directly: after this it accepts checkpoints of models with a
    PP-LCNet backbone. lcnet-yolo's loaders do not need it: they allow our classes per call, in
    :func:`scoped_safe_globals`, and put the list back as they found it.
    """
    known = set(map(id, torch.serialization.get_safe_globals()))
    missing = [cls for cls in module_classes() if id(cls) not in known]
    if missing:
        torch.serialization.add_safe_globals(missing)


@contextlib.contextmanager
def scoped_safe_globals(entries: list | tuple = ()):
    """Within the block, torch's ``weights_only`` allow-list holds exactly ``entries``; afterwards it is restored.

    Whatever an earlier load added to the process-wide list (Ultralytics registers the model classes of each
    checkpoint it safe-loads and never removes them) is not allowed inside the block, and what is added inside
    (by ``entries`` or by Ultralytics' loader) is gone after it. Blocks are serialised by a process-wide lock;
    a ``torch.load`` in another thread that does not use this lock may see the scoped list while it runs.
    """
    serialization = torch.serialization
    with _SAFE_LOAD_LOCK:
        saved = serialization.get_safe_globals()
        serialization.clear_safe_globals()
        try:
            if entries:
                serialization.add_safe_globals(list(entries))
            yield
        finally:
            serialization.clear_safe_globals()
            if saved:
                serialization.add_safe_globals(saved)


@contextlib.contextmanager
def restricted_loading():
    """Every ``.pt`` Ultralytics reads in the block goes through :func:`safe_load` (our boundary, not its loader).

    ``YOLO(x.pt)``, a checkpoint to resume, ``pretrained=``, ``best.pt`` validated after training, a distillation
    teacher, and the re-reads of ``last.pt``/``best.pt`` after training: each is walked and checked before any of
    it is built, and Ultralytics sees only :func:`~lcnet_yolo.io.train_args.usable_train_args`. Model YAMLs are built
    without ``eval`` (Ultralytics' restricted mode). Everything is put back afterwards; blocks nest.
    """
    with scoped_safe_globals(module_classes()), safe_load_mode(), checkpoint_reader(_ultralytics_read, _read_file):
        yield


def _ultralytics_read(weight) -> tuple[dict, str]:
    """What Ultralytics' ``torch_safe_load`` returns, read through the boundary: ``(checkpoint, file)``."""
    file = Path(str(weight))
    if not file.exists() and file.parent == Path(".") and file.suffix == ".pt":
        file = Path(attempt_download_asset(str(weight)))  # an official asset the user named, as Ultralytics does
    ckpt = safe_load(file)
    ckpt["train_args"] = usable_train_args(file, ckpt.get("train_args"))
    return ckpt, str(file)


def _read_file(f, *args, **kwargs):
    """``torch.load`` of a weights file Ultralytics wrote itself (``last.pt``, ``best.pt``), through the same walk."""
    path = Path(f) if isinstance(f, str | Path) else None
    if path is None:
        raise WeightsError(f"refused to read {type(f).__name__} as a checkpoint: only files are read")
    kwargs.pop("weights_only", None)
    kwargs.setdefault("map_location", "cpu")
    with scoped_safe_globals(checked_globals(path)):
        return torch.load(path, *args, weights_only=True, **kwargs)


def _allowed_names() -> set[str]:
    names = set()
    for entry in torch.serialization.get_safe_globals():
        if isinstance(entry, tuple):
            names.add(entry[1])
        else:
            names.add(f"{getattr(entry, '__module__', '')}.{getattr(entry, '__qualname__', '')}")
    return names


def _refused_globals(path: Path) -> list[str]:
    """Globals the checkpoint's pickle names that are not on the allow-list (best effort, for the message)."""
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a torch zip archive (e.g. a bare pickle): the loader's own error says what it refused
        return []
    allowed = _allowed_names()
    return sorted(name for name in needed if name not in allowed)


def safe_load(path: str | Path) -> dict:
    """Load an Ultralytics ``.pt`` checkpoint without executing code from it: the one door for every ``.pt``.

    1. the pickle is walked without running it and every global it names checked against our allow-list
       (:func:`~lcnet_yolo.io.checkpoint_pickle.checked_globals`); a bare (non-zip) pickle is refused;
    2. ``torch.load(weights_only=True)`` reads it allowed exactly those globals, for this call only
       (:func:`scoped_safe_globals`), whatever earlier loads in the process allowed;
    3. the model YAML each network carries passes :func:`check_model_yaml` (fine-tuning rebuilds from it) and
       ``train_args`` passes :func:`~lcnet_yolo.io.train_args.check_train_args`.

    Returns the checkpoint dict (``model``/``ema``, ``train_args``, ...) as stored.

    Raises:
        WeightsError: the file is missing, empty, truncated or corrupted, its pickle names anything outside the
            allow-list or calls a model class, its model YAML would make Ultralytics run code, or a field of
            ``train_args`` has the wrong type (one line naming the file and the field; nothing from it has run).
    """
    path = existing_file(path)
    if path.suffix != ".pt":
        raise file_error(path, f"expected an Ultralytics checkpoint ending in .pt, not {path.suffix or 'no suffix'!r}")
    _check_zip_crcs(path)
    entries = checked_globals(path)
    with scoped_safe_globals(entries):
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # damaged files surface as a dozen exception types; all get one message
            raise _load_error(path, error) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("ema") or ckpt.get("model"), nn.Module):
        raise file_error(path, "not an Ultralytics checkpoint (no 'model' or 'ema' network in it)")
    check_checkpoint_yamls(path, ckpt)
    check_train_args(path, ckpt.get("train_args"))
    return ckpt


def _load_error(path: Path, error: Exception) -> WeightsError:
    """The one-line error for a ``.pt`` that ``torch.load(weights_only=True)`` could not load (call inside the scope).

    The walk has already refused any global off the allow-list, so what is left is a pickle torch's own
    weights-only unpickler rejects (an opcode or call it does not allow) or a damaged archive."""
    if isinstance(error, pickle.UnpicklingError):
        refused = sorted(set(_refused_globals(path) or re.findall(r"GLOBAL ([\w.]+)", str(error))))
        if refused:
            return file_error(
                path,
                f"refused to load: its pickle references {', '.join(refused)}, which is not an allowed model class "
                "and could run code. Load it with torch.load(weights_only=False) only if you trust where it came from.",
            )
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(error))
        reason = detail[1].strip() if detail else short_reason(error)
        return file_error(
            path, f"refused to load: its pickle is not a plain weights file ({reason}); damaged, or could run code"
        )
    return file_error(path, f"not a readable checkpoint: the file is truncated or corrupted ({short_reason(error)})")


def check_checkpoint_yamls(path: Path, ckpt: dict) -> None:
    """Refuse a checkpoint whose networks carry a model YAML that Ultralytics could not rebuild without running code."""
    for key in ("model", "ema"):
        network = ckpt.get(key)
        if not isinstance(network, nn.Module):
            continue
        for module in network.modules():
            cfg = module.__dict__.get("yaml")  # plain attribute of Ultralytics models; never a submodule
            if cfg is None:
                continue
            try:
                check_model_yaml(cfg)
            except ValueError as error:
                raise file_error(path, f"refused: the model YAML of its '{key}' network {error}") from None


def _check_zip_crcs(path: Path) -> None:
    """Compare every member of a ``torch.save`` archive with its CRC-32; ``torch.load`` skips this for tensors."""
    try:
        if not zipfile.is_zipfile(path):
            return  # a bare pickle (legacy format, or not a checkpoint at all): the loader reports it
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as error:  # BadZipFile, OSError, EOFError, struct.error, UnicodeDecodeError, ...
        raise file_error(
            path, f"not a readable checkpoint: the file is truncated or corrupted ({short_reason(error)})"
        ) from None
    if bad is not None:
        raise file_error(path, f"corrupted: the checksum of {bad!r} inside the archive does not match")
