"""The ``neon-trees`` dataset: real aerial tree crowns in Ultralytics' YOLO format, built once and cached.

It is built from the sample data that ships inside the ``deepforest`` 2.1.0 wheel on PyPI: NEON
airborne RGB orthophotos (10 cm pixels) with hand-drawn tree-crown boxes in Pascal VOC XML (Weinstein et al., 2019,
"Individual tree-crown detection in RGB imagery using semi-supervised deep learning neural networks"). The wheel is
read as a zip file (:mod:`lcnet_yolo.data.deepforest_wheel`); the ``deepforest`` package itself is never installed
or imported.

Layout of the built dataset (one class, ``tree``):

- train: the two large Yellowstone (YELL) orthophotos, minus a held-out strip at the bottom of each, cut into
  ``TILE_SIZE`` tiles whose overlap is at least ``MIN_TILE_OVERLAP`` (larger than any annotated crown, so every crown
  of the training region lies whole in at least one tile).
- val: ``OSBS_029`` and ``SOAP_061`` (400x400 each, other NEON sites) plus the held-out YELL strips, cut into
  non-overlapping tiles. ``HOLDOUT_GUARD`` pixel rows between the training region and the strip belong to neither
  split, so no training tile touches the strip and no crown is cut in two between the splits.

Boxes are clipped at tile borders; a clipped box is kept only if it keeps at least ``MIN_VISIBLE_FRACTION`` of its
area and both sides are at least ``MIN_BOX_SIDE`` pixels ("slivers" are dropped). The build is deterministic, goes to
a temporary directory renamed into place, runs under a file lock, and ends by writing ``manifest.json`` (counts,
windows, file sizes and SHA-256) which is verified on every reuse: a damaged cache is rebuilt.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from lcnet_yolo.data.deepforest_wheel import (
    DEEPFOREST_REQUIREMENT,
    DEEPFOREST_WHEEL_NAME,
    fetch_deepforest_wheel,
    open_wheel,
    read_wheel_member,
)
from lcnet_yolo.data.tiling import (
    MIN_BOX_SIDE,
    MIN_VISIBLE_FRACTION,
    Window,
    clip_boxes_to_window,
    grid_windows,
    partition_windows,
    yolo_label_lines,
)
from lcnet_yolo.io.errors import DatasetError
from lcnet_yolo.io.paths import lcnet_yolo_home, sha256_file

try:  # POSIX only; elsewhere concurrent builds still end in one valid dataset thanks to the atomic rename
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = [
    "DESCRIPTION",
    "FORMAT_VERSION",
    "HOLDOUT_FRACTION",
    "HOLDOUT_GUARD",
    "MIN_BOX_SIDE",
    "MIN_TILE_OVERLAP",
    "MIN_VISIBLE_FRACTION",
    "TILE_SIZE",
    "Annotation",
    "TilePlan",
    "build_neon_trees",
    "parse_voc",
    "plan_source_tiles",
    "read_manifest",
    "verify_dataset",
]

DESCRIPTION = "NEON aerial RGB tree crowns from the deepforest 2.1.0 wheel, 1 class (tree), 640 px tiles"

TILE_SIZE = 640
MIN_TILE_OVERLAP = 128  # > 108 px, the largest annotated crown
HOLDOUT_FRACTION = 0.2  # bottom rows of each YELL image held out for validation
HOLDOUT_GUARD = 64  # rows between the training region and the held-out strip, in neither split
FORMAT_VERSION = 1

# (source stem in the wheel, short name used in file names)
_TILED_SOURCES = (
    ("2019_YELL_2_528000_4978000_image_crop2", "YELL_528000_4978000"),
    ("2019_YELL_2_541000_4977000_image_crop", "YELL_541000_4977000"),
)
_WHOLE_VAL_SOURCES = (("OSBS_029", "OSBS_029"), ("SOAP_061", "SOAP_061"))
_CLASS_NAMES = {0: "tree"}  # every VOC label ("Tree", and "Alive"/"Dead" in SOAP_061) is a tree crown


# ------------------------------------------------------------------------------------------------------ annotations
@dataclass
class Annotation:
    """Boxes of one source image after validation, plus what validation had to fix."""

    boxes: np.ndarray  # (N, 4) xyxy pixels, inside the image
    clipped: int  # boxes that reached outside the image and were clipped to it
    dropped: int  # boxes that were empty, inverted, non-finite or outside the image


def parse_voc(xml_text: bytes | str, image_size: tuple[int, int], source: str) -> Annotation:
    """Read Pascal VOC boxes, check the declared image size against the real ``(width, height)``, validate boxes.

    Coordinates are taken as continuous pixel edges (``xmax`` may equal the image width), as deepforest writes them.
    """
    try:
        root = ET.fromstring(xml_text)
        declared = (int(root.findtext("size/width")), int(root.findtext("size/height")))
        raw = [
            [float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
            for obj in root.iter("object")
        ]
    except (ET.ParseError, TypeError, ValueError) as error:
        raise DatasetError(f"{source}: unreadable VOC annotation ({error})") from None
    if declared != tuple(image_size):
        raise DatasetError(
            f"{source}: annotation says {declared[0]}x{declared[1]} but the image is {image_size[0]}x{image_size[1]}"
        )
    width, height = image_size
    boxes = np.asarray(raw, dtype=np.float64).reshape(-1, 4)
    inside = boxes.copy()
    inside[:, [0, 2]] = inside[:, [0, 2]].clip(0, width)
    inside[:, [1, 3]] = inside[:, [1, 3]].clip(0, height)
    valid = np.isfinite(boxes).all(1) & (inside[:, 2] > inside[:, 0]) & (inside[:, 3] > inside[:, 1])
    clipped = int((valid & (inside != boxes).any(1)).sum())
    return Annotation(boxes=inside[valid], clipped=clipped, dropped=int((~valid).sum()))


def _decode_image(data: bytes, source: str) -> Image.Image:
    """An image from a wheel member's bytes, as RGB; an unreadable one is a :class:`DatasetError`."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{source}: unreadable image ({error})") from None


