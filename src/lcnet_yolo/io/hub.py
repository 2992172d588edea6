"""PP-LCNet ImageNet weights by name: the name → URL table, the download and the cache.

``backbone_weights=imagenet`` (or ``imagenet-ssld``, ``timm``) names the publisher's file for the model's PP-LCNet
scale in :data:`WEIGHTS`. :func:`fetch` downloads it once, with a progress bar, into :func:`weights_dir`
(``$LCNET_YOLO_WEIGHTS_DIR``, default ``$LCNET_YOLO_HOME/weights``):

* the download goes to ``NAME.PID.part`` in the cache folder, is fsynced, read through the same safe reader as a
  local file (:func:`lcnet_yolo.io.weight_loading.load_weights_file`: a pickle that would run code is refused),
  checked to fit the scale, and only then renamed to its final name: an interrupted download never leaves a file that
  looks complete;
* its size and SHA-256 are recorded next to it (``FILE.json``) on the first download and checked on every later
  use; a cached file that changed, or a server that later serves different bytes, is refused in one line;
* offline, or when the server fails, the error names the URL and the exact path where the file can be put by
  hand (its size and SHA-256 are then recorded on first use).

Nothing else in lcnet-yolo goes online, and ``YOLO_OFFLINE`` keeps Ultralytics offline as before.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from lcnet_yolo.io.errors import HubError, WeightsError
from lcnet_yolo.io.paths import lcnet_yolo_home, sha256_file
from lcnet_yolo.io.runs import AtomicPath, fsync_dir
from lcnet_yolo.io.weight_loading import load_weights_file
from lcnet_yolo.nn.pplcnet import PPLCNet
from lcnet_yolo.plugin.compat import LOGGER, TQDM
from lcnet_yolo.version import __version__

__all__ = [
    "WEIGHTS",
    "WEIGHTS_DIR_ENV",
    "HubError",
    "fetch",
    "is_weights_name",
    "listing",
    "resolve_weights",
    "weights_dir",
]

WEIGHTS_DIR_ENV = "LCNET_YOLO_WEIGHTS_DIR"
TIMEOUT_S = 60  # per socket operation (connect, each read)
CHUNK_BYTES = 1 << 16

# name -> {PP-LCNet scale -> URL}. The one table of downloadable weights (the README repeats it).
# * imagenet: PaddleClas' MODEL_URLS in ppcls/arch/backbone/legendary_models/pp_lcnet.py, the same links as the
#   PP-LCNet table of PaddleClas' model list (docs/en/algorithm_introduction/ImageNet_models_en.md).
# * imagenet-ssld: the SSLD-distilled files of that model list (PPLCNet_x0_5_ssld, x1_0_ssld, x2_5_ssld); PaddleClas
#   loads them with use_ssld=True, which inserts "_ssld" before "_pretrained" in the same URL.
# * timm: the pretrained configs lcnet_050/075/100.ra2_in1k of timm/models/mobilenetv3.py (timm has no other lcnet
#   weights), whose hf_hub_id is timm/<name>; the file is timm's safetensors name on the hub (HF_SAFE_WEIGHTS_NAME
#   in timm/models/_hub.py): tensors only, no pickle.
WEIGHTS: dict[str, dict[float, str]] = {
    "imagenet": {
        0.25: "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/PPLCNet_x0_25_pretrained.pdparams",
        0.35: "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/PPLCNet_x0_35_pretrained.pdparams",
        0.5: "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/PPLCNet_x0_5_pretrained.pdparams",
        0.75: "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/PPLCNet_x0_75_pretrained.pdparams",
        1.0: "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/PPLCNet_x1_0_pretrained.pdparams",
        1.5: "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/PPLCNet_x1_5_pretrained.pdparams",
        2.0: "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/PPLCNet_x2_0_pretrained.pdparams",
        2.5: "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/PPLCNet_x2_5_pretrained.pdparams",
    },
    "imagenet-ssld": {
        0.5: "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/PPLCNet_x0_5_ssld_pretrained.pdparams",
        1.0: "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/PPLCNet_x1_0_ssld_pretrained.pdparams",
        2.5: "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/PPLCNet_x2_5_ssld_pretrained.pdparams",
    },
    "timm": {
        0.5: "https://huggingface.co/timm/lcnet_050.ra2_in1k/resolve/main/model.safetensors",
        0.75: "https://huggingface.co/timm/lcnet_075.ra2_in1k/resolve/main/model.safetensors",
        1.0: "https://huggingface.co/timm/lcnet_100.ra2_in1k/resolve/main/model.safetensors",
    },
}


# --------------------------------------------------------------------------------------------------------------
# Names and scales.


def scale_text(scale: float) -> str:
    """``x0.25``, ``x1.0``, ``x2.5``: the scale as PP-LCNet's names write it."""
    return f"x{scale:g}" if scale % 1 else f"x{scale:.1f}"


def names_for_scale(scale: float) -> list[str]:
    """Weights names published for PP-LCNet ``scale``, in table order."""
    return [name for name, files in WEIGHTS.items() if scale in files]


