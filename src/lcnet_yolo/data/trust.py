"""The one gate every ``data=`` value passes before Ultralytics sees it: a local dataset, checked field by field.

Ultralytics' ``check_det_dataset`` downloads a dataset whose images are missing: it fetches a URL, unpacks an
archive into its datasets folder, or runs the YAML's ``download:`` field as a shell command or as Python. It also
finds a data YAML by many spellings (a name without ``.yaml``, a folder holding one, a packaged name such as
``coco8``, a URL). lcnet-yolo is offline by design and never needs a dataset script, so :func:`trusted_data`

* refuses URLs and archives,
* turns every spelling into the one YAML file Ultralytics will read (a registered name such as ``neon-trees`` is
  built first), and returns that file's path, so Ultralytics reads exactly what was checked,
* checks the fields Ultralytics relies on (types and ranges), and
* names the image folders that are missing, whatever the YAML's ``download:`` field says (it is never run).

Classification data (``task='classify'``) must be an existing ImageFolder directory. Every refusal is one
:class:`DatasetError` line naming the file and the field. :func:`lcnet_yolo.plugin.compat.no_dataset_downloads`
is the second line of defence: inside it Ultralytics' trainer, validator and exporter never download a dataset.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any

from lcnet_yolo.io.errors import DatasetError
from lcnet_yolo.io.plain_yaml import read_plain_yaml
from lcnet_yolo.plugin.compat import DATASETS_DIR, PACKAGED_DATASETS_DIR

__all__ = ["ARCHIVE_SUFFIXES", "DatasetError", "read_data_yaml", "trusted_data"]

ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".xz", ".bz2", ".txz", ".tbz2")
YAML_SUFFIXES = (".yaml", ".yml")
SPLITS = ("train", "val", "test", "minival")
MAX_YAML_BYTES = 1 << 20  # a data YAML is a few hundred bytes; a larger "YAML" is something else
NEVER = "lcnet-yolo never downloads datasets or runs download scripts"


def _is_url(text: str) -> bool:
    return "://" in text or text.lower().startswith(("ul:", "gs:", "s3:", "http:", "https:", "ftp:"))


def _is_archive(path: Path) -> bool:
    """An archive by name, or by content (Ultralytics unpacks a zip or tar whatever it is called)."""
    if path.name.lower().endswith(ARCHIVE_SUFFIXES):
        return True
    try:
        return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)
    except OSError:
        return False


def _find_yaml(folder: Path, value: str) -> Path:
    """The one data YAML in ``folder`` (at its top level, else anywhere below), as Ultralytics looks for it."""
    found: list[Path] = []
    for search in (folder.glob, folder.rglob):
        found = sorted(p for suffix in YAML_SUFFIXES for p in search(f"*{suffix}") if p.is_file())
        if found:
            break
    if len(found) > 1:
        found = [p for p in found if p.stem == folder.stem] or found
    if not found:
        raise DatasetError(f"data={value}: the folder {folder} holds no data YAML (.yaml or .yml)")
    if len(found) > 1:
        listed = ", ".join(str(p.relative_to(folder)) for p in found[:4])
        raise DatasetError(f"data={value}: the folder {folder} holds {len(found)} YAML files ({listed}); name one")
    return found[0]


def _locate(value: str) -> tuple[Path, bool]:
    """(the data YAML a ``data=`` value names, whether it is one of Ultralytics' packaged dataset YAMLs)."""
    path = Path(value)
    if path.is_dir():
        return _find_yaml(path, value), False
    if os.path.lexists(value):
        return path, False
    candidates = [Path(value + suffix) for suffix in YAML_SUFFIXES if not value.lower().endswith(YAML_SUFFIXES)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate, False
    if "/" not in value and os.sep not in value and value not in {"", ".", ".."}:
        for name in (value, *(c.name for c in candidates)):
            packaged = PACKAGED_DATASETS_DIR / name
            if packaged.is_file():
                return packaged, True
    raise DatasetError(
        f"data={value}: '{value}' does not exist (no data YAML or folder of that name; lcnet-yolo builds "
        "'neon-trees' by name, other datasets are a local data.yaml)"
    )


def read_data_yaml(path: str | Path) -> dict[str, Any]:
    """A data YAML as a dict: a regular, readable UTF-8 file of plain YAML whose top level is a mapping."""
    path = Path(path)

    def not_an_archive(path: Path) -> None:
        if _is_archive(path):
            raise DatasetError(f"{path}: an archive, which Ultralytics would unpack; {NEVER}: unpack it yourself")

    try:
        refused = " (a data YAML is plain data)"
        config = read_plain_yaml(
            path, "data YAML", MAX_YAML_BYTES, encoding="utf-8-sig", refused=refused, check=not_an_archive
        )
    except DatasetError:
        raise
    except ValueError as error:
        raise DatasetError(str(error)) from None
    if not isinstance(config, dict):
        raise DatasetError(f"{path}: a data YAML is a mapping of keys (path, train, val, names), not a {_kind(config)}")
    return config


def _kind(value: Any) -> str:
    return "empty file" if value is None else type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(path: Path, config: dict[str, Any]) -> None:
    """Types and ranges of the fields Ultralytics reads, each refusal naming the file and the field."""

    def refuse(field: str, why: str) -> DatasetError:
        return DatasetError(f"{path}: '{field}' {why}")

    if any(not isinstance(key, str) for key in config):
        key = next(k for k in config if not isinstance(k, str))
        raise DatasetError(f"{path}: key {key!r} is not a name (keys are path, train, val, names, ...)")
    if "val" not in config and "validation" in config:
        config = {**config, "val": config["validation"]}  # Ultralytics renames it
    for split in ("train", "val"):
        if config.get(split) is None:
            raise DatasetError(f"{path}: '{split}:' key missing: train and val are required in a data YAML")
    for split in SPLITS:
        value = config.get(split)
        if value is None:
            continue
        if isinstance(value, list):
            if not value or not all(isinstance(v, str) and v for v in value):
                raise refuse(split, "must be a folder or .txt list of images, or a non-empty list of them (strings)")
        elif not isinstance(value, str) or not value:
            raise refuse(split, f"must be a folder or .txt list of images (a string), not {_kind(value)}")
    if config.get("path") is not None and not isinstance(config["path"], str):
        raise refuse("path", f"must be a folder (a string), not {_kind(config['path'])}")
    for key in ("path", *SPLITS):
        entries = config.get(key)
        if any("\x00" in entry for entry in (entries if isinstance(entries, list) else [entries or ""])):
            raise refuse(key, "holds a NUL character, which no path can")
    names, nc = config.get("names"), config.get("nc")
    if names is None and nc is None:
        raise DatasetError(f"{path}: 'names' (or 'nc') is missing: say which classes the labels number")
    if nc is not None and (not _is_int(nc) or nc < 1):
        raise refuse("nc", f"must be a positive integer (the number of classes), not {nc!r}")
    if names is not None:
        if isinstance(names, dict):
            if not names or not all(_is_int(k) for k in names) or sorted(names) != list(range(len(names))):
                raise refuse("names", "must map class ids 0, 1, ..., n-1 to names")
            values = list(names.values())
        elif isinstance(names, list):
            values = names
        else:
            raise refuse("names", f"must be a list of class names or a {{id: name}} mapping, not {_kind(names)}")
        if not values or not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
            raise refuse("names", "must hold at least one class name, each a string")
        if nc is not None and nc != len(values):
            raise refuse("nc", f"is {nc} but 'names' holds {len(values)} classes")
    channels = config.get("channels")
    if channels is not None and (not _is_int(channels) or not 1 <= channels <= 64):
        raise refuse("channels", f"must be a positive integer (3 for RGB images), not {channels!r}")
    for key in ("kpt_shape", "flip_idx"):
        if config.get(key) is not None and not isinstance(config[key], list):
            raise refuse(key, f"must be a list, not {_kind(config[key])}")


def _exists(path: Path) -> bool:
    """``path.exists()``, False for a name the system cannot even look up (too long, a loop of links)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _root(path: Path, config: dict[str, Any]) -> Path:
    """The dataset folder, found as Ultralytics finds it (``path:``, else the YAML's folder; a relative ``path:``
    that does not exist is taken under Ultralytics' datasets folder)."""
    root = Path(config.get("path") or path.parent)
    if not _exists(root) and not root.is_absolute():
        root = (DATASETS_DIR / root).resolve()
    return root


def _missing(path: Path, config: dict[str, Any], splits: tuple[str, ...]) -> list[str]:
    """The image folders or lists of ``splits`` that do not exist, as Ultralytics resolves them."""
    root = _root(path, config)
    missing = []
    for split in splits:
        entries = config.get(split if split != "val" or "val" in config else "validation")
        for entry in entries if isinstance(entries, list) else [entries] if entries else []:
            target = Path(os.path.abspath(root / entry))
            if not _exists(target) and entry.startswith("../") and _exists(root / entry[3:]):
                continue  # Ultralytics falls back to the path without its leading '../'
            if not _exists(target):
                missing.append(str(target))
    return missing


def _trusted_folder(value: str) -> str:
    """A classification dataset: an existing ImageFolder directory, nothing to download."""
    folder = Path(value)
    if not folder.is_dir():
        raise DatasetError(f"data={value}: a classification dataset is a local folder with train/ and val/; {NEVER}")
    if not (folder / "train").is_dir():
        raise DatasetError(f"data={value}: the folder has no train/ subfolder of class folders")
    return str(folder)


def trusted_data(value: Any, task: str | None = "detect", split: str | None = None) -> str:
    """The data YAML (or classification folder) a ``data=`` value names, checked; raises :class:`DatasetError`.

    ``value`` is a registered dataset name (built when needed), a data YAML, a name Ultralytics resolves (``coco8``:
    accepted only when its images are present), or a folder holding one data YAML. URLs and archives are refused,
    fields are checked, and missing image folders of ``train``, ``val`` and ``split`` are named. Returns the path of
    the checked YAML, to be given to Ultralytics instead of ``value``.
    """
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"data={value!r}: give a data YAML path or a dataset name")
    if "\x00" in value:
        raise DatasetError(f"data={value!r}: a path cannot hold a NUL character")
    if _is_url(value):
        raise DatasetError(f"data={value}: a URL; {NEVER}: download it yourself and give the local data.yaml")
    if value.lower().endswith(ARCHIVE_SUFFIXES) and not Path(value).is_dir():
        raise DatasetError(f"data={value}: an archive; {NEVER}: unpack it yourself and give its data.yaml")
    from lcnet_yolo.data import resolve_data  # the package imports this module

    value = resolve_data(value)  # a name lcnet-yolo builds itself (neon-trees)
    if task == "classify":
        return _trusted_folder(value)
    try:
        path, packaged = _locate(value)
    except OSError as error:  # a name too long to look up, a loop of links
        raise DatasetError(f"data={value}: cannot be looked up ({error.strerror or error})") from None
    config = read_data_yaml(path)
    _check_fields(path, config)
    splits = tuple(dict.fromkeys(("train", "val", *([split] if split in SPLITS else []))))
    missing = _missing(path, config, splits)
    if missing:
        listed = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        where = (
            f" ({path.name} is one of Ultralytics' packaged datasets: put its images there first)" if packaged else ""
        )
        script = "; its download: script is not run" if config.get("download") else ""
        raise DatasetError(f"{path}: images not found: {listed}{where}{script}; {NEVER}")
    return str(path.resolve())
