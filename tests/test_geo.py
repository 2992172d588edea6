"""GeoTIFFs: read window by window, boxes written in map coordinates (GeoJSON, GeoPackage) with the raster's CRS."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import test_slicing
from lcnet_yolo.slicing import geo
from test_slicing import IMGSZ, run_cli

rasterio = pytest.importorskip("rasterio")
detector_pt, detector_onnx = test_slicing.detector_pt, test_slicing.detector_onnx  # the same fixtures
fiona = pytest.importorskip("fiona")

# EPSG:32612 (UTM 12N, Yellowstone), 10 cm pixels, rotated by 36.87 degrees: X = 0.08 x + 0.06 y + 500000,
# Y = 0.06 x - 0.08 y + 4980000 (a pixel column and row are both 0.1 m long).
TRANSFORM = (0.08, 0.06, 500000.0, 0.06, -0.08, 4980000.0)


def write_geotiff(path, pixels: np.ndarray, crs: str | None = "EPSG:32612", dtype: str = "uint8", **options) -> None:
    from rasterio.transform import Affine

    height, width = pixels.shape[:2]
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 3, "dtype": dtype,
               "transform": Affine(*TRANSFORM), "tiled": True, "blockxsize": 64, "blockysize": 64,
               **options}  # fmt: skip
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(pixels.transpose(2, 0, 1).astype(dtype))


@pytest.fixture(scope="module")
def crowns() -> np.ndarray:
    """400 x 300 RGB of the demo's NEON picture."""
    from lcnet_yolo.data import deepforest_image

    return np.asarray(Image.open(deepforest_image("SOAP_031.png")).convert("RGB").crop((0, 50, 400, 350))).copy()


@pytest.fixture(scope="module")
def geotiff(crowns, tmp_path_factory):
    path = tmp_path_factory.mktemp("geotiff") / "crowns.tif"
    write_geotiff(path, crowns)
    return path


def test_box_corners_go_through_the_rotated_transform():
    rings = geo.box_polygons(np.array([[10, 20, 30, 60]]), TRANSFORM)
    # hand-computed: (10, 20) -> (0.8 + 1.2 + 500000, 0.6 - 1.6 + 4980000), and so on round the box
    expected = [[500002.0, 4979999.0], [500003.6, 4980000.2], [500006.0, 4979997.0], [500004.4, 4979995.8],
                [500002.0, 4979999.0]]  # fmt: skip
    np.testing.assert_allclose(rings[0], expected, atol=1e-6)


def test_raster_is_read_window_by_window(geotiff, crowns):
    with geo.Raster(geotiff) as raster:
        assert (raster.height, raster.width) == (300, 400)
        assert raster.transform == pytest.approx(TRANSFORM)
        assert rasterio.crs.CRS.from_wkt(raster.crs).to_epsg() == 32612
        np.testing.assert_array_equal(raster.read((50, 60, 178, 188)), crowns[60:188, 50:178])


def test_a_raster_larger_than_the_drawing_limit_is_only_read_in_windows(detector_pt, geotiff, monkeypatch):
    from ultralytics import YOLO

    from lcnet_yolo.slicing import predict, predict_sliced

    sizes = []
    read = geo.Raster.read
    monkeypatch.setattr(
        geo.Raster, "read", lambda self, w: sizes.append((w[2] - w[0]) * (w[3] - w[1])) or read(self, w)
    )
    monkeypatch.setattr(predict, "MAX_PICTURE_PIXELS", 100 * 100)  # as if 400 x 300 px did not fit in memory
    result = predict_sliced(YOLO(detector_pt), geotiff, slice=128, overlap=0.2, imgsz=IMGSZ, conf=0.05)
    assert result.orig_shape == (300, 400) and result.orig_img.strides[:2] == (0, 0)  # a blank stand-in
    assert len(sizes) == 12 and max(sizes) == 128 * 128


def features(path) -> tuple[str | None, list[np.ndarray], list[dict]]:
    with fiona.open(path) as layer:
        crs = layer.crs.to_epsg() if layer.crs else None
        records = list(layer)
    return crs, [np.array(r.geometry["coordinates"][0]) for r in records], [dict(r.properties) for r in records]