def is_weights_name(value: object) -> bool:
    """True when ``value`` reads as a weights name rather than a file path: no folder, no suffix, not a file here
    (a folder named ``timm`` in the working directory does not hide the name).

    Known names (``imagenet``) and unknown ones (``imagenet-sld``) both count, so that a misspelt name gets the
    list of valid names instead of "file not found".
    """
    if not isinstance(value, str) or not value or value in {".", ".."}:
        return False
    path = Path(value)
    return "/" not in value and os.sep not in value and not path.suffix and not path.is_file()


def url_for(name: str, scale: float | None) -> str:
    """The URL of weights ``name`` for PP-LCNet ``scale``, or one-line :class:`HubError` saying what is valid."""
    if name not in WEIGHTS:
        valid = names_for_scale(scale) if scale is not None else list(WEIGHTS)
        for_scale = f" for PP-LCNet {scale_text(scale)}" if scale is not None else ""
        raise HubError(
            f"unknown backbone weights '{name}': names{for_scale} are {', '.join(valid) or 'none'} "
            f"(or give a weights file path; `lcnet-yolo weights` lists them all)"
        )
    if scale is None:
        raise HubError(f"backbone weights '{name}' are chosen by PP-LCNet scale, but the model has no PP-LCNet layer")
    if scale not in WEIGHTS[name]:
        scales = ", ".join(scale_text(s) for s in WEIGHTS[name])
        valid = ", ".join(names_for_scale(scale)) or "none"
        raise HubError(
            f"backbone weights '{name}' exist for PP-LCNet {scales} only, not for the model's {scale_text(scale)} "
            f"(names for {scale_text(scale)}: {valid})"
        )
    return WEIGHTS[name][scale]


# --------------------------------------------------------------------------------------------------------------
# The cache.


def weights_dir() -> Path:
    """Cache folder of downloaded weights: ``$LCNET_YOLO_WEIGHTS_DIR``, else ``$LCNET_YOLO_HOME/weights``."""
    if os.environ.get(WEIGHTS_DIR_ENV):
        return Path(os.environ[WEIGHTS_DIR_ENV]).expanduser()
    return lcnet_yolo_home() / "weights"


def file_name(url: str) -> str:
    """The cache file name for ``url``: the publisher's file name, or ``REPO.safetensors`` for a Hugging Face URL
    (whose file name, ``model.safetensors``, is the same for every model)."""
    parts = urlparse(url).path.split("/")
    if "resolve" in parts and parts.index("resolve") >= 1:
        return parts[parts.index("resolve") - 1] + Path(parts[-1]).suffix
    return parts[-1] or "weights"


def cache_path(name: str, scale: float) -> Path:
    """Where weights ``name`` for ``scale`` are (or will be) cached; also where a file can be put by hand."""
    return weights_dir() / name / file_name(url_for(name, scale))


def record_path(path: Path) -> Path:
    """The JSON record of the file's source, size and SHA-256, next to it."""
    return path.with_name(path.name + ".json")


def sha256_of(path: Path) -> tuple[int, str]:
    """Size in bytes and SHA-256 hex digest of a file."""
    return path.stat().st_size, sha256_file(path)


def read_record(path: Path) -> dict | None:
    """The record of ``path`` (``None`` if there is none yet)."""
    record = record_path(path)
    if not record.is_file():
        return None
    try:
        data = json.loads(record.read_text())
        if isinstance(data, Mapping) and isinstance(data.get("size"), int) and isinstance(data.get("sha256"), str):
            return dict(data)
    except (OSError, ValueError, RecursionError):  # RecursionError: a deeply nested JSON document
        pass
    raise HubError(f"{record} is not a valid weights record; delete it and {path.name} to download again")


def _write_record(path: Path, url: str, size: int, sha256: str, how: str) -> dict:
    record = {"url": url, "size": size, "sha256": sha256, "recorded": time.strftime("%Y-%m-%d %H:%M:%S"), "how": how}
    AtomicPath(record_path(path)).write_text(json.dumps(record, indent=1) + "\n")
    return record


def _remove_stale_parts(path: Path) -> None:
    """Delete ``.part`` files of ``path`` left by downloads whose process no longer runs."""
    for part in path.parent.glob(f"{path.name}.*.part"):
        pid = part.name[len(path.name) + 1 : -len(".part")]
        if not pid.isdigit() or int(pid) == os.getpid() or not _process_alive(int(pid)):
            part.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


# --------------------------------------------------------------------------------------------------------------
# Download.


class _ShortDownload(OSError):
    """The server closed the connection before sending all the bytes it announced."""

    def __init__(self, received: int, expected: int | None):
        super().__init__(f"the connection closed after {received} of {expected or '?'} bytes")


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


