"""Checkpoints that are safe to load, safe to write and safe to share.

* :func:`safe_load` reads an Ultralytics ``.pt`` checkpoint with ``torch.load(weights_only=True)``: only the
  tensors, plain containers and the allow-listed model classes of torch, Ultralytics and lcnet-yolo are
  rebuilt; a pickle that names anything else (``os.system``, ``builtins.eval``, ...) is refused before any of
  it runs, and so is a model YAML inside that would make Ultralytics run code (:func:`check_model_yaml`).
  :func:`load_yolo` gives a ready ``YOLO`` object the same way. The allow-list is scoped to each call
  (:func:`scoped_safe_globals`); :func:`restricted_loading` runs a block in Ultralytics' restricted mode.
* :func:`convert` turns a checkpoint into a ``.safetensors`` file (raw tensors plus a JSON metadata block with
  the model YAML, class names and versions) and :func:`load_safetensors` builds the model back from it.
* :func:`verify_file` checks that a weights file (``.pt``, ``.safetensors``, ``.onnx``, ``.pdparams``) is whole
  and raises one :class:`CheckpointError` naming the file when it is not.
* :class:`AtomicPath` is a ``Path`` whose ``write_bytes`` never leaves a half-written file: a trainer that
  stores ``last.pt``/``best.pt`` through it keeps the previous checkpoint when it is killed mid-write.
* :func:`reserve_save_dir` claims a fresh run directory with an atomic ``mkdir``, so two trainings started at
  the same moment with the same ``project``/``name`` never share one.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import json
import os
import pickle
import re
import tempfile
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

__all__ = [
    "METADATA_FORMAT",
    "AtomicPath",
    "CheckpointError",
    "ReliableTrainerMixin",
    "allow_our_classes",
    "check_model_yaml",
    "convert",
    "load_safetensors",
    "load_yolo",
    "our_classes",
    "reserve_save_dir",
    "restricted_loading",
    "safe_load",
    "scoped_safe_globals",
    "trim_results_csv",
    "verify_file",
]

METADATA_FORMAT = "lcnet-yolo/1"  # value of the "format" key in the metadata of our .safetensors files
_OUR_MODULES = ("lcnet_yolo.nn.pplcnet", "lcnet_yolo.nn.layers", "lcnet_yolo.nn.neck")
_SAFE_LOAD_LOCK = threading.RLock()  # guards torch's process-wide allow-list and Ultralytics' SAFE_LOAD switch
# Layer classes of Ultralytics that a model YAML from a file may not name: TorchVision downloads weights when built.
_REFUSED_LAYERS = frozenset({"TorchVision"})


class CheckpointError(ValueError):
    """A weights file that cannot be used: missing, damaged, of an unknown format, or refused as unsafe.

    The message is one line and starts with the file's path.
    """


def _fail(path: str | Path, reason: str) -> CheckpointError:
    return CheckpointError(f"{path}: {reason}")


def _short(error: BaseException, limit: int = 160) -> str:
    """The first sentence of an exception's message: enough to identify it, no traceback wall."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = re.split(r"(?<=[a-z)])\. ", text)[0]
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise _fail(path, "no such file")
    if not path.is_file():
        raise _fail(path, "not a file")
    if path.stat().st_size == 0:
        raise _fail(path, "the file is empty (0 bytes): an interrupted download or write?")
    return path


# ----------------------------------------------------------------------------------------------------------- loading
def our_classes() -> list[type[nn.Module]]:
    """The ``nn.Module`` classes of lcnet-yolo that a pickled model may contain."""
    classes = []
    for module_name in _OUR_MODULES:
        module = importlib.import_module(module_name)  # ``lcnet_yolo.nn.pplcnet`` is shadowed by a function
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, nn.Module) and obj.__module__ == module_name:
                classes.append(obj)
    return classes


