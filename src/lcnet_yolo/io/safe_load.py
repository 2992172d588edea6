"""Ultralytics ``.pt`` checkpoints read without running code from them.

:func:`safe_load` reads a checkpoint with ``torch.load(weights_only=True)``: only the tensors, plain containers and
the allow-listed model classes of torch, Ultralytics and lcnet-yolo are rebuilt; a pickle that names anything else
(``os.system``, ``builtins.eval``, ...) is refused before any of it runs, and so is a model YAML inside that would
make Ultralytics run code (:func:`lcnet_yolo.io.model_yaml.check_model_yaml`). The allow-list is scoped to each
call (:func:`scoped_safe_globals`); :func:`restricted_loading` runs a block in Ultralytics' restricted mode.
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

from lcnet_yolo.io.errors import WeightsError, existing_file, file_error, short_reason
from lcnet_yolo.io.model_yaml import check_model_yaml
from lcnet_yolo.nn.registry import module_classes
from lcnet_yolo.plugin.compat import safe_load_mode, torch_safe_load

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
    """Ultralytics' restricted mode (as ``ULTRALYTICS_SAFE_LOAD=1``) for the block, with only our classes added.

    Every ``.pt`` Ultralytics opens inside (a checkpoint to resume, ``pretrained=``, ``best.pt`` after training)
    is read with ``torch.load(weights_only=True)``, and model YAMLs are built without ``eval``. The allow-list is
    scoped by :func:`scoped_safe_globals` and the mode switched back afterwards.
    """
    with scoped_safe_globals(module_classes()), safe_load_mode():
        yield


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
    """Load an Ultralytics ``.pt`` checkpoint without executing code from it.

    The file is read with ``torch.load(weights_only=True)`` through Ultralytics' restricted loader, with an
    allow-list scoped to this call (:func:`scoped_safe_globals`: our PP-LCNet classes plus the Ultralytics model
    classes the file names), whatever earlier loads in the process allowed. The model YAML each network carries
    is then checked with :func:`check_model_yaml`, since fine-tuning rebuilds the model from it. Returns the
    checkpoint dict (``model``/``ema``, ``train_args``, ...).

    Raises:
        WeightsError: the file is missing, empty, truncated or corrupted, its pickle references anything
            outside the allow-list, or its model YAML would make Ultralytics run code (nothing from it has run).
    """
    path = existing_file(path)
    if path.suffix != ".pt":
        raise file_error(path, f"expected an Ultralytics checkpoint ending in .pt, not {path.suffix or 'no suffix'!r}")
    _check_zip_crcs(path)
    with scoped_safe_globals(module_classes()):
        try:
            ckpt, _ = torch_safe_load(str(path), safe_only=True)
        except Exception as error:  # damaged files surface as a dozen exception types; all get one message
            raise _load_error(path, error) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("ema") or ckpt.get("model"), nn.Module):
        raise file_error(path, "not an Ultralytics checkpoint (no 'model' or 'ema' network in it)")
    check_checkpoint_yamls(path, ckpt)
    return ckpt


def _load_error(path: Path, error: Exception) -> WeightsError:
    """The one-line error for a ``.pt`` that Ultralytics' restricted loader could not load (call inside the scope)."""
    cause = error.__cause__
    if isinstance(error, TypeError) and isinstance(cause, pickle.UnpicklingError):
        refused = sorted(set(_refused_globals(path) or re.findall(r"GLOBAL ([\w.]+)", str(cause))))
        if refused:
            return file_error(
                path,
                f"refused to load: its pickle references {', '.join(refused)}, which is not an allowed model class "
                "and could run code. Load it with torch.load(weights_only=False) only if you trust where it came from.",
            )
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(cause))
        reason = detail[1].strip() if detail else short_reason(cause)
        what = f"its pickle is not a plain weights file ({reason}); damaged, or could run code"
        return file_error(path, f"refused to load: {what}")
    if isinstance(error, TypeError) and cause is not None:  # Ultralytics' "empty, truncated or corrupted" diagnosis
        error = cause
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