def test_predict_command_writes_boxes_in_map_coordinates(detector_pt, geotiff, tmp_path, subprocess_env):
    from ultralytics import YOLO

    from lcnet_yolo.slicing import predict_sliced

    proc = run_cli("lcnet-yolo", "predict", f"model={detector_pt}", f"source={geotiff}", "slice=128",
                   f"imgsz={IMGSZ}", "conf=0.05", f"project={tmp_path}", "name=geo", cwd=tmp_path,
                   env=subprocess_env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning" not in proc.stderr
    result = predict_sliced(YOLO(detector_pt), geotiff, slice=128, overlap=0.2, imgsz=IMGSZ, conf=0.05)
    expected = geo.box_polygons(result.boxes.xyxy.numpy(), TRANSFORM)
    assert len(expected) >= 5
    run = tmp_path / "geo"
    assert Image.open(run / "crowns.jpg").size == (400, 300)
    for suffix in (".geojson", ".gpkg"):
        crs, rings, properties = features(run / f"crowns{suffix}")
        assert crs == 32612
        assert len(rings) == len(expected)
        np.testing.assert_allclose(np.array(rings), expected, atol=1e-3)
        assert [p["score"] for p in properties] == pytest.approx(result.boxes.conf.numpy().tolist(), abs=1e-5)
        assert {p["label"] for p in properties} <= set(result.names.values())
    assert sorted(p.name for p in run.iterdir()) == ["crowns.geojson", "crowns.gpkg", "crowns.jpg"]


def test_a_raster_without_crs_gives_pixel_coordinates_and_one_warning(detector_pt, crowns, tmp_path, subprocess_env):
    source = tmp_path / "plain.tif"
    write_geotiff(source, crowns, crs=None)
    proc = run_cli("lcnet-yolo", "predict", f"model={detector_pt}", f"source={source}", "slice=128",
                   f"imgsz={IMGSZ}", "conf=0.05", f"project={tmp_path}", "name=px", cwd=tmp_path,
                   env=subprocess_env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line.lower()]
    assert warnings == ["warning: plain: the raster has no CRS; boxes written in pixel coordinates"]
    crs, rings, _ = features(tmp_path / "px" / "plain.gpkg")
    assert crs is None and len(rings) >= 5
    assert "crs" not in json.loads((tmp_path / "px" / "plain.geojson").read_text())  # no CRS claimed
    all_points = np.concatenate(rings)
    assert all_points.min() >= 0 and all_points[:, 0].max() <= 400 and all_points[:, 1].max() <= 300


def refused(proc, tmp_path, run: str) -> str:
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert not (tmp_path / run).exists()  # nothing half-written
    return lines[0]


def test_a_16_bit_raster_is_refused_in_one_line(detector_pt, crowns, tmp_path):
    source = tmp_path / "deep.tif"
    write_geotiff(source, crowns.astype(np.uint16) * 256, dtype="uint16")
    proc = run_cli("lcnet-yolo", "predict", f"model={detector_pt}", f"source={source}", "slice=128",
                   f"project={tmp_path}", "name=deep", cwd=tmp_path)  # fmt: skip
    assert refused(proc, tmp_path, "deep") == (
        f"lcnet-yolo predict: error: {source} is a uint16 raster; only 8-bit rasters are read (convert it, e.g. "
        "gdal_translate -ot Byte -scale)"
    )


def test_an_unreadable_window_is_refused_in_one_line(detector_pt, crowns, tmp_path):
    source = tmp_path / "cut.tif"
    write_geotiff(source, crowns, compress="deflate")
    data = source.read_bytes()
    source.write_bytes(data[: len(data) // 2])  # the header survives, later tiles are gone
    proc = run_cli("lcnet-yolo", "predict", f"model={detector_pt}", f"source={source}", "slice=128",
                   f"project={tmp_path}", "name=cut", cwd=tmp_path)  # fmt: skip
    message = refused(proc, tmp_path, "cut")
    assert message.startswith("lcnet-yolo predict: error: cannot read window x=") and f"of {source}: " in message


def test_a_crs_that_cannot_be_written_is_refused_and_nothing_is_left(tmp_path):
    with pytest.raises(geo.GeoError) as error:
        geo.check_crs('PROJCS["broken"', tmp_path / "x.tif")
    assert str(error.value).startswith(f"{tmp_path / 'x.tif'}: its CRS cannot be written to GeoJSON/GeoPackage (")
    with pytest.raises(geo.GeoError) as error:
        geo.write_vectors(tmp_path / "x", np.array([[1, 2, 3, 4]]), [0.5], [0], {0: "tree"}, 'PROJCS["broken"',
                          TRANSFORM)  # fmt: skip
    assert str(error.value).startswith("cannot write boxes of x in map coordinates: ")
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []
    script = (
        "from lcnet_yolo.slicing.geo import check_crs\n"
        "try: check_crs('PROJCS[\"broken\"', 'x.tif')\n"
        "except ValueError: pass"
    )
    quiet = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and quiet.stderr == ""  # GDAL's own message does not reach stderr


def test_runtime_command_writes_map_coordinates(detector_onnx, geotiff, tmp_path, capsys):
    from lcnet_yolo_runtime.cli import main

    out = tmp_path / "out"
    assert main([str(detector_onnx), str(geotiff), "--slice", "128", "--conf", "0.05", "--json", "--save",
                 "--output", str(out)]) == 0  # fmt: skip
    detections = json.loads((out / "results.json").read_text())[0]["detections"]
    assert len(detections) >= 5
    boxes = np.array([d["box"] for d in detections])
    for suffix in (".geojson", ".gpkg"):
        crs, rings, _ = features(out / f"crowns{suffix}")
        assert crs == 32612
        np.testing.assert_allclose(np.array(rings), geo.box_polygons(boxes, TRANSFORM), atol=0.01)
    assert Image.open(out / "crowns.jpg").size == (400, 300)