# ---------------------------------------------------------------------------------------------------------- building
@dataclass(frozen=True)
class TilePlan:
    """One tile to write: its split, source image, window in that image and output file stem."""

    split: str
    source: str
    window: Window
    file_stem: str


def plan_source_tiles(short_name: str, width: int, height: int) -> tuple[list[TilePlan], Window]:
    """Training tiles and held-out validation tiles of one large image; also returns the held-out strip."""
    strip_height = round(HOLDOUT_FRACTION * height)
    strip = Window(0, height - strip_height, width, height)
    train_region = Window(0, 0, width, strip.y0 - HOLDOUT_GUARD)
    plans = [
        TilePlan("train", short_name, w, f"{short_name}_x{w.x0:04d}_y{w.y0:04d}")
        for w in grid_windows(train_region, TILE_SIZE, MIN_TILE_OVERLAP)
    ]
    plans += [
        TilePlan("val", short_name, w, f"{short_name}_x{w.x0:04d}_y{w.y0:04d}")
        for w in partition_windows(strip, TILE_SIZE)
    ]
    return plans, strip


def _tiling_settings() -> dict:
    return {
        "tile_size": TILE_SIZE,
        "min_tile_overlap": MIN_TILE_OVERLAP,
        "holdout_fraction": HOLDOUT_FRACTION,
        "holdout_guard": HOLDOUT_GUARD,
        "min_visible_fraction": MIN_VISIBLE_FRACTION,
        "min_box_side": MIN_BOX_SIDE,
    }