def allow_our_classes() -> None:
    """Add our model classes to torch's ``weights_only`` allow-list for the whole process (idempotent).

    Only for code that calls Ultralytics' own restricted mode (``ULTRALYTICS_SAFE_LOAD=1`` or
    ``torch_safe_load(path, safe_only=True)``) directly: after this it accepts checkpoints of models with a
    PP-LCNet backbone. lcnet-yolo's loaders do not need it: they allow our classes per call, in
    :func:`scoped_safe_globals`, and put the list back as they found it.
    """
    known = set(map(id, torch.serialization.get_safe_globals()))
    missing = [cls for cls in our_classes() if id(cls) not in known]
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
    from ultralytics.nn import tasks

    with scoped_safe_globals(our_classes()):
        previous = tasks.SAFE_LOAD
        tasks.SAFE_LOAD = True
        try:
            yield
        finally:
            tasks.SAFE_LOAD = previous


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
        CheckpointError: the file is missing, empty, truncated or corrupted, its pickle references anything
            outside the allow-list, or its model YAML would make Ultralytics run code (nothing from it has run).
    """
    from ultralytics.nn.tasks import torch_safe_load

    path = _existing_file(path)
    if path.suffix != ".pt":
        raise _fail(path, f"expected an Ultralytics checkpoint ending in .pt, not {path.suffix or 'no suffix'!r}")
    _check_zip_crcs(path)
    with scoped_safe_globals(our_classes()):
        try:
            ckpt, _ = torch_safe_load(str(path), safe_only=True)
        except Exception as error:  # damaged files surface as a dozen exception types; all get one message
            raise _load_error(path, error) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("ema") or ckpt.get("model"), nn.Module):
        raise _fail(path, "not an Ultralytics checkpoint (no 'model' or 'ema' network in it)")
    _check_checkpoint_yamls(path, ckpt)
    return ckpt


def _load_error(path: Path, error: Exception) -> CheckpointError:
    """The one-line error for a ``.pt`` that Ultralytics' restricted loader could not load (call inside the scope)."""
    cause = error.__cause__
    if isinstance(error, TypeError) and isinstance(cause, pickle.UnpicklingError):
        refused = sorted(set(_refused_globals(path) or re.findall(r"GLOBAL ([\w.]+)", str(cause))))
        if refused:
            return _fail(
                path,
                f"refused to load: its pickle references {', '.join(refused)}, which is not an allowed model class "
                "and could run code. Load it with torch.load(weights_only=False) only if you trust where it came from.",
            )
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(cause))
        reason = detail[1].strip() if detail else _short(cause)
        what = f"its pickle is not a plain weights file ({reason}); damaged, or could run code"
        return _fail(path, f"refused to load: {what}")
    if isinstance(error, TypeError) and cause is not None:  # Ultralytics' "empty, truncated or corrupted" diagnosis
        error = cause
    return _fail(path, f"not a readable checkpoint: the file is truncated or corrupted ({_short(error)})")


def _check_checkpoint_yamls(path: Path, ckpt: dict) -> None:
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
                raise _fail(path, f"refused: the model YAML of its '{key}' network {error}") from None


def _check_zip_crcs(path: Path) -> None:
    """Compare every member of a ``torch.save`` archive with its CRC-32; ``torch.load`` skips this for tensors."""
    try:
        if not zipfile.is_zipfile(path):
            return  # a bare pickle (legacy format, or not a checkpoint at all): the loader reports it
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as error:  # BadZipFile, OSError, EOFError, struct.error, UnicodeDecodeError, ...
        raise _fail(path, f"not a readable checkpoint: the file is truncated or corrupted ({_short(error)})") from None
    if bad is not None:
        raise _fail(path, f"corrupted: the checksum of {bad!r} inside the archive does not match")


