"""Datasets in Ultralytics' YOLO format: ``neon-trees`` (real aerial tree crowns) and a tiny synthetic set.

``neon-trees`` is built from the sample data that ships inside the ``deepforest`` 2.1.0 wheel on PyPI: NEON
airborne RGB orthophotos (10 cm pixels) with hand-drawn tree-crown boxes in Pascal VOC XML (Weinstein et al., 2019,
"Individual tree-crown detection in RGB imagery using semi-supervised deep learning neural networks"). The wheel is
read as a zip file; the ``deepforest`` package itself is never installed or imported.

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
import hashlib
import io
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

try:  # POSIX only; elsewhere concurrent builds still end in one valid dataset thanks to the atomic rename
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

DATASETS: dict[str, str] = {
    "neon-trees": "NEON aerial RGB tree crowns from the deepforest 2.1.0 wheel, 1 class (tree), 640 px tiles",
}

DEEPFOREST_REQUIREMENT = "deepforest==2.1.0"
DEEPFOREST_WHEEL_NAME = "deepforest-2.1.0-py3-none-any.whl"
DEEPFOREST_WHEEL_SHA256 = "8c2798d8e9be7f0004b194fe207b76c1d9fff6e711b3db67b9508dcd5d00ae54"
WHEEL_ENV = "LCNET_YOLO_DEEPFOREST_WHEEL"
HOME_ENV = "LCNET_YOLO_HOME"
_WHEEL_DATA_DIR = "deepforest/data/"

TILE_SIZE = 640
MIN_TILE_OVERLAP = 128  # > 108 px, the largest annotated crown
HOLDOUT_FRACTION = 0.2  # bottom rows of each YELL image held out for validation
HOLDOUT_GUARD = 64  # rows between the training region and the held-out strip, in neither split
MIN_VISIBLE_FRACTION = 0.4
MIN_BOX_SIDE = 4.0
FORMAT_VERSION = 1

# (source stem in the wheel, short name used in file names)
_TILED_SOURCES = (
    ("2019_YELL_2_528000_4978000_image_crop2", "YELL_528000_4978000"),
    ("2019_YELL_2_541000_4977000_image_crop", "YELL_541000_4977000"),
)
_WHOLE_VAL_SOURCES = (("OSBS_029", "OSBS_029"), ("SOAP_061", "SOAP_061"))
_CLASS_NAMES = {0: "tree"}  # every VOC label ("Tree", and "Alive"/"Dead" in SOAP_061) is a tree crown


class DatasetError(RuntimeError):
    """A dataset cannot be built or read; the message is one line meant for the user."""


# ----------------------------------------------------------------------------------------------------------- tiling
@dataclass(frozen=True)
class Window:
    """A pixel rectangle ``[x0, x1) x [y0, y1)`` of a source image."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def intersects(self, other: Window) -> bool:
        """True if the two rectangles share any pixel."""
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def contains(self, other: Window) -> bool:
        return self.x0 <= other.x0 and self.y0 <= other.y0 and other.x1 <= self.x1 and other.y1 <= self.y1


