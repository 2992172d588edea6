"""A read-only check of a YOLO-format dataset: which images Ultralytics will skip, and why, said once and clearly.

Ultralytics verifies every image/label pair when it builds its label cache and silently trains on the rest,
which is the behaviour we want. Its messages are not always clear, though (a NaN coordinate is reported as
"non-normalized or out of bounds coordinates []"), they are printed again each time a cache is read, and it
repairs truncated JPEGs in place. :func:`check_dataset` applies the same acceptance rules without touching any
file and gives one reason per bad file plus the counts, so a trainer can print them before training starts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from PIL import UnidentifiedImageError

from lcnet_yolo.io.errors import DatasetError
from lcnet_yolo.plugin.compat import DATASETS_DIR, IMG_FORMATS, img2label_paths, plain_image_open

__all__ = ["DatasetError", "DatasetReport", "FileIssue", "check_dataset", "check_split", "refuse_download_script"]

TOLERANCE = 0.01  # Ultralytics accepts coordinates up to 1.01 and down to -0.01 (with non-negative w, h)


@dataclass(frozen=True)
class FileIssue:
    """One problem with one file. ``fatal`` issues make Ultralytics skip the image; the others are notes."""

    path: Path
    reason: str
    fatal: bool = True

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class DatasetReport:
    """What :func:`check_split` found in one split; the counts mirror Ultralytics' label-cache summary."""

    split: str
    images: int = 0
    labelled: int = 0  # usable images with a non-empty label file
    background: int = 0  # usable images without a label file, or with an empty one
    corrupt: int = 0  # images Ultralytics skips
    duplicates: int = 0  # usable images whose duplicate boxes Ultralytics removes
    issues: list[FileIssue] = field(default_factory=list)

    @property
    def usable(self) -> int:
        return self.images - self.corrupt

    def summary(self) -> str:
        text = (
            f"{self.split}: {self.images} images, {self.usable} usable ({self.labelled} labelled, "
            f"{self.background} background), {self.corrupt} skipped as corrupt"
        )
        return text + (f", {self.duplicates} with duplicate boxes removed" if self.duplicates else "")


def _check_image(path: Path) -> str | None:
    """Why Ultralytics would reject this image, or None. Never modifies the file."""
    if path.stat().st_size == 0:
        return "empty image file (0 bytes)"
    open_image = plain_image_open()
    try:
        with open_image(path) as image:
            image.verify()
            width, height = image.size
            fmt = (image.format or "").lower()
    except (UnidentifiedImageError, ModuleNotFoundError):
        return "not an image (no image format recognises its bytes)"
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"undecodable image ({first})"
    if fmt in {"jpg", "jpeg"}:
        with open(path, "rb") as f:
            f.seek(-2, os.SEEK_END)
            complete = f.read() == b"\xff\xd9"
        if not complete:  # Ultralytics decodes such a JPEG to rewrite it; a truncated one fails to decode
            try:
                with open_image(path) as image:
                    image.load()
            except Exception as error:
                return f"truncated JPEG ({str(error).splitlines()[0] if str(error) else type(error).__name__})"
    if width < 10 or height < 10:
        return f"image is {width}x{height} pixels, under the 10-pixel minimum"
    if fmt not in IMG_FORMATS | {"jpeg2000"}:
        return f"unsupported image format {fmt!r}"
    return None