def load_yolo(path: str | Path, task: str | None = None):
    """A ``YOLO`` model from a weights file, loaded without executing code from the file.

    ``.pt`` files are checked by :func:`safe_load` and then opened by ``YOLO`` under :func:`restricted_loading`,
    so the object is what ``YOLO(path)`` gives for a trusted file; a bare name that is not a local file (an
    official Ultralytics asset) is left to Ultralytics, still restricted, and its model YAML is checked.
    ``.safetensors`` files go to :func:`load_safetensors`, ``.onnx`` files are checked by :func:`verify_file`;
    anything else (YAMLs, export folders) goes to ``YOLO`` unchanged.
    """
    from ultralytics import YOLO

    path = Path(path)
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    if path.suffix == ".onnx":
        verify_file(path)
    if path.suffix != ".pt":
        return YOLO(str(path), task=task)
    if path.exists() or path.parent != Path("."):
        safe_load(path)  # clear errors for missing, damaged or refused files
    with restricted_loading():
        yolo = YOLO(str(path), task=task)
    _check_checkpoint_yamls(path, {"model": yolo.model})
    return yolo


# -------------------------------------------------------------------------------------------------- safetensors
def _model_of(ckpt: dict) -> nn.Module:
    model = ckpt.get("ema") or ckpt.get("model")
    return model


def _backbone_scale(model: nn.Module) -> float | None:
    from lcnet_yolo.nn.pplcnet import PPLCNet

    for module in model.modules():
        if isinstance(module, PPLCNet):
            return module.scale
    return None


def convert(src: str | Path, dst: str | Path | None = None) -> Path:
    """Convert an Ultralytics ``.pt`` checkpoint into a ``.safetensors`` file; returns its path.

    The tensors are the network's state dict (the EMA weights a checkpoint is evaluated with), stored in their
    checkpoint precision. The metadata block (JSON strings) holds ``format``, ``model_yaml`` (the full model
    definition), ``model_name`` (its YAML file name), ``scale`` (the YAML scale letter), ``backbone_scale``
    (PP-LCNet width), ``nc``, ``names``, ``task``, ``stride``, ``imgsz`` and the lcnet-yolo / Ultralytics /
    torch versions. The source is read with :func:`safe_load`, so converting an untrusted file is safe too.
    """
    import safetensors.torch
    import ultralytics

    import lcnet_yolo

    src = Path(src)
    dst = Path(dst) if dst is not None else src.with_suffix(".safetensors")
    ckpt = safe_load(src)
    model = _model_of(ckpt)
    yaml_dict = dict(getattr(model, "yaml", None) or {})
    if not yaml_dict:
        raise _fail(src, "the checkpoint's model has no YAML definition to record")
    names = getattr(model, "names", None) or {i: str(i) for i in range(int(yaml_dict.get("nc", 0)))}
    names = {int(k): str(v) for k, v in (names.items() if isinstance(names, dict) else enumerate(names))}
    train_args = ckpt.get("train_args") or {}
    metadata = {
        "format": METADATA_FORMAT,
        "model_yaml": json.dumps(yaml_dict),
        "model_name": Path(str(yaml_dict.get("yaml_file", ""))).name,
        "scale": str(yaml_dict.get("scale", "")),
        "backbone_scale": json.dumps(_backbone_scale(model)),
        "nc": str(len(names)),
        "names": json.dumps(names),
        "task": str(getattr(model, "task", "detect")),
        "stride": json.dumps([float(s) for s in getattr(model, "stride", torch.tensor([32.0]))]),
        "imgsz": json.dumps(train_args.get("imgsz")),
        "lcnet_yolo_version": lcnet_yolo.__version__,
        "ultralytics_version": ultralytics.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "source": src.name,
    }
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    AtomicPath(dst).write_bytes(safetensors.torch.save(tensors, metadata=metadata))
    return dst


