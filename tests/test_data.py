"""Datasets: the tiling/clipping rules on synthetic arrays (fast) and the real ``neon-trees`` build (slow, downloads
the deepforest wheel once per session unless ``LCNET_YOLO_DEEPFOREST_WHEEL`` names a local copy)."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from lcnet_yolo import data
from lcnet_yolo.data import (
    DATASETS,
    Dataset,
    DatasetError,
    build_neon_trees,
    read_manifest,
    resolve_data,
    verify_dataset,
)
from lcnet_yolo.data import deepforest_wheel as wheel_module  # defines what the tests patch
from lcnet_yolo.data.neon_trees import parse_voc, plan_source_tiles
from lcnet_yolo.data.tiling import (
    Window,
    clip_boxes_to_window,
    grid_windows,
    overlapping_starts,
    partition_edges,
    yolo_label_lines,
)

SRC = str(Path(data.__file__).resolve().parents[2])  # src/, above lcnet_yolo/data/__init__.py


# ------------------------------------------------------------------------------------------------ tiling rules (fast)
@pytest.mark.parametrize("length", [1, 400, 640, 641, 764, 1249, 1914, 2299, 5000])
def test_overlapping_tiles_cover_the_length_with_at_least_the_minimum_overlap(length):
    tile, min_overlap = 640, 128
    starts = overlapping_starts(length, tile, min_overlap)
    assert starts[0] == 0
    if length > tile:
        assert starts[-1] + tile == length
    else:
        assert starts == [0]
    overlaps = [a + tile - b for a, b in itertools.pairwise(starts)]
    assert all(overlap >= min_overlap for overlap in overlaps)
    # the fewest tiles: one tile fewer could not keep the overlap
    if len(starts) > 1:
        assert (len(starts) - 1) * (tile - min_overlap) + min_overlap < length


def test_overlapping_starts_rejects_overlap_not_smaller_than_tile():
    with pytest.raises(ValueError, match="min_overlap"):
        overlapping_starts(1000, 640, 640)


@pytest.mark.parametrize("length", [1, 207, 494, 640, 641, 1249, 2299])
def test_partition_is_disjoint_contiguous_and_no_piece_exceeds_the_tile(length):
    edges = partition_edges(length, 640)
    assert edges[0][0] == 0 and edges[-1][1] == length
    assert all(a1 == b0 for (_, a1), (b0, _) in itertools.pairwise(edges))
    assert all(0 < b - a <= 640 for a, b in edges)
    assert len(edges) == -(-length // 640)


def test_every_box_smaller_than_the_overlap_lies_whole_in_some_tile():
    rng = np.random.default_rng(0)
    region = Window(0, 0, 1914, 2299)
    xy = rng.uniform(0, [region.x1 - 120, region.y1 - 120], (500, 2))
    boxes = np.hstack([xy, xy + rng.uniform(5, 120, (500, 2))])
    tiles = grid_windows(region, 640, 128)
    assert all(region.contains(t) for t in tiles)
    whole = np.zeros(len(boxes), bool)
    for tile in tiles:
        inside = (
            (boxes[:, 0] >= tile.x0) & (boxes[:, 1] >= tile.y0) & (boxes[:, 2] <= tile.x1) & (boxes[:, 3] <= tile.y1)
        )
        whole |= inside
    assert whole.all()


def test_clipping_shifts_boxes_into_tile_coordinates_and_drops_slivers():
    window = Window(100, 200, 740, 840)
    boxes = np.array(
        [
            [150, 250, 190, 300],  # inside: kept, shifted by (-100, -200)
            [80, 300, 120, 340],  # 50% visible, 20 px wide: kept, clipped at x=100
            [90, 300, 110, 340],  # 50% visible but 10 px: kept (>= 4 px)
            [97, 300, 137, 340],  # 92% visible: kept
            [60, 300, 110, 340],  # 20% visible: sliver, dropped
            [720, 820, 743, 842],  # sides 20 x 20 of 23 x 22: kept
            [738, 500, 760, 540],  # 2 px wide after clipping: dropped
            [0, 0, 50, 50],  # outside: dropped
        ],
        dtype=float,
    )
    kept, mask = clip_boxes_to_window(boxes, window, min_visible_fraction=0.4, min_side=4)
    assert mask.tolist() == [True, True, True, True, False, True, False, False]
    np.testing.assert_allclose(kept[0], [50, 50, 90, 100])
    np.testing.assert_allclose(kept[1], [0, 100, 20, 140])
    np.testing.assert_allclose(kept[4], [620, 620, 640, 640])
    assert (kept >= 0).all() and (kept <= 640).all()


def test_yolo_lines_are_normalised_centre_and_size():
    lines = yolo_label_lines(np.array([[0, 0, 64, 32], [600, 620, 640, 640]]), 640, 640)
    assert lines == ["0 0.050000 0.025000 0.100000 0.050000", "0 0.968750 0.984375 0.062500 0.031250"]


def test_held_out_strip_is_separated_from_training_tiles_by_the_guard_band():
    plans, strip = plan_source_tiles("S", 2299, 2472)
    train = [p.window for p in plans if p.split == "train"]
    val = [p.window for p in plans if p.split == "val"]
    assert strip == Window(0, 2472 - round(0.2 * 2472), 2299, 2472)
    assert max(w.y1 for w in train) == strip.y0 - data.HOLDOUT_GUARD
    assert not any(t.intersects(strip) for t in train)
    assert all(strip.contains(v) for v in val)
    assert sum(v.width * v.height for v in val) == strip.width * strip.height


VOC = """<annotation><size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objects}</annotation>"""
OBJ = "<object><name>Tree</name><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>"


def test_voc_size_must_match_the_real_image():
    xml = VOC.format(w=400, h=400, objects=OBJ.format(1, 1, 30, 30))
    with pytest.raises(DatasetError, match=r"annotation says 400x400 but the image is 400x300"):
        parse_voc(xml, (400, 300), "X")


def test_voc_boxes_are_clipped_to_the_image_and_degenerate_ones_dropped():
    objects = "".join(
        OBJ.format(*b)
        for b in [(1, 1, 30, 30), (390, 10, 420, 40), (50, 50, 50, 60), (70, 80, 60, 90), (500, 5, 600, 9)]
    )
    annotation = parse_voc(VOC.format(w=400, h=400, objects=objects), (400, 400), "X")
    np.testing.assert_allclose(annotation.boxes, [[1, 1, 30, 30], [390, 10, 400, 40]])
    assert (annotation.clipped, annotation.dropped) == (1, 3)


def test_unreadable_voc_is_a_one_line_error():
    with pytest.raises(DatasetError, match="X: unreadable VOC annotation"):
        parse_voc("<annotation><size>", (400, 400), "X")


# --------------------------------------------------------------------------------------------- bad input (fast)
def test_corrupt_wheel_is_a_one_line_error(tmp_path):
    fake = tmp_path / data.DEEPFOREST_WHEEL_NAME
    fake.write_bytes(b"not a wheel")
    with pytest.raises(DatasetError) as info:
        build_neon_trees(tmp_path / "ds", wheel=fake)
    assert "sha256" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "ds").exists()


def test_missing_wheel_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv(data.WHEEL_ENV, str(tmp_path / "nowhere.whl"))
    with pytest.raises(DatasetError, match=r"nowhere\.whl: file not found"):
        build_neon_trees(tmp_path / "ds")


def test_failed_download_says_how_to_build_offline(tmp_path, monkeypatch):
    monkeypatch.setenv(data.HOME_ENV, str(tmp_path))
    monkeypatch.delenv(data.WHEEL_ENV, raising=False)
    failure = subprocess.CompletedProcess([], 1, "", "ERROR: No matching distribution found for deepforest==2.1.0\n")
    monkeypatch.setattr(wheel_module, "_run_pip_download", lambda dest: failure)
    with pytest.raises(DatasetError, match=f"No matching distribution.*set {data.WHEEL_ENV}"):
        build_neon_trees()


def test_wheel_with_missing_files_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(wheel_module, "DEEPFOREST_WHEEL_SHA256", None)  # accept a stand-in wheel
    wheel = tmp_path / "stand-in.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("deepforest/__init__.py", "")
    with pytest.raises(DatasetError, match=r"has no deepforest/data/2019_YELL"):
        build_neon_trees(tmp_path / "ds", wheel=wheel)


def test_refuses_to_overwrite_a_directory_it_did_not_build(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(DatasetError, match="refusing to overwrite"):
        build_neon_trees(tmp_path / "mine", force=True, wheel=tmp_path / "unused.whl")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_resolve_data_passes_other_values_through(tmp_path):
    assert resolve_data("coco8.yaml") == "coco8.yaml"
    assert resolve_data(tmp_path / "x.yaml") == str(tmp_path / "x.yaml")


def test_every_registered_name_resolves_to_its_built_data_yaml(tmp_path, monkeypatch):
    assert "neon-trees" in DATASETS
    built = []
    for name, dataset in list(DATASETS.items()):
        assert dataset.name == name and dataset.description

        def fake_build(name=name) -> Path:  # stands in for the real build: nothing is downloaded
            built.append(name)
            return tmp_path / name / "data.yaml"

        monkeypatch.setitem(DATASETS, name, Dataset(name, dataset.description, fake_build))
        for value in (name, f"{name}.yaml"):
            assert Path(resolve_data(value)).name == "data.yaml"
    assert built == [name for name in DATASETS for _ in range(2)]
    monkeypatch.chdir(tmp_path)
    Path("neon-trees.yaml").write_text("path: .\n")  # an existing file of that name wins over the registry
    assert resolve_data("neon-trees.yaml") == "neon-trees.yaml"


def test_synthetic_dataset_still_writes_valid_labels(tmp_path):
    data_yaml = data.make_synthetic_dataset(tmp_path, n_train=2, n_val=1, imgsz=32, boxes_per_image=2)
    assert yaml.safe_load(data_yaml.read_text())["names"] == {0: "box"}
    labels = sorted((tmp_path / "labels").rglob("*.txt"))
    assert len(labels) == 3 and all(len(p.read_text().splitlines()) == 2 for p in labels)


# ------------------------------------------------------------------------------------------ real neon-trees (slow)
@pytest.fixture(scope="session")
def deepforest_wheel(tmp_path_factory) -> Path:
    """The deepforest 2.1.0 wheel, downloaded once per session (or taken from LCNET_YOLO_DEEPFOREST_WHEEL)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(data.HOME_ENV, str(tmp_path_factory.mktemp("wheel-home")))
        return data.fetch_deepforest_wheel()