def _check_labels(path: Path, nc: int) -> tuple[str | None, int, int]:
    """(reason the label file makes the image unusable or None, number of boxes, duplicate boxes)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        return f"unreadable label file ({error})", 0, 0
    rows: list[tuple[float, ...]] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path.name} line {number}"
        if len(fields) != 5:
            if len(fields) > 6 and len(fields) % 2 == 1:  # a polygon row: Ultralytics turns it into a box
                fields = fields[:1] + _polygon_box(fields[1:])
            else:
                return f"{where}: {len(fields)} values, a box row has 5 (class x y w h)", 0, 0
        try:
            values = tuple(float(v) for v in fields)
        except ValueError:
            return f"{where}: not a number in {line.strip()!r}", 0, 0
        cls, coords = values[0], values[1:]
        if any(math.isnan(v) for v in values):
            return f"{where}: NaN value", 0, 0
        if any(math.isinf(v) for v in values):
            return f"{where}: infinite value", 0, 0
        if cls < 0 or cls % 1:
            return f"{where}: class id {fields[0]} is not a non-negative integer", 0, 0
        if cls >= nc:
            return f"{where}: class id {int(cls)} but the dataset has nc={nc} (ids 0..{nc - 1})", 0, 0
        if max(coords) > 1 + TOLERANCE:
            return f"{where}: coordinate {max(coords):g} > 1 (labels must be normalised to 0..1)", 0, 0
        if min(coords) < -TOLERANCE or min(coords[2:]) < 0:
            return f"{where}: negative coordinate {min(coords):g}", 0, 0
        rows.append(values)
    return None, len(rows), len(rows) - len(set(rows))


def _polygon_box(points: list[str]) -> list[str]:
    try:
        xs, ys = [float(v) for v in points[0::2]], [float(v) for v in points[1::2]]
    except ValueError:
        return points[:4]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    return [str((x0 + x1) / 2), str((y0 + y1) / 2), str(x1 - x0), str(y1 - y0)]


def check_split(images: Iterable[str | Path], nc: int, split: str = "train") -> DatasetReport:
    """Check image files and their labels (``images/`` → ``labels/``, ``.txt``) the way Ultralytics will."""
    images = sorted(Path(p) for p in images)
    report = DatasetReport(split=split, images=len(images))
    for image, label in zip(images, map(Path, img2label_paths([str(p) for p in images])), strict=True):
        reason = _check_image(image)
        if reason is None and label.is_file():
            reason, boxes, duplicates = _check_labels(label, nc)
        else:
            boxes, duplicates = 0, 0
        if reason is not None:
            report.corrupt += 1
            report.issues.append(FileIssue(image, reason))
            continue
        if not label.is_file():
            report.background += 1
            report.issues.append(FileIssue(image, f"no label file {label.name}: used as a background image", False))
        elif boxes == 0:
            report.background += 1
        else:
            report.labelled += 1
        if duplicates:
            report.duplicates += 1
            report.issues.append(FileIssue(label, f"{duplicates} duplicate box(es), removed for training", False))
    return report


def _image_files(source: str | Path | list) -> list[Path]:
    """The image files of a split entry: a folder (searched recursively) or a ``.txt`` list of paths."""
    sources = source if isinstance(source, list) else [source]
    files: list[Path] = []
    for entry in sources:
        entry = Path(entry)
        if entry.is_dir():
            files += [p for p in entry.rglob("*") if p.suffix[1:].lower() in IMG_FORMATS and p.is_file()]
        elif entry.is_file() and entry.suffix == ".txt":  # a list of image paths, relative to its folder
            for line in entry.read_text().splitlines():
                if line.strip():
                    path = Path(line.strip())
                    files.append(path if path.is_absolute() else entry.parent / path)
        else:
            raise DatasetError(f"{entry}: image folder or list not found")
    return files


def check_dataset(
    data: str | Path | dict, splits: Iterable[str] = ("train", "val"), log=print, min_usable: int = 1
) -> dict[str, DatasetReport]:
    """Check the splits of a ``data.yaml`` and report each bad file once, with its reason, and the counts.

    ``data`` is a ``data.yaml`` path or the dict Ultralytics' ``check_det_dataset`` returns. Nothing is
    modified. ``log`` receives one line per issue and one summary line per split (``log=None``: silent).
    Raises :class:`DatasetError` if a split has fewer than ``min_usable`` usable images; otherwise returns
    ``{split: DatasetReport}``.
    """
    if isinstance(data, dict):
        config, source = data, data.get("yaml_file", "dataset")
        root = Path(config.get("path") or ".")
    else:
        source = data = Path(data)
        try:
            config = yaml.safe_load(data.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise DatasetError(f"{data}: cannot read the dataset YAML ({error})") from None
        root = Path(config.get("path") or data.parent)
        if not root.is_absolute():
            root = (data.parent / root).resolve()
    names = config.get("names") or {}
    nc = int(config.get("nc", len(names)))
    reports = {}
    for split in splits:
        if not config.get(split):
            continue
        entries = config[split] if isinstance(config[split], list) else [config[split]]
        files = _image_files([p if Path(p).is_absolute() else root / p for p in map(str, entries)])
        report = check_split(files, nc, split)
        if log:
            for issue in report.issues:
                log(f"{'skipped' if issue.fatal else 'note'}: {issue}")
            log(report.summary())
        if report.usable < min_usable:
            raise DatasetError(f"{source}: {split} has {report.usable} usable images of {report.images}")
        reports[split] = report
    return reports


def refuse_download_script(data: str | Path) -> None:
    """Refuse a ``data.yaml`` whose ``download`` script Ultralytics would run because its images are missing.

    Ultralytics runs a missing dataset's ``download:`` field: ``bash ...`` as a command, anything else but a
    URL with ``exec``. A YAML from an untrusted source can so run any code. Call this before Ultralytics'
    ``check_det_dataset``; it raises :class:`DatasetError` when the script would run and is silent otherwise
    (URLs, present images, dataset names Ultralytics resolves from its own package).
    """
    path = Path(str(data))
    if path.suffix not in {".yaml", ".yml"} or not path.is_file():
        return
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return  # Ultralytics reports unreadable YAML itself
    script = config.get("download") if isinstance(config, dict) else None
    if not isinstance(script, str) or script.lower().startswith(("http://", "https://")):
        return
    root = Path(config.get("path") or path.parent)
    if not root.exists() and not root.is_absolute():
        root = DATASETS_DIR / root
    val = config.get("val") or []
    if all((root / v).exists() for v in (val if isinstance(val, list) else [val])):
        return  # images present: Ultralytics does not run the script
    kind = "shell command" if script.startswith("bash ") else "Python script"
    raise DatasetError(
        f"{path}: its images are missing and its 'download' field is a {kind} that Ultralytics would run; "
        "run it yourself if you trust this file, or download the dataset another way"
    )