def _check_activation(spec: object) -> None:
    """Accept only ``nn.X(literals)`` / ``torch.nn.X(literals)``: Ultralytics ``eval``s this YAML field."""
    try:
        assert isinstance(spec, str)
        call = ast.parse(spec.strip(), mode="eval").body
        assert isinstance(call, ast.Call)
        dotted = ast.unparse(call.func)
        assert re.fullmatch(r"(torch\.)?nn\.[A-Za-z_]\w*", dotted)
        assert issubclass(getattr(nn, dotted.rsplit(".", 1)[1]), nn.Module)
        for arg in [*call.args, *(kw.value for kw in call.keywords)]:
            ast.literal_eval(arg)
    except Exception as error:
        raise ValueError(
            f"field 'activation' {_clip(spec)} is not a torch.nn layer with literal arguments "
            "(Ultralytics would run it as Python)"
        ) from error


def _allowed_layer(name: str) -> bool:
    """Whether a model YAML from a file may name this module: a ``torch.nn`` or ``torchvision.ops`` layer, a layer of
    ``ultralytics.nn.modules`` (not a whole model such as ``DetectionModel``, which builds from a YAML of its own, and
    not ``TorchVision``, which downloads weights) or one of ours. Looked up where ``parse_model`` looks it up."""
    from ultralytics.nn import tasks

    if name.startswith("nn."):
        layer, packages = getattr(nn, name[3:], None), ("torch.nn.modules",)
    elif name.startswith("torchvision.ops."):
        layer, packages = getattr(importlib.import_module("torchvision.ops"), name[16:], None), ("torchvision.ops",)
    else:
        layer, packages = vars(tasks).get(name), ("ultralytics.nn.modules", *_OUR_MODULES)
    if not (isinstance(layer, type) and issubclass(layer, nn.Module)) or name in _REFUSED_LAYERS:
        return False
    return any(layer.__module__ == p or layer.__module__.startswith(p + ".") for p in packages)


