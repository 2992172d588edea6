"""PP-LCNet weights files of every supported format, read safely, with foreign key names mapped to ours.

* :func:`read_checkpoint` recognises the format from the bytes (zip, pickle or safetensors header) and returns a
  flat dict of arrays; PaddleClas ``.pdparams`` go through :func:`read_pdparams`, a restricted unpickler that
  only builds numpy arrays and plain containers and refuses anything else before it runs; PyTorch files through
  ``torch.load(weights_only=True)`` with an empty allow-list.
* One mapping per foreign format: :func:`convert_paddle_state_dict` (BatchNorm statistic names, the transposed
  Linear weight, PaddleClas' inference-time dropout factor) and :func:`convert_timm_state_dict` (timm's stage
  split, by flattened block order). :func:`detect_format` tells them apart by their key names.
"""

from __future__ import annotations

import pickle
import re
import struct
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from lcnet_yolo.io.errors import WeightsError, WeightsFileNotFoundError
from lcnet_yolo.io.safe_load import scoped_safe_globals
from lcnet_yolo.nn.pplcnet import NET_CONFIG

__all__ = [
    "READABLE_FORMATS",
    "convert_paddle_state_dict",
    "convert_timm_state_dict",
    "detect_format",
    "existing_weights_file",
    "read_checkpoint",
    "read_pdparams",
]

READABLE_FORMATS = "PaddleClas .pdparams (pickle of numpy arrays), PyTorch .pt/.pth/.bin (torch.save), .safetensors"


# --------------------------------------------------------------------------------------------------------------
# The safe reader: a pickle may only rebuild numpy arrays and plain containers.


def _numpy_core():
    return getattr(np, "_core", None) or np.core


def _allowed_globals() -> dict[tuple[str, str], object]:
    core = _numpy_core()
    numpy_objects = {
        ("multiarray", "_reconstruct"): core.multiarray._reconstruct,
        ("multiarray", "scalar"): core.multiarray.scalar,
        ("numeric", "_frombuffer"): core.numeric._frombuffer,  # protocol 5 arrays
    }
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): OrderedDict,
        ("_codecs", "encode"): __import__("_codecs").encode,  # bytes in protocol 2 pickles
    }
    for package in ("numpy.core", "numpy._core"):  # numpy 1.x writes numpy.core, numpy 2.x numpy._core
        for (module, name), obj in numpy_objects.items():
            allowed[(f"{package}.{module}", name)] = obj
    return allowed


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str):
        super().__init__(file)
        self.path = path
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise WeightsError(
                f"refusing to load {self.path}: its pickle asks for the global '{module}.{name}', "
                "but a weights file only needs numpy arrays and plain containers (nothing was executed)"
            ) from None

    def persistent_load(self, pid):
        raise WeightsError(f"refusing to load {self.path}: its pickle uses persistent ids, which .pdparams never do")


def read_pdparams(path: str | Path) -> dict[str, np.ndarray]:
    """Read a PaddleClas ``.pdparams`` file without Paddle and without running any code from it.

    Returns the numpy arrays by key; non-array entries Paddle adds (``"StructuredToParameterName@@"``) are left
    out. A pickle that asks for anything but numpy array reconstruction and plain containers raises
    :class:`WeightsError` before the forbidden object is called.
    """
    path = existing_weights_file(path)
    with open(path, "rb") as file:
        try:
            obj = _ArraysOnlyUnpickler(file, str(path)).load()
        except WeightsError:
            raise
        except Exception as error:  # truncated or corrupt stream: pickle raises many kinds
            raise WeightsError(f"cannot read {path}: the pickle is truncated or corrupt ({error})") from None
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} holds a pickled {type(obj).__name__}, not a dict of arrays")
    arrays = {}
    for key, value in obj.items():
        if isinstance(value, np.ndarray):
            if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
                raise WeightsError(f"{path}: entry {key!r} is an array of {value.dtype}, not numbers")
            arrays[str(key)] = value
        elif isinstance(value, np.generic):
            arrays[str(key)] = np.asarray(value)
    return arrays


# --------------------------------------------------------------------------------------------------------------
# Reading any supported file into a flat dict of tensors.

_TORCH_LEGACY_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # torch legacy magic 0x1950a86a20f9469cfc6c


def existing_weights_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise WeightsFileNotFoundError(f"weights file not found: {path}")
    return path


def _sniff(path: Path) -> str:
    with open(path, "rb") as file:
        head = file.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "torch"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "torch" if head[2:].startswith(_TORCH_LEGACY_MAGIC) else "pickle"
    if len(head) >= 9:
        header_size = struct.unpack("<Q", head[:8])[0]
        if head[8:9] == b"{" and 8 + header_size <= path.stat().st_size:
            return "safetensors"
        if head[8:9] == b"{":
            raise WeightsError(f"cannot read {path}: the safetensors file is truncated")
    raise WeightsError(f"{path} is not a weights file we read; supported: {READABLE_FORMATS}")


def _read_torch(path: Path) -> Mapping:
    """``torch.load(weights_only=True)`` with nothing on torch's process-wide allow-list for the duration.

    Only tensors and plain containers come back, whatever classes earlier loads in this process allowed
    (Ultralytics adds the model classes of every checkpoint it safe-loads, and unpickling an allowed model class
    calls it: ``DetectionModel(cfg)`` builds a model from a YAML whose ``activation`` it ``eval``s).
    """
    try:
        with open(path, "rb") as file, scoped_safe_globals(()):  # a file object: torch picks no reader by extension
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        named = re.search(r"GLOBAL ([\w.]+)", str(error))
        detail = re.search(r"WeightsUnpickler error:\s*([^\n]+?)(?:\. |\n|$)", str(error))
        what = f"its pickle asks for {named[1]}" if named else detail[1] if detail else "torch.load refused it"
        raise WeightsError(
            f"refusing to load {path}: it holds pickled Python objects, not only tensors and plain containers "
            f"({what}; nothing was executed)"
        ) from None
    except Exception as error:  # RuntimeError, EOFError, BadZipFile, OSError, struct.error, ...: a damaged file
        reason = str(error).splitlines()[0].split(". ")[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"cannot read {path}: the PyTorch file is truncated or corrupt ({reason})") from None