def _write_dataset(out: Path, wheel: Path, final_root: Path) -> dict:
    """Write the whole dataset into ``out`` (``data.yaml`` pointing at ``final_root``); return the manifest."""
    started = time.perf_counter()
    for kind in ("images", "labels"):
        for split in ("train", "val"):
            (out / kind / split).mkdir(parents=True, exist_ok=True)
    sources: dict[str, dict] = {}
    jobs: list[tuple[TilePlan, Image.Image, np.ndarray]] = []
    holdout: dict[str, list[int]] = {}
    with open_wheel(wheel) as archive:
        for stem, short_name in (*_TILED_SOURCES, *_WHOLE_VAL_SOURCES):
            image = _decode_image(read_wheel_member(archive, f"{stem}.png", wheel), stem)
            annotation = parse_voc(read_wheel_member(archive, f"{stem}.xml", wheel), image.size, stem)
            sources[short_name] = {
                "file": f"{stem}.png",
                "size": list(image.size),
                "boxes": len(annotation.boxes),
                "boxes_clipped_to_image": annotation.clipped,
                "boxes_dropped_invalid": annotation.dropped,
            }
            if stem in dict(_WHOLE_VAL_SOURCES):
                plans = [TilePlan("val", short_name, Window(0, 0, *image.size), short_name)]
            else:
                plans, strip = plan_source_tiles(short_name, *image.size)
                holdout[short_name] = [strip.x0, strip.y0, strip.x1, strip.y1]
            jobs += [(plan, image, annotation.boxes) for plan in plans]

    from tqdm import tqdm  # installed with Ultralytics; imported here to keep `import lcnet_yolo` light

    tiles, counts = [], {split: {"images": 0, "boxes": 0} for split in ("train", "val")}
    crowns_seen = {split: set() for split in counts}  # (source, box index) kept in at least one tile of the split
    for plan, image, boxes in tqdm(jobs, desc="neon-trees: writing tiles", unit="tile"):
        window = plan.window
        kept, mask = clip_boxes_to_window(boxes, window, MIN_VISIBLE_FRACTION, MIN_BOX_SIDE)
        crowns_seen[plan.split].update((plan.source, int(i)) for i in np.flatnonzero(mask))
        image_file = Path("images") / plan.split / f"{plan.file_stem}.png"
        label_file = Path("labels") / plan.split / f"{plan.file_stem}.txt"
        image.crop((window.x0, window.y0, window.x1, window.y1)).save(out / image_file, compress_level=1)
        lines = yolo_label_lines(kept, window.width, window.height)
        (out / label_file).write_text("".join(f"{line}\n" for line in lines))
        counts[plan.split]["images"] += 1
        counts[plan.split]["boxes"] += len(kept)
        tiles.append(
            {
                "image": image_file.as_posix(),
                "label": label_file.as_posix(),
                "split": plan.split,
                "source": plan.source,
                "window": [window.x0, window.y0, window.x1, window.y1],
                "boxes": len(kept),
            }
        )
    for split, count in counts.items():
        count["distinct_crowns"] = len(crowns_seen[split])
    files = {}
    for tile in tiles:
        for key in ("image", "label"):
            path = out / tile[key]
            files[tile[key]] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    _write_data_yaml(out, final_root)
    manifest = {
        "dataset": "neon-trees",
        "format_version": FORMAT_VERSION,
        "source": {"requirement": DEEPFOREST_REQUIREMENT, "wheel": DEEPFOREST_WHEEL_NAME, "sha256": sha256_file(wheel)},
        "tiling": _tiling_settings(),
        "classes": _CLASS_NAMES,
        "splits": counts,
        "sources": sources,
        "holdout": holdout,
        "tiles": tiles,
        "files": files,
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))  # last: its presence marks a finished build
    return manifest


def _write_data_yaml(root: Path, final_root: Path) -> None:
    content = {"path": str(final_root), "train": "images/train", "val": "images/val", "names": _CLASS_NAMES}
    (root / "data.yaml").write_text(yaml.safe_dump(content, sort_keys=False))


def read_manifest(root: str | Path) -> dict:
    """The ``manifest.json`` of a built dataset."""
    return json.loads((Path(root) / "manifest.json").read_text())