def _clip(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_model_yaml(cfg: object) -> None:
    """Refuse a model definition that would make Ultralytics' ``parse_model`` run anything but layer constructors.

    ``activation`` must be a ``torch.nn`` layer call with literal arguments (Ultralytics ``eval``s it) and every
    row's module a layer class from the allow-list of :func:`_allowed_layer`. This is the one check for every
    model YAML that comes from a file: ``.pt`` checkpoints (:func:`safe_load`), ``.safetensors`` metadata,
    resumed and fine-tuned runs (:class:`ReliableTrainerMixin`).

    Raises:
        ValueError: one line naming the offending field.
    """
    try:
        if not (isinstance(cfg, dict) and isinstance(cfg.get("backbone"), list) and isinstance(cfg.get("head"), list)):
            raise ValueError("has no 'backbone' and 'head' lists")
        activation = cfg.get("activation")
        if activation is not None and not (isinstance(activation, str) and not activation):  # None, "": not used
            _check_activation(activation)
        for section in ("backbone", "head"):
            for index, row in enumerate(cfg[section]):
                where = f"field '{section}' row {index}"
                if not (isinstance(row, list | tuple) and len(row) == 4 and isinstance(row[2], str)):
                    raise ValueError(f"{where} {_clip(row)} is not [from, repeats, module, args]")
                if not _allowed_layer(row[2]):
                    raise ValueError(f"{where} names {_clip(row[2])}, which is not an allowed layer")
    except ValueError:
        raise
    except Exception as error:  # a YAML from a pickle may hold any allowed object; none may escape as a traceback
        raise ValueError(f"cannot be checked ({_short(error)})") from None


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except Exception as error:  # SafetensorError, OSError, ValueError, MemoryError, ...
        raise _fail(path, f"not a readable .safetensors file: truncated or corrupted ({_short(error)})") from None
    return tensors, metadata


def load_safetensors(path: str | Path):
    """Build the model recorded in a :func:`convert`-ed ``.safetensors`` file and load its tensors; returns ``YOLO``.

    The model is rebuilt from the metadata's YAML (after checking that it names only layer classes and a plain
    ``torch.nn`` activation), the tensors are loaded strictly, and class names come from the metadata. The
    returned object predicts, validates, exports and fine-tunes like ``YOLO("best.pt")``.
    """
    import yaml
    from ultralytics import YOLO

    path = _existing_file(path)
    tensors, metadata = _read_safetensors(path)
    if metadata.get("format") != METADATA_FORMAT:
        raise _fail(path, f"no lcnet-yolo metadata (format {metadata.get('format')!r}); write it with convert()")
    try:
        cfg = json.loads(metadata["model_yaml"])
        names = {int(k): str(v) for k, v in json.loads(metadata["names"]).items()}
        try:
            check_model_yaml(cfg)
        except ValueError as error:
            raise ValueError(f"model_yaml {error}") from None
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise _fail(path, f"invalid metadata: {_short(error)}") from None
    task = metadata.get("task", "detect")
    model_name = Path(metadata.get("model_name") or "model.yaml").name
    if not model_name.endswith((".yaml", ".yml")):
        model_name += ".yaml"
    cfg = {k: v for k, v in cfg.items() if k not in {"yaml_file", "ch"}}
    with tempfile.TemporaryDirectory() as tmp:  # YOLO builds models from YAML files; the file name keeps the scale
        yaml_path = Path(tmp) / model_name
        yaml_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        with restricted_loading():
            yolo = YOLO(str(yaml_path), task=task)
    model = yolo.model
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise _fail(path, f"the tensors do not fit the recorded model ({_short(error, 200)})") from None
    model.float().eval()
    model.names = names
    model.yaml["yaml_file"] = model_name
    model.pt_path = str(path)
    yolo.ckpt = {"model": model, "train_args": {}}  # so YOLO.train fine-tunes from these weights
    yolo.ckpt_path = str(path)
    yolo.overrides["model"] = yolo.model_name = str(path)
    return yolo


# ---------------------------------------------------------------------------------------------------- integrity
def verify_file(path: str | Path) -> str:
    """Check that a weights file is complete and readable; return its format (``pt``, ``safetensors``, ...).

    ``.pt`` goes through :func:`safe_load`, ``.safetensors`` through ``safe_open`` (all tensors are read),
    ``.onnx`` through :func:`_check_onnx`, ``.pdparams`` through :mod:`lcnet_yolo.weights`.

    Raises:
        CheckpointError: one line, naming the file and what is wrong with it.
    """
    path = _existing_file(path)
    suffix = path.suffix.lower()
    if suffix == ".pt":
        safe_load(path)
        return "pt"
    if suffix == ".safetensors":
        _read_safetensors(path)
        return "safetensors"
    if suffix == ".onnx":
        _check_onnx(path)
        return "onnx"
    if suffix == ".pdparams":
        from lcnet_yolo.weights import read_pdparams

        try:
            read_pdparams(path)  # arrays-only unpickler: refuses any other global before calling it
        except Exception as error:  # WeightsError: already one line naming the file
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            message = message.replace(f"cannot read {path}: ", "").replace(f"refusing to load {path}: ", "refused: ")
            raise _fail(path, message.replace(str(path), "the file")) from None
        return "pdparams"
    known = ".pt, .safetensors, .onnx or .pdparams"
    raise _fail(path, f"unknown weights format {suffix or '(no suffix)'!r}; expected {known}")


def _check_onnx(path: Path) -> None:
    """An ONNX file is usable when ONNX Runtime, which runs it for Ultralytics, builds a session from it.

    ONNX's own checker is stricter than the runtimes: it requires nodes in topological order, which the FP16
    conversion of ``half=True`` exports does not keep, though ONNX Runtime sorts the graph itself. Without
    onnxruntime the file is parsed with ``onnx.load`` and checked by ONNX's checker, whose complaint about node
    order alone is not counted as damage.
    """
    try:
        import onnxruntime
    except ImportError:
        onnxruntime = None
    try:
        if onnxruntime is not None:
            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
            options.log_severity_level = 4  # errors come back as exceptions; nothing printed
            options.intra_op_num_threads = 1
            onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        else:
            import onnx

            try:
                onnx.checker.check_model(onnx.load(str(path)))
            except onnx.checker.ValidationError as error:
                if "topologically sorted" not in str(error):
                    raise
    except ImportError:
        raise _fail(path, "cannot check an ONNX model without onnxruntime or onnx (pip install onnxruntime)") from None
    except Exception as error:  # InvalidProtobuf, Fail, DecodeError, ValidationError, ...: the same to a user
        raise _fail(path, f"not a readable ONNX model: truncated or corrupted ({_short(error)})") from None


# ------------------------------------------------------------------------------------------------------- writing
class AtomicPath(type(Path())):
    """A ``Path`` whose ``write_bytes``/``write_text`` replace the file atomically.

    The data goes to a temporary file in the same folder, is flushed and fsynced, and is then moved over the
    target with ``os.replace``: a reader (or a resumed run) sees the old file or the new one, never a prefix.
    Paths derived from it (``/``, ``with_name``) are ``AtomicPath`` too.
    """

    def write_bytes(self, data) -> int:
        view = memoryview(data)
        mode = self.stat().st_mode & 0o777 if self.exists() else 0o644
        fd, tmp = tempfile.mkstemp(dir=self.parent, prefix=f".{self.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, mode)  # mkstemp creates 0600 files; keep the permissions a plain write would give
            with os.fdopen(fd, "wb") as f:
                f.write(view)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.parent)
        return view.nbytes

    def write_text(self, data: str, encoding: str | None = None, errors: str | None = None, newline=None) -> int:
        if newline is not None:
            data = data.replace("\n", newline)
        self.write_bytes(data.encode(encoding or "utf-8", errors or "strict"))
        return len(data)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def reserve_save_dir(cfg: Any = None, overrides: dict | None = None) -> Path:
    """Create and return a run directory no other process has, named as Ultralytics would name it.

    ``project``/``name``/``exist_ok``/``task``/``mode`` are read from ``cfg``/``overrides`` exactly as the
    trainer reads them. With ``exist_ok=True`` (or an explicit ``save_dir``) that directory is used as is.
    Otherwise ``name``, ``name-2``, ``name-3`` ... are tried with ``os.mkdir``, which fails if the directory
    exists, so of two processes racing for the same name exactly one gets it. Pass the result to the trainer
    as the ``save_dir`` override.
    """
    from ultralytics.cfg import get_cfg, get_save_dir
    from ultralytics.utils import DEFAULT_CFG

    naming = {"project", "name", "exist_ok", "task", "mode", "save_dir"}  # a trainer's extra keys stay out
    args = get_cfg(cfg if cfg is not None else DEFAULT_CFG, {k: v for k, v in (overrides or {}).items() if k in naming})
    if getattr(args, "save_dir", None):
        save_dir = Path(args.save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        return save_dir.resolve()
    base = get_save_dir(SimpleNamespace(**{**vars(args), "exist_ok": True}))  # project/name, not incremented
    if args.exist_ok:
        base.mkdir(parents=True, exist_ok=True)
        return base
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"{base}: no free run directory name among {base.name}, {base.name}-2 ... {base.name}-9999")


def trim_results_csv(csv: str | Path, completed_epochs: int) -> int:
    """Keep the header and the rows of epochs ``1..completed_epochs`` of a ``results.csv``; return rows kept.

    Ultralytics appends an epoch's row to ``results.csv`` before it saves that epoch's ``last.pt``, so a run
    killed in between resumes that epoch and would write its row twice; a kill mid-append leaves a broken line.
    Call this with the number of epochs ``last.pt`` holds when resuming (the file is rewritten atomically).
    """
    csv = Path(csv)
    if not csv.is_file():
        return 0
    lines = csv.read_text(encoding="utf-8").splitlines()
    if not lines:
        return 0
    header, kept = lines[0], []
    width = len(header.split(","))
    for line in lines[1:]:
        fields = line.split(",")
        try:
            epoch = int(float(fields[0]))
        except ValueError:
            continue
        if len(fields) == width and epoch <= completed_epochs and all(f.strip() for f in fields):
            kept.append(line)
    AtomicPath(csv).write_text("\n".join([header, *kept]) + "\n")
    return len(kept)


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
    * with ``check_data`` (default), a ``data.yaml`` whose ``download`` script Ultralytics would run is
      refused, and a detection dataset is checked by :func:`lcnet_yolo.data.check_dataset` first:
      each file Ultralytics will skip is named once with its reason, then the counts. It opens every image
      once, as Ultralytics' first label-cache build does; set ``check_data = False`` to skip it;
    * every ``.pt`` the trainer opens itself (the checkpoint to resume, ``model=``/``pretrained=`` files) is
      checked by :func:`safe_load` and read under :func:`restricted_loading`, and every model definition it
      builds from a dict (a checkpoint's YAML, when fine-tuning or resuming) passes :func:`check_model_yaml`.
    """

    check_data: bool = True

    def __init__(self, cfg=None, overrides: dict | None = None, _callbacks=None):
        from ultralytics.utils import DEFAULT_CFG

        cfg = DEFAULT_CFG if cfg is None else cfg
        overrides = dict(overrides or {})
        if not overrides.get("resume") and not overrides.get("save_dir"):
            overrides["save_dir"] = str(reserve_save_dir(cfg, overrides))
        super().__init__(cfg, overrides, _callbacks)
        self.last, self.best = AtomicPath(self.last), AtomicPath(self.best)
        if not self.resume:  # YOLO.train opens ``pretrained=`` itself (weights_only=False) after building the trainer
            _safe_load_local(self.args.pretrained)

    def check_resume(self, overrides) -> None:
        resume = self.args.resume
        checked = None
        if resume and isinstance(resume, str | Path) and Path(resume).is_file():
            safe_load(resume)  # one clear error for a damaged or refused file (Ultralytics says "not found")
            checked = Path(resume).resolve()
        with restricted_loading():
            super().check_resume(overrides)
        if self.resume and Path(self.args.model).resolve() != checked:  # the latest run, found by Ultralytics
            safe_load(self.args.model)

    def setup_model(self):
        if isinstance(self.model, nn.Module):
            return super().setup_model()
        _safe_load_local(self.model)
        with restricted_loading():
            return super().setup_model()

    def get_model(self, cfg=None, weights=None, verbose: bool = True):
        if isinstance(cfg, dict):  # a checkpoint's model YAML (fine-tuning or resuming); Ultralytics evals parts of it
            try:
                check_model_yaml(cfg)
            except ValueError as error:
                raise _fail(self.args.model, f"refused: the model YAML of its network {error}") from None
        return super().get_model(cfg=cfg, weights=weights, verbose=verbose)

    def get_dataset(self) -> dict:
        from ultralytics.utils import RANK

        from lcnet_yolo.data import check_dataset, refuse_download_script

        if self.check_data:
            refuse_download_script(self.args.data)
        data = super().get_dataset()
        if self.check_data and self.args.task == "detect" and RANK in {-1, 0} and data.get("train"):
            check_dataset(data, log=self.log_data_check)
        return data

    def log_data_check(self, line: str) -> None:
        """Where the dataset check's lines go (Ultralytics' logger)."""
        from ultralytics.utils import LOGGER

        LOGGER.info(f"data check: {line}")

    def resume_training(self, ckpt) -> None:
        super().resume_training(ckpt)
        if ckpt is not None and self.resume:
            trim_results_csv(self.csv, self.start_epoch)