@pytest.fixture(scope="session")
def neon_home(tmp_path_factory, deepforest_wheel) -> Path:
    """A cache home holding the built dataset at its default place."""
    home = tmp_path_factory.mktemp("lcnet-yolo-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(data.HOME_ENV, str(home))
        build_neon_trees(wheel=deepforest_wheel)
    return home


@pytest.fixture
def neon_env(neon_home, deepforest_wheel, monkeypatch) -> Path:
    monkeypatch.setenv(data.HOME_ENV, str(neon_home))
    monkeypatch.setenv(data.WHEEL_ENV, str(deepforest_wheel))
    return neon_home / "datasets" / "neon-trees"


def _label_rows(root: Path, split: str) -> dict[str, np.ndarray]:
    return {p.stem: np.loadtxt(p, ndmin=2).reshape(-1, 5) for p in sorted((root / "labels" / split).glob("*.txt"))}


@pytest.mark.slow
def test_split_counts_on_disk_equal_the_manifest(neon_env):
    manifest = read_manifest(neon_env)
    total_source_boxes = sum(s["boxes"] for s in manifest["sources"].values())
    assert total_source_boxes == 951  # 574 + 279 (YELL) + 61 (OSBS_029) + 37 (SOAP_061)
    for split in ("train", "val"):
        images = sorted((neon_env / "images" / split).glob("*.png"))
        labels = _label_rows(neon_env, split)
        assert [p.stem for p in images] == sorted(labels)
        assert len(images) == manifest["splits"][split]["images"] > 0
        assert sum(len(rows) for rows in labels.values()) == manifest["splits"][split]["boxes"]
    val_labels = _label_rows(neon_env, "val")
    assert (len(val_labels["OSBS_029"]), len(val_labels["SOAP_061"])) == (61, 37)  # whole images, every box kept


@pytest.mark.slow
def test_every_label_line_is_class_zero_with_coordinates_in_unit_range(neon_env):
    for split in ("train", "val"):
        for stem, rows in _label_rows(neon_env, split).items():
            assert (rows[:, 0] == 0).all(), stem
            assert ((rows[:, 1:] > 0) & (rows[:, 1:] <= 1)).all(), stem
            half = rows[:, 3:5] / 2
            assert (rows[:, 1:3] - half >= -1e-6).all() and (rows[:, 1:3] + half <= 1 + 1e-6).all(), stem
            width, height = Image.open(neon_env / "images" / split / f"{stem}.png").size
            assert width <= data.TILE_SIZE and height <= data.TILE_SIZE
            assert (rows[:, 3] * width >= data.MIN_BOX_SIDE - 1e-3).all(), stem
            assert (rows[:, 4] * height >= data.MIN_BOX_SIDE - 1e-3).all(), stem


@pytest.mark.slow
def test_no_training_tile_overlaps_the_held_out_strip(neon_env):
    manifest = read_manifest(neon_env)
    tiles = manifest["tiles"]
    assert set(manifest["holdout"]) == {"YELL_528000_4978000", "YELL_541000_4977000"}
    for source, strip in manifest["holdout"].items():
        strip = Window(*strip)
        train = [Window(*t["window"]) for t in tiles if t["split"] == "train" and t["source"] == source]
        val = [Window(*t["window"]) for t in tiles if t["split"] == "val" and t["source"] == source]
        assert train and val
        assert not any(t.intersects(strip) for t in train)
        assert not any(t.intersects(v) for t in train for v in val)
        assert all(strip.contains(v) for v in val)
        assert min(v.y0 for v in val) - max(t.y1 for t in train) >= data.HOLDOUT_GUARD
        width, height = manifest["sources"][source]["size"]
        assert strip.x1 == width and strip.y1 == height
    assert not any(t["split"] == "train" for t in tiles if t["source"] in ("OSBS_029", "SOAP_061"))


@pytest.mark.slow
def test_tiles_hold_the_source_pixels_of_their_window(neon_env, deepforest_wheel):
    manifest = read_manifest(neon_env)
    with zipfile.ZipFile(deepforest_wheel) as archive:
        for source, info in manifest["sources"].items():
            with archive.open(f"deepforest/data/{info['file']}") as handle:
                pixels = np.asarray(Image.open(handle).convert("RGB"))
            tiles = [t for t in manifest["tiles"] if t["source"] == source]
            for tile in (tiles[0], tiles[-1]):
                x0, y0, x1, y1 = tile["window"]
                np.testing.assert_array_equal(np.asarray(Image.open(neon_env / tile["image"])), pixels[y0:y1, x0:x1])


@pytest.mark.slow
def test_ultralytics_accepts_the_dataset(neon_env):
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    info = check_det_dataset(str(neon_env / "data.yaml"))
    assert info["nc"] == 1 and info["names"] == {0: "tree"}
    manifest = read_manifest(neon_env)
    for split in ("train", "val"):
        dataset = YOLODataset(img_path=info[split], data=info, task="detect", imgsz=320, augment=False)
        assert len(dataset) == manifest["splits"][split]["images"]
        assert sum(len(label["cls"]) for label in dataset.labels) == manifest["splits"][split]["boxes"]
    assert verify_dataset(neon_env) is None  # Ultralytics' label caches do not count as damage


@pytest.mark.slow
def test_resolve_data_maps_the_name_to_the_cached_dataset_without_rebuilding(neon_env, capsys):
    before = (neon_env / "manifest.json").stat().st_mtime_ns
    assert resolve_data("neon-trees") == resolve_data("neon-trees.yaml") == str(neon_env / "data.yaml")
    assert "using" in capsys.readouterr().out
    assert (neon_env / "manifest.json").stat().st_mtime_ns == before
    assert yaml.safe_load((neon_env / "data.yaml").read_text())["path"] == str(neon_env)


@pytest.mark.slow
def test_deepforest_image_extracts_the_unlabelled_demo_image(neon_env):
    path = data.deepforest_image("SOAP_031.png")
    assert path.parent == neon_env.parents[1] / "deepforest"
    assert Image.open(path).size == (400, 400)
    path.write_bytes(path.read_bytes()[:1000])  # truncated: extracted again
    assert Image.open(data.deepforest_image("SOAP_031.png")).size == (400, 400)
    with pytest.raises(DatasetError, match=r"no image 'nope.png'.*SOAP_031.png"):
        data.deepforest_image("nope.png")


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["delete label", "truncate image", "delete manifest"])
def test_damaged_cache_is_rebuilt_to_the_same_files(neon_env, deepforest_wheel, tmp_path, damage, capsys):
    copy = tmp_path / "neon-trees"
    shutil.copytree(neon_env, copy)
    original = read_manifest(neon_env)
    label = copy / original["tiles"][0]["label"]
    image = copy / original["tiles"][-1]["image"]
    if damage == "delete label":
        label.unlink()
    elif damage == "truncate image":
        image.write_bytes(image.read_bytes()[:5000])
    else:
        (copy / "manifest.json").unlink()
    assert verify_dataset(copy) is not None
    build_neon_trees(copy, wheel=deepforest_wheel)
    assert "rebuilding" in capsys.readouterr().out
    assert verify_dataset(copy) is None
    assert read_manifest(copy)["files"] == original["files"]  # deterministic build
    assert yaml.safe_load((copy / "data.yaml").read_text())["path"] == str(copy.resolve())


