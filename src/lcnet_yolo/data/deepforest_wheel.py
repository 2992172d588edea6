"""The ``deepforest`` 2.1.0 wheel from PyPI as a source of data: fetched once, checked by SHA-256, read as a zip.

The wheel ships NEON sample images with Pascal VOC tree-crown annotations under ``deepforest/data/``; the
``neon-trees`` dataset (:mod:`lcnet_yolo.data.neon_trees`) is built from them and :func:`deepforest_image` extracts
one image (the demo's unlabelled ``SOAP_031.png``). The ``deepforest`` package itself is never installed or imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from PIL import Image

from lcnet_yolo.io.errors import DatasetError
from lcnet_yolo.io.paths import IMAGE_SUFFIXES, lcnet_yolo_home, sha256_file

__all__ = [
    "DEEPFOREST_REQUIREMENT",
    "DEEPFOREST_WHEEL_NAME",
    "DEEPFOREST_WHEEL_SHA256",
    "WHEEL_DATA_DIR",
    "WHEEL_ENV",
    "deepforest_image",
    "fetch_deepforest_wheel",
    "open_wheel",
    "read_wheel_member",
]

DEEPFOREST_REQUIREMENT = "deepforest==2.1.0"
DEEPFOREST_WHEEL_NAME = "deepforest-2.1.0-py3-none-any.whl"
DEEPFOREST_WHEEL_SHA256 = "8c2798d8e9be7f0004b194fe207b76c1d9fff6e711b3db67b9508dcd5d00ae54"
WHEEL_ENV = "LCNET_YOLO_DEEPFOREST_WHEEL"
WHEEL_DATA_DIR = "deepforest/data/"  # folder of the sample data inside the wheel


def _wheel_problem(path: Path) -> str | None:
    """Why ``path`` is not the expected deepforest wheel, or None if it is."""
    if not path.is_file():
        return "file not found"
    if DEEPFOREST_WHEEL_SHA256 and (digest := sha256_file(path)) != DEEPFOREST_WHEEL_SHA256:
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


def open_wheel(wheel: Path) -> zipfile.ZipFile:
    """The wheel as an open zip file; a damaged one is a :class:`DatasetError`."""
    try:
        return zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as error:
        raise DatasetError(f"deepforest wheel {wheel} is damaged ({error})") from None


def read_wheel_member(archive: zipfile.ZipFile, name: str, wheel: Path) -> bytes:
    """The bytes of ``deepforest/data/<name>``; a missing or damaged member is a :class:`DatasetError`."""
    try:
        return archive.read(WHEEL_DATA_DIR + name)
    except KeyError:
        raise DatasetError(f"deepforest wheel {wheel} has no {WHEEL_DATA_DIR}{name}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise DatasetError(f"deepforest wheel {wheel} is damaged ({error})") from None


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
    with open_wheel(wheel_path) as archive:
        available = sorted(
            member[len(WHEEL_DATA_DIR) :]
            for member in archive.namelist()
            if member.startswith(WHEEL_DATA_DIR) and PurePosixPath(member.lower()).suffix in IMAGE_SUFFIXES
        )
        if name not in available:
            raise DatasetError(f"no image {name!r} in the deepforest wheel; choose one of: {', '.join(available)}")
        data = read_wheel_member(archive, name, wheel_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target