def verify_dataset(root: str | Path) -> str | None:
    """Why the dataset at ``root`` cannot be reused (one line), or None if it is complete and intact.

    Checks the manifest (format and tiling settings), every listed file's size and SHA-256, the number of images per
    split, and that ``data.yaml`` points at ``root`` (rewritten if the directory was moved).
    """
    root = Path(root)
    try:
        manifest = read_manifest(root)
    except FileNotFoundError:
        return "no manifest.json"
    except (OSError, ValueError) as error:
        return f"unreadable manifest.json ({error})"
    if manifest.get("format_version") != FORMAT_VERSION or manifest.get("tiling") != _tiling_settings():
        return "built with other settings"
    try:
        for relative, expected in manifest["files"].items():
            path = root / relative
            if not path.is_file():
                return f"missing {relative}"
            if path.stat().st_size != expected["size"] or sha256_file(path) != expected["sha256"]:
                return f"{relative} was modified or truncated"
        for split, count in manifest["splits"].items():
            found = len(list((root / "images" / split).glob("*.png")))
            if found != count["images"]:
                return f"images/{split} holds {found} images, manifest says {count['images']}"
    except (KeyError, TypeError, AttributeError) as error:
        return f"malformed manifest.json ({error})"
    try:
        recorded = yaml.safe_load((root / "data.yaml").read_text())["path"]
    except (OSError, yaml.YAMLError, TypeError, KeyError):
        recorded = None
    if recorded != str(root.resolve()):
        _write_data_yaml(root, root.resolve())
    return None


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``path`` (created if needed); waits for other holders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"neon-trees: waiting for another process that holds {path}")
                fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


_OWN_ENTRIES = {"images", "labels", "data.yaml", "manifest.json"}


def _summary(manifest: dict) -> str:
    splits = manifest["splits"]
    return ", ".join(
        f"{split} {c['images']} images / {c['boxes']} boxes ({c['distinct_crowns']} distinct crowns)"
        for split, c in splits.items()
    )


def build_neon_trees(root: str | Path | None = None, force: bool = False, wheel: str | Path | None = None) -> Path:
    """Build (once) the ``neon-trees`` dataset and return its ``data.yaml``.

    Args:
        root: dataset directory; default ``$LCNET_YOLO_HOME/datasets/neon-trees`` (``~/.cache/lcnet-yolo/...``).
        force: rebuild even if a valid dataset is already there.
        wheel: a local ``deepforest-2.1.0-py3-none-any.whl``; default ``$LCNET_YOLO_DEEPFOREST_WHEEL`` or a download.

    An existing dataset is reused if its manifest verifies, else rebuilt. Concurrent calls are safe: the build runs
    under an exclusive file lock, into a temporary directory that is renamed into place when complete.
    """
    root = (
        Path(root).expanduser().resolve()
        if root is not None
        else (lcnet_yolo_home() / "datasets" / "neon-trees").resolve()
    )
    with _exclusive_lock(root.parent / f".{root.name}.lock"):
        if root.exists():
            if not root.is_dir() or not {p.name for p in root.iterdir()} <= _OWN_ENTRIES:
                raise DatasetError(f"refusing to overwrite {root}: not a neon-trees dataset; choose another directory")
            if not force:
                problem = verify_dataset(root)
                if problem is None:
                    print(f"neon-trees: using {root} ({_summary(read_manifest(root))})")
                    return root / "data.yaml"
                print(f"neon-trees: {root} is damaged ({problem}); rebuilding")
        wheel_path = fetch_deepforest_wheel(wheel)
        print(f"neon-trees: building from {wheel_path} into {root}")
        building = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
        building.chmod(0o755)  # mkdtemp makes it private; the dataset is not
        try:
            manifest = _write_dataset(building, wheel_path, final_root=root)
            if root.exists():
                retired = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
                os.replace(root, retired / root.name)
                os.replace(building, root)
                shutil.rmtree(retired, ignore_errors=True)
            else:
                os.replace(building, root)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    print(f"neon-trees: built {_summary(manifest)} in {manifest['build_seconds']:.1f} s -> {root / 'data.yaml'}")
    return root / "data.yaml"