@pytest.mark.slow
def test_damaged_cached_wheel_is_downloaded_again(deepforest_wheel, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(data.HOME_ENV, str(tmp_path))
    monkeypatch.delenv(data.WHEEL_ENV, raising=False)
    cached = tmp_path / "downloads" / data.DEEPFOREST_WHEEL_NAME
    cached.parent.mkdir()
    cached.write_bytes(deepforest_wheel.read_bytes()[:100_000])  # an interrupted download
    calls = []

    def fake_pip(dest):
        calls.append(dest)
        shutil.copy(deepforest_wheel, dest / data.DEEPFOREST_WHEEL_NAME)
        return subprocess.CompletedProcess([], 0, "", "")

    monkeypatch.setattr(wheel_module, "_run_pip_download", fake_pip)
    assert data.fetch_deepforest_wheel() == cached
    assert len(calls) == 1 and cached.stat().st_size == deepforest_wheel.stat().st_size
    out = capsys.readouterr().out
    assert "is damaged" in out and f"downloaded {data.DEEPFOREST_WHEEL_NAME} (20.6 MB)" in out
    assert data.fetch_deepforest_wheel() == cached and len(calls) == 1  # reused


@pytest.mark.slow
def test_two_concurrent_builds_end_with_one_valid_dataset(deepforest_wheel, tmp_path):
    root = tmp_path / "shared" / "neon-trees"
    code = "import sys; from lcnet_yolo import data; print(data.build_neon_trees(sys.argv[1], wheel=sys.argv[2]))"
    env = {**os.environ, "PYTHONPATH": SRC, "LCNET_YOLO_HOME": str(tmp_path / "home")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(root), str(deepforest_wheel)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert all(out.strip().endswith(str(root / "data.yaml")) for out in outputs)
    assert sum("neon-trees: built" in out for out in outputs) == 1
    assert sum("neon-trees: using" in out for out in outputs) == 1
    assert verify_dataset(root) is None
    assert sorted(p.name for p in root.parent.iterdir()) == [".neon-trees.lock", "neon-trees"]  # no temp dirs left