def overlapping_starts(length: int, tile: int, min_overlap: int) -> list[int]:
    """Start offsets of the fewest ``tile``-long windows that cover ``[0, length)`` with ``min_overlap`` or more.

    Windows are spread evenly, the first at 0 and the last ending at ``length``; a ``length`` up to ``tile`` gets
    one window (which is then shorter than ``tile``).
    """
    if not 0 <= min_overlap < tile:
        raise ValueError(f"min_overlap must be in [0, {tile}), got {min_overlap}")
    if length <= tile:
        return [0]
    count = math.ceil((length - min_overlap) / (tile - min_overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def partition_edges(length: int, tile: int) -> list[tuple[int, int]]:
    """Split ``[0, length)`` into the fewest near-equal, non-overlapping pieces no longer than ``tile``."""
    count = max(1, math.ceil(length / tile))
    edges = [round(i * length / count) for i in range(count + 1)]
    return list(itertools.pairwise(edges))


def grid_windows(region: Window, tile: int, min_overlap: int) -> list[Window]:
    """Overlapping training tiles covering ``region`` (see ``overlapping_starts``)."""
    xs = overlapping_starts(region.width, tile, min_overlap)
    ys = overlapping_starts(region.height, tile, min_overlap)
    return [
        Window(
            region.x0 + x,
            region.y0 + y,
            region.x0 + x + min(tile, region.width),
            region.y0 + y + min(tile, region.height),
        )
        for y in ys
        for x in xs
    ]


def partition_windows(region: Window, tile: int) -> list[Window]:
    """Non-overlapping tiles covering ``region`` (see ``partition_edges``)."""
    return [
        Window(region.x0 + x0, region.y0 + y0, region.x0 + x1, region.y0 + y1)
        for y0, y1 in partition_edges(region.height, tile)
        for x0, x1 in partition_edges(region.width, tile)
    ]


def clip_boxes_to_window(
    boxes: np.ndarray,
    window: Window,
    min_visible_fraction: float = MIN_VISIBLE_FRACTION,
    min_side: float = MIN_BOX_SIDE,
) -> tuple[np.ndarray, np.ndarray]:
    """Clip ``(N, 4)`` xyxy source-pixel boxes to ``window``: return the kept boxes in window coordinates and the mask.

    A box is kept if its clipped part has at least ``min_visible_fraction`` of its area and both sides of at least
    ``min_side`` pixels; everything else (boxes outside the window and slivers at its border) is dropped.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    clipped = np.empty_like(boxes)
    clipped[:, [0, 2]] = boxes[:, [0, 2]].clip(window.x0, window.x1) - window.x0
    clipped[:, [1, 3]] = boxes[:, [1, 3]].clip(window.y0, window.y1) - window.y0
    width, height = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = (width >= min_side) & (height >= min_side) & (width * height >= min_visible_fraction * area)
    return clipped[keep], keep


def yolo_label_lines(boxes: np.ndarray, width: int, height: int, class_id: int = 0) -> list[str]:
    """Format xyxy pixel boxes of a ``width`` x ``height`` image as YOLO lines ``class cx cy w h`` (normalised)."""
    lines = []
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        cx, cy, w, h = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height
        lines.append(f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


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


# --------------------------------------------------------------------------------------------------- cache and wheel
def lcnet_yolo_home() -> Path:
    """Cache root: ``$LCNET_YOLO_HOME`` or ``~/.cache/lcnet-yolo``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "lcnet-yolo").expanduser()


def default_dataset_dir(name: str = "neon-trees") -> Path:
    return lcnet_yolo_home() / "datasets" / name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _wheel_problem(path: Path) -> str | None:
    """Why ``path`` is not the expected deepforest wheel, or None if it is."""
    if not path.is_file():
        return "file not found"
    if DEEPFOREST_WHEEL_SHA256 and (digest := _sha256(path)) != DEEPFOREST_WHEEL_SHA256:
        return f"sha256 {digest[:12]}… is not that of {DEEPFOREST_WHEEL_NAME} ({DEEPFOREST_WHEEL_SHA256[:12]}…)"
    if not zipfile.is_zipfile(path):
        return "not a zip file"
    return None


def _run_pip_download(dest: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", DEEPFOREST_REQUIREMENT]
    return subprocess.run([*command, "-d", str(dest)], capture_output=True, text=True, check=False)


def fetch_deepforest_wheel(wheel: str | Path | None = None) -> Path:
    """Path of the deepforest 2.1.0 wheel: ``wheel``, else ``$LCNET_YOLO_DEEPFOREST_WHEEL``, else a cached download.

    Downloads with ``python -m pip download --no-deps`` (from PyPI or the configured index) on first use.
    """
    given = wheel or os.environ.get(WHEEL_ENV)
    if given:
        path = Path(given).expanduser()
        if problem := _wheel_problem(path):
            raise DatasetError(f"deepforest wheel {path}: {problem}; pass the {DEEPFOREST_WHEEL_NAME} from PyPI")
        return path
    cached = lcnet_yolo_home() / "downloads" / DEEPFOREST_WHEEL_NAME
    if cached.exists():
        if (problem := _wheel_problem(cached)) is None:
            return cached
        print(f"neon-trees: cached {cached} is damaged ({problem}); downloading it again")
        cached.unlink()
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=cached.parent) as tmp:
        result = _run_pip_download(Path(tmp))
        found = sorted(Path(tmp).glob("deepforest-*.whl"))
        if result.returncode != 0 or not found:
            last = (result.stderr or result.stdout or "no output").strip().splitlines()[-1:] or ["no output"]
            raise DatasetError(
                f"could not download {DEEPFOREST_REQUIREMENT} with pip ({last[0].strip()}); offline? "
                f"set {WHEEL_ENV} to a local copy of {DEEPFOREST_WHEEL_NAME}"
            )
        if problem := _wheel_problem(found[0]):
            raise DatasetError(f"downloaded {found[0].name} is not the expected wheel: {problem}")
        os.replace(found[0], cached)
    size_mb = cached.stat().st_size / 1e6
    print(
        f"neon-trees: downloaded {cached.name} ({size_mb:.1f} MB), PyPI package {DEEPFOREST_REQUIREMENT}, to {cached}"
    )
    return cached


def _read_member(archive: zipfile.ZipFile, name: str, wheel: Path) -> bytes:
    try:
        return archive.read(_WHEEL_DATA_DIR + name)
    except KeyError:
        raise DatasetError(f"deepforest wheel {wheel} has no {_WHEEL_DATA_DIR}{name}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise DatasetError(f"deepforest wheel {wheel} is damaged ({error})") from None


def _open_wheel(wheel: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as error:
        raise DatasetError(f"deepforest wheel {wheel} is damaged ({error})") from None


def _decode_image(data: bytes, source: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{source}: unreadable image ({error})") from None


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def deepforest_image(name: str = "SOAP_031.png", wheel: str | Path | None = None) -> Path:
    """Path of one image from the deepforest wheel (e.g. the unlabelled ``SOAP_031.png``), extracted into the cache."""
    target = lcnet_yolo_home() / "deepforest" / Path(name).name
    if target.is_file():
        try:
            with Image.open(target) as image:
                image.load()
            return target
        except OSError:
            print(f"neon-trees: cached {target} is damaged; extracting it again")
    wheel_path = fetch_deepforest_wheel(wheel)
    with _open_wheel(wheel_path) as archive:
        available = sorted(
            member[len(_WHEEL_DATA_DIR) :]
            for member in archive.namelist()
            if member.startswith(_WHEEL_DATA_DIR) and member.lower().endswith(_IMAGE_SUFFIXES)
        )
        if name not in available:
            raise DatasetError(f"no image {name!r} in the deepforest wheel; choose one of: {', '.join(available)}")
        data = _read_member(archive, name, wheel_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target


# ---------------------------------------------------------------------------------------------------------- building
@dataclass(frozen=True)
class TilePlan:
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
    with _open_wheel(wheel) as archive:
        for stem, short_name in (*_TILED_SOURCES, *_WHOLE_VAL_SOURCES):
            image = _decode_image(_read_member(archive, f"{stem}.png", wheel), stem)
            annotation = parse_voc(_read_member(archive, f"{stem}.xml", wheel), image.size, stem)
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
        kept, mask = clip_boxes_to_window(boxes, window)
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
            files[tile[key]] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    _write_data_yaml(out, final_root)
    manifest = {
        "dataset": "neon-trees",
        "format_version": FORMAT_VERSION,
        "source": {"requirement": DEEPFOREST_REQUIREMENT, "wheel": DEEPFOREST_WHEEL_NAME, "sha256": _sha256(wheel)},
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
            if path.stat().st_size != expected["size"] or _sha256(path) != expected["sha256"]:
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
    root = Path(root).expanduser().resolve() if root is not None else default_dataset_dir().resolve()
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


def resolve_data(name_or_path: str | Path) -> str:
    """Map a dataset name (``neon-trees`` or ``neon-trees.yaml``) to its built ``data.yaml``; pass others through.

    An existing file of that name takes precedence over the built-in dataset.
    """
    text = str(name_or_path)
    if text in ("neon-trees", "neon-trees.yaml") and not Path(text).is_file():
        return str(build_neon_trees())
    return text


# --------------------------------------------------------------------------------------------------------- synthetic
def make_synthetic_dataset(
    root: str | Path, n_train: int = 8, n_val: int = 4, imgsz: int = 64, seed: int = 0, boxes_per_image: int = 3
) -> Path:
    """Write a one-class dataset of bright rectangles on noise and return its ``data.yaml``.

    Every image gets ``boxes_per_image`` non-overlapping-ish filled rectangles labelled as class 0 ("box").
    Deterministic for a given ``seed``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 80, (imgsz, imgsz, 3), dtype=np.uint8)
            image = Image.fromarray(pixels)
            draw = ImageDraw.Draw(image)
            lines = []
            for _ in range(boxes_per_image):
                w, h = rng.integers(imgsz // 6, imgsz // 3, 2)
                x0, y0 = rng.integers(0, imgsz - w), rng.integers(0, imgsz - h)
                colour = tuple(int(c) for c in rng.integers(150, 256, 3))
                draw.rectangle([int(x0), int(y0), int(x0 + w - 1), int(y0 + h - 1)], fill=colour)
                lines.append(f"0 {(x0 + w / 2) / imgsz:.6f} {(y0 + h / 2) / imgsz:.6f} {w / imgsz:.6f} {h / imgsz:.6f}")
            image.save(root / "images" / split / f"{split}_{i:04d}.png")
            (root / "labels" / split / f"{split}_{i:04d}.txt").write_text("\n".join(lines) + "\n")
    data_yaml = root / "data.yaml"
    data_yaml.write_text(
        yaml.safe_dump({"path": str(root.resolve()), "train": "images/train", "val": "images/val", "names": {0: "box"}})
    )
    return data_yaml