def _read_safetensors(path: Path) -> Mapping:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as error:  # SafetensorError is not exported under a stable name
        raise WeightsError(f"cannot read {path}: the safetensors file is corrupt ({error})") from None


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor | np.ndarray]:
    """The state dict inside a checkpoint: accepts ``{"state_dict": ...}``-style wrappers and ``module.`` prefixes."""
    for _ in range(2):
        if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor | np.ndarray) for v in obj.values()):
            inner = [obj[k] for k in ("state_dict", "model", "model_state_dict", "ema", "state_dict_ema") if k in obj]
            if inner and isinstance(inner[0], Mapping):
                obj = inner[0]
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a state dict")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor | np.ndarray)}
    if not state:
        raise WeightsError(f"{path} holds no tensors")
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor | np.ndarray]:
    """Read a weights file of any supported format (recognised from its bytes) into a flat dict of arrays."""
    path = existing_weights_file(path)
    kind = _sniff(path)
    readers = {"torch": _read_torch, "safetensors": _read_safetensors, "pickle": read_pdparams}
    return _unwrap(readers[kind](path), path)


# --------------------------------------------------------------------------------------------------------------
# Foreign key names -> ours. One table per format.

# PaddleClas: same module names; only BatchNorm statistics are named differently.
PADDLE_RENAMES = {"._mean": ".running_mean", "._variance": ".running_var"}


def convert_paddle_state_dict(state: Mapping[str, np.ndarray], dropout_rate: float = 0.0) -> dict[str, torch.Tensor]:
    """PaddleClas ``pp_lcnet.py`` parameters -> our state dict.

    Renames BatchNorm ``_mean``/``_variance``, transposes ``fc.weight`` from Paddle's ``[in, out]`` and, for a
    head with ``last_conv`` (where PaddleClas puts ``Dropout(dropout_rate, mode="downscale_in_infer")`` before
    ``fc``), multiplies ``fc.weight`` by ``1 - dropout_rate`` so our eval-mode logits equal PaddleClas'.
    Entries that are not arrays are ignored.
    """
    converted = {}
    for key, value in state.items():
        if not isinstance(value, np.ndarray | torch.Tensor):
            continue
        tensor = torch.as_tensor(np.ascontiguousarray(value) if isinstance(value, np.ndarray) else value)
        for paddle_suffix, suffix in PADDLE_RENAMES.items():
            if key.endswith(paddle_suffix):
                key = key[: -len(paddle_suffix)] + suffix
        if key == "fc.weight" and tensor.ndim == 2:
            tensor = tensor.t().contiguous()
            if "last_conv.weight" in state and dropout_rate:
                tensor = tensor * (1.0 - dropout_rate)
        converted[key] = tensor
    return converted


# timm lcnet_*: stem, per-block layer names, head; blocks are numbered blocks.{stage}.{index} in timm's own split.
TIMM_RENAMES = {
    r"^conv_stem\.": "conv1.conv.",
    r"^bn1\.": "conv1.bn.",
    r"^conv_head\.": "last_conv.",
    r"^classifier\.": "fc.",
}
TIMM_BLOCK_RENAMES = {
    "conv_dw.": "dw_conv.conv.",
    "bn1.": "dw_conv.bn.",
    "se.conv_reduce.": "se.conv1.",
    "se.conv_expand.": "se.conv2.",
    "conv_pw.": "pw_conv.conv.",
    "bn2.": "pw_conv.bn.",
}
_TIMM_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.(.+)$")


def convert_timm_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm ``lcnet_*`` state dict -> ours. Blocks are matched by their order in the flattened network.

    timm's ``conv_head.bias`` becomes ``last_conv.bias``; :func:`load_pretrained` keeps it for a model built
    with ``head_bias=True`` and drops it (with a warning) otherwise. Unknown keys pass through unchanged.
    """
    our_blocks = [f"{stage}.{i}" for stage, rows in NET_CONFIG.items() for i in range(len(rows))]
    timm_blocks = sorted({tuple(map(int, m.groups()[:2])) for k in state if (m := _TIMM_BLOCK.match(k))})
    block_names = dict(zip(timm_blocks, our_blocks, strict=False))
    converted = {}
    for key, value in state.items():
        new_key = key
        if (match := _TIMM_BLOCK.match(key)) and (stage_block := tuple(map(int, match.groups()[:2]))) in block_names:
            rest = match.group(3)
            for timm_name, name in TIMM_BLOCK_RENAMES.items():
                if rest.startswith(timm_name):
                    new_key = f"{block_names[stage_block]}.{name}{rest[len(timm_name) :]}"
                    break
        else:
            for pattern, replacement in TIMM_RENAMES.items():
                new_key = re.sub(pattern, replacement, new_key)
        converted[new_key] = torch.as_tensor(value)
    return converted


def detect_format(state: Mapping[str, object]) -> str:
    keys = set(state)
    if any(k.endswith(("._mean", "._variance")) for k in keys):
        return "paddleclas"
    if "conv_stem.weight" in keys or any(_TIMM_BLOCK.match(k) and ".conv_dw." in k for k in keys):
        return "timm"
    return "lcnet_yolo"