def _download_to(url: str, part: Path) -> tuple[int, str]:
    """Stream ``url`` into ``part`` with a progress bar; returns size and SHA-256. Raises on a short response."""
    request = urllib.request.Request(url, headers={"User-Agent": f"lcnet-yolo/{__version__}"})
    digest, size = hashlib.sha256(), 0
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(part, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with TQDM(total=total, desc=f"Downloading {part.name.split('.')[0]}", unit="B", unit_divisor=1024) as bar:
            try:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
            except http.client.IncompleteRead as error:
                raise _ShortDownload(size + len(error.partial), total) from None
        if total is not None and size != total:
            raise _ShortDownload(size, total)
        out.flush()
        os.fsync(out.fileno())
    return size, digest.hexdigest()


def _check_fits(part: Path, scale: float, source: str, outcome: str = "nothing was cached") -> None:
    """Read the file with the safe reader and load it into a fresh PP-LCNet of ``scale``."""
    try:
        load_weights_file(PPLCNet(scale, features_only=True), part, strict=True)
    except WeightsError as error:
        reason = str(error).splitlines()[0].replace(str(part), "the file")
        raise HubError(f"refused {source}: {reason}; {outcome}") from None


def fetch(name: str, scale: float) -> Path:
    """The cached file of weights ``name`` for PP-LCNet ``scale``, downloaded on first use.

    A cached file is checked against the size and SHA-256 recorded when it arrived; a file put there by hand
    gets its record on first use. Every failure is one-line :class:`HubError`.
    """
    url = url_for(name, scale)
    path = cache_path(name, scale)
    record = read_record(path)
    if path.is_file():
        size, sha256 = sha256_of(path)
        if record is None:  # put there by hand: read it as a download would be before recording it
            _check_fits(path, scale, str(path), outcome="nothing was recorded")
            try:
                _write_record(path, url, size, sha256, how="found in the cache (put there by hand)")
            except OSError as error:  # a read-only cache still serves its files
                LOGGER.warning(f"{path}: size and SHA-256 not recorded ({error})")
        elif (size, sha256) != (record["size"], record["sha256"]):
            raise HubError(
                f"{path} changed since it was recorded on {record.get('recorded', '?')} "
                f"({size} bytes, SHA-256 {sha256[:16]}… instead of {record['size']} bytes, {record['sha256'][:16]}…); "
                f"refused: delete it to download it again"
            )
        return path

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(path)
    except OSError as error:
        raise HubError(
            f"cannot write the weights cache {path.parent} ({error}); set ${WEIGHTS_DIR_ENV} to a writable folder"
        ) from None
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    LOGGER.info(f"Downloading {name} weights for PP-LCNet {scale_text(scale)}: {url} -> {path}")
    try:
        try:
            size, sha256 = _download_to(url, part)
        except (OSError, http.client.HTTPException, ValueError) as error:  # URLError, timeouts, short reads
            raise HubError(
                f"cannot download {url} ({_reason(error)}); download it by other means and put it at {path}"
            ) from None
        if record is not None and (size, sha256) != (record["size"], record["sha256"]):
            raise HubError(
                f"{url} now serves a different file than the one recorded on {record.get('recorded', '?')} "
                f"({size} bytes, SHA-256 {sha256[:16]}… instead of {record['size']} bytes, {record['sha256'][:16]}…); "
                f"refused, nothing was cached: delete {record_path(path)} to accept the new file"
            )
        _check_fits(part, scale, url)
        try:
            if record is None:
                _write_record(path, url, size, sha256, how="downloaded")
            os.replace(part, path)
        except OSError as error:
            raise HubError(f"cannot store {path} ({error}); nothing was cached") from None
        fsync_dir(path.parent)
    finally:
        part.unlink(missing_ok=True)
    return path


def resolve_weights(value: str | Path, scale: float | None) -> str | Path:
    """``value`` itself if it is a file path, else the cached file of the weights name for PP-LCNet ``scale``."""
    if isinstance(value, str) and is_weights_name(value):
        return fetch(value, scale)
    return value


# --------------------------------------------------------------------------------------------------------------
# What `lcnet-yolo weights` prints.


def cache_state(name: str, scale: float) -> str:
    """``-`` when not cached, else the cached file's size and whether it still matches its record."""
    path = cache_path(name, scale)
    if not path.is_file():
        return "-"
    size, sha256 = sha256_of(path)
    try:
        record = read_record(path)
    except HubError:
        record = {"size": -1, "sha256": ""}
    if record is None:
        state = "not yet recorded"
    elif (size, sha256) == (record["size"], record["sha256"]):
        state = "SHA-256 ok"
    else:
        state = "CHANGED since recorded"
    return f"{size / 1e6:.1f} MB, {state}"


def listing() -> str:
    """The table of weights names, scales, URLs and the cache state of each file."""
    rows = [
        (name, scale_text(scale), cache_state(name, scale), url)
        for name, files in WEIGHTS.items()
        for scale, url in files.items()
    ]
    widths = [max(len(row[i]) for row in [("name", "scale", "cached", ""), *rows]) for i in range(3)]
    lines = [
        "PP-LCNet backbone weights by name (backbone_weights=NAME picks the file for the model's scale)",
        f"cache: {weights_dir()}  (${WEIGHTS_DIR_ENV} overrides it)",
        "",
        "  ".join(h.ljust(w) for h, w in zip(("name", "scale", "cached"), widths, strict=True)) + "  url",
    ]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    return "\n".join(lines)
