"""GeoTIFFs and other large rasters: read window by window with rasterio, write boxes in map coordinates with fiona.

This file exists twice, byte for byte: ``lcnet_yolo/slicing/geo.py`` and ``lcnet_yolo_runtime/geo.py`` (a test
checks the copies agree). rasterio and fiona come with the ``[geo]`` extra and are imported when a raster is opened.

Only the windows being predicted are read, so a raster larger than memory works. Boxes are written as polygons
(the four corners of each pixel box through the raster's affine transform, so a rotated raster gives rotated
polygons) to ``STEM.geojson`` and ``STEM.gpkg`` in the raster's CRS; a raster without a CRS gives pixel coordinates
and one warning. Files are written under a temporary name and renamed into place, so a failure leaves none behind.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".jp2", ".img"}
VECTOR_SUFFIXES = (".geojson", ".gpkg")
_DRIVERS = {".geojson": "GeoJSON", ".gpkg": "GPKG"}
_SCHEMA = {"geometry": "Polygon", "properties": {"label": "str", "class": "int", "score": "float"}}


class GeoError(ValueError):
    """A raster that cannot be read, or boxes that cannot be written in its coordinates."""


class GeoWarning(UserWarning):
    """Something the user should know about a raster (e.g. it has no CRS)."""


def is_raster(path: str | Path) -> bool:
    """Whether ``path`` is read as a raster with rasterio (a GeoTIFF-like suffix and rasterio installed)."""
    if Path(path).suffix.lower() not in RASTER_SUFFIXES:
        return False
    try:
        import rasterio  # noqa: F401
    except ImportError:
        return False
    return True


class Raster:
    """An open raster: ``height``, ``width``, ``crs`` (WKT or None), ``transform`` (a..f), ``read(window)``."""

    def __init__(self, path: str | Path) -> None:
        import rasterio

        self.path = Path(path)
        try:
            self._dataset = rasterio.open(self.path)
        except (rasterio.errors.RasterioError, OSError) as error:
            raise GeoError(f"cannot read raster {self.path}: {_reason(error)}") from None
        ds = self._dataset
        if ds.count not in (1, 3, 4):
            self.close()
            raise GeoError(f"{self.path} has {ds.count} bands: give an RGB (3 or 4 bands) or a grey (1 band) raster")
        if ds.dtypes[0] != "uint8":
            self.close()
            raise GeoError(
                f"{self.path} is a {ds.dtypes[0]} raster; only 8-bit rasters are read (convert it, e.g. "
                "gdal_translate -ot Byte -scale)"
            )
        self.height, self.width = ds.height, ds.width
        self.transform = tuple(ds.transform)[:6]
        self.crs = ds.crs.to_wkt() if ds.crs else None
        if self.crs is not None:
            check_crs(self.crs, self.path)

    def read(self, window: Sequence[int]) -> np.ndarray:
        """Pixels ``x0, y0, x1, y1`` as RGB ``uint8`` HxWx3."""
        from rasterio.windows import Window

        x0, y0, x1, y1 = (int(v) for v in window)
        bands = [1, 1, 1] if self._dataset.count == 1 else [1, 2, 3]
        try:
            data = self._dataset.read(bands, window=Window(x0, y0, x1 - x0, y1 - y0))
        except Exception as error:
            raise GeoError(f"cannot read window x={x0}..{x1} y={y0}..{y1} of {self.path}: {_reason(error)}") from None
        return np.ascontiguousarray(data.transpose(1, 2, 0))

    def close(self) -> None:
        self._dataset.close()

    def __enter__(self) -> Raster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _reason(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def check_crs(crs_wkt: str, path: str | Path) -> None:
    """Raise :class:`GeoError` when the vector files could not carry ``crs_wkt``; checked before predicting."""
    import fiona
    from fiona.crs import CRS

    try:
        with fiona.Env():  # GDAL's messages go to Python's logging, not straight to stderr
            crs = CRS.from_wkt(crs_wkt)
            if not crs.to_wkt():
                raise ValueError("it has no WKT form")
            crs.to_epsg()  # a CRS that PROJ cannot interpret fails here
    except Exception as error:
        raise GeoError(f"{path}: its CRS cannot be written to GeoJSON/GeoPackage ({_reason(error)})") from None


def box_polygons(boxes: np.ndarray, transform: Sequence[float]) -> np.ndarray:
    """Closed rings ``(N, 5, 2)``: each box's corners (x1 y1, x2 y1, x2 y2, x1 y2, x1 y1) through the affine
    ``transform`` ``(a, b, c, d, e, f)``: ``X = a*x + b*y + c``, ``Y = d*x + e*y + f``."""
    a, b, c, d, e, f = transform
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x = boxes[:, [0, 2, 2, 0, 0]]
    y = boxes[:, [1, 1, 3, 3, 1]]
    return np.stack([a * x + b * y + c, d * x + e * y + f], axis=-1)


def write_vectors(
    stem: str | Path,
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    names: dict[int, str],
    crs: str | None,
    transform: Sequence[float] | None,
) -> list[Path]:
    """Write ``STEM.geojson`` and ``STEM.gpkg`` (layer ``detections``): one polygon per box with its ``label``,
    ``class`` and ``score``, in ``crs`` through ``transform``; with no CRS, pixel coordinates and one warning."""
    import fiona

    stem = Path(stem)
    if crs is None:
        warnings.warn(f"{stem.name}: the raster has no CRS; boxes written in pixel coordinates", GeoWarning, 2)
        transform = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    rings = box_polygons(boxes, transform)
    records = [
        {
            "geometry": {"type": "Polygon", "coordinates": [ring.tolist()]},
            "properties": {"label": names.get(int(k), str(int(k))), "class": int(k), "score": round(float(s), 5)},
        }
        for ring, s, k in zip(rings, scores, classes, strict=True)
    ]
    written, temporary = [], []
    try:
        for suffix in VECTOR_SUFFIXES:
            target = stem.with_name(stem.name + suffix)
            partial = target.with_name(f".{target.stem}.{os.getpid()}.partial{suffix}")
            temporary.append(partial)
            options = {"crs_wkt": crs} if crs else {}
            options["layer"] = "detections"  # else GeoPackage names the layer after the temporary file
            with fiona.Env(), fiona.open(partial, "w", driver=_DRIVERS[suffix], schema=_SCHEMA, **options) as f:
                f.writerecords(records)
        for partial in temporary:
            target = partial.with_name(stem.name + partial.suffix)
            os.replace(partial, target)
            written.append(target)
    except Exception as error:
        raise GeoError(f"cannot write boxes of {stem.name} in map coordinates: {_reason(error)}") from None
    finally:
        for partial in temporary:
            partial.unlink(missing_ok=True)
    return written
