"""Data YAMLs from elsewhere: no ``download:`` script ever runs, whatever the spelling, and bad fields are one line.

Every attack YAML has a ``download:`` field that writes a marker file when it runs. The positive control shows that
Ultralytics' own ``check_det_dataset`` runs it for each spelling; then the same spelling goes through every entry
(``train``, ``val``, ``export int8=True``, ``formats --data``, ``python -m lcnet_yolo.quantize --data``,
``benchmark --data``), through the Python API (the trainer, :func:`trusted_data`) and the installed executable:
no marker, nothing written to the datasets folder, one line on stderr, exit status 2.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from lcnet_yolo.cli import main
from lcnet_yolo.data import DatasetError, make_synthetic_dataset, trusted_data
from lcnet_yolo.plugin import compat
from lcnet_yolo.plugin.trainers import LCNetDetectionTrainer

BIN = Path(sys.executable).parent
MODEL = "yolov8n-pplcnet.yaml"


def attack(folder: Path, spelling: str) -> tuple[str, Path]:
    """A data YAML whose images are missing and whose download script writes ``folder/ran``: (data=, marker)."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "ran"
    val_key = "validation" if spelling == "validation key" else "val"
    text = (
        f"path: {folder / 'missing'}\ntrain: images/train\n{val_key}: images/val\nnames: {{0: box}}\n"
        f"download: open({str(marker)!r}, 'w').close()\n"
    )
    if spelling == "bash script":
        (folder / "get.sh").write_text(f"#!/bin/sh\ntouch '{marker}'\n")
        text = text.replace(f"download: open({str(marker)!r}, 'w').close()", f"download: bash {folder / 'get.sh'}")
    name = {"upper-case suffix": "evil.YAML", "odd characters": "e v'il;$(x)&é.yaml", ".yml": "evil.yml"}
    path = folder / name.get(spelling, "evil.yaml")
    path.write_text(text)
    data = {
        "no suffix": "evil",  # run from ``folder``
        "folder holding it": str(folder),
        "relative": "./evil.yaml",
    }.get(spelling, str(path))
    return data, marker


SPELLINGS = [
    "plain", "no suffix", "upper-case suffix", ".yml", "folder holding it", "validation key", "odd characters",
    "relative", "bash script",
]  # fmt: skip


def datasets_snapshot() -> set[str]:
    """Every file under Ultralytics' datasets folder (where a download or unpacked archive would land)."""
    root = compat.DATASETS_DIR
    return {str(p) for p in root.rglob("*")} if root.exists() else set()


@pytest.fixture
def in_folder(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_positive_control_ultralytics_runs_the_download_script(spelling, in_folder):
    data, marker = attack(in_folder, spelling)
    with contextlib.suppress(Exception):  # the script ran; the images are still missing for the checks after it
        compat.check_det_dataset(data)  # Ultralytics alone: "Dataset download success"
    assert marker.exists()


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_no_entry_runs_the_download_script(spelling, in_folder, capsys):
    data, marker = attack(in_folder, spelling)
    before = datasets_snapshot()
    with pytest.raises(
        DatasetError,
        match=r"images not found: .*missing.images.train, .*missing.images.val; its download: script is not run;",
    ):
        trusted_data(data)
    for args in (
        ["train", f"model={MODEL}", f"data={data}", "epochs=1", "imgsz=64", f"project={in_folder / 'runs'}"],
        ["val", f"model={MODEL}", f"data={data}", "imgsz=64", f"project={in_folder / 'runs'}"],
        ["export", f"model={MODEL}", "format=onnx", "int8=True", f"data={data}", "imgsz=64"],
    ):
        status = main(args)
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(err) == 1 and "images not found" in err[0], (args, err)
        assert err[0].startswith(f"lcnet-yolo {args[0]}: error: ")
    assert not (in_folder / "runs").exists()  # the command checks the data before it creates anything
    with pytest.raises(DatasetError, match="images not found"):  # the Python API's trainer
        LCNetDetectionTrainer(overrides={"data": data, "model": MODEL, "project": str(in_folder / "api")})
    assert [p.relative_to(in_folder).as_posix() for p in (in_folder / "api").rglob("*") if p.is_file()] == [
        "api/train/args.yaml"  # Ultralytics' trainer writes its arguments into its run folder first
    ]
    assert not marker.exists()
    assert datasets_snapshot() == before


def test_urls_and_archives_are_refused_before_anything_is_fetched(in_folder, capsys):
    archive = in_folder / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("evil/evil.yaml", "train: a\nval: b\nnames: [x]\n")
    disguised = in_folder / "disguised.yaml"
    disguised.write_bytes(archive.read_bytes())  # Ultralytics unpacks a zip whatever it is called
    for data, expected in (
        ("http://127.0.0.1:9/evil.yaml", "a URL"),
        ("https://example.com/coco.zip", "a URL"),
        ("ul://someone/datasets/evil", "a URL"),
        (str(archive), "an archive"),
        (str(disguised), "an archive"),
    ):
        with pytest.raises(DatasetError, match=expected):
            trusted_data(data)
        assert main(["val", f"model={MODEL}", f"data={data}", "imgsz=64"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err
    assert not (compat.DATASETS_DIR / "evil").exists()


def test_a_packaged_ultralytics_dataset_without_its_images_says_so():
    with pytest.raises(DatasetError) as error:
        trusted_data("coco8")
    message = str(error.value)
    assert "coco8.yaml is one of Ultralytics' packaged datasets: put its images there first" in message
    assert "images not found: " in message and "\n" not in message


def test_the_safety_net_stops_a_script_that_slips_past(in_folder):
    """Plain Ultralytics (no resolver): inside no_dataset_downloads its validator refuses instead of running it."""
    from ultralytics import YOLO

    data, marker = attack(in_folder, "plain")
    with compat.no_dataset_downloads(), pytest.raises(FileNotFoundError, match="images not found"):
        YOLO(MODEL).val(data=data, imgsz=64, device="cpu", project=str(in_folder / "runs"))
    assert not marker.exists()
    with compat.no_dataset_downloads(), pytest.raises(FileNotFoundError, match="URL or archive"):
        YOLO(MODEL).val(data="http://127.0.0.1:9/x.yaml", imgsz=64, device="cpu")


# ----------------------------------------------------------------------------------------- good data still works
@pytest.fixture(scope="module")
def good_data(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("good"), n_train=2, n_val=1, imgsz=32)


def test_a_local_dataset_passes_in_every_spelling(good_data, monkeypatch):
    monkeypatch.chdir(good_data.parent)
    expected = str(good_data.resolve())
    for spelling in (str(good_data), good_data.stem, good_data.name, str(good_data.parent)):
        assert trusted_data(spelling) == expected


# ------------------------------------------------------------------------------------------- fields: one line
BAD_FIELDS = {
    "val a dict": ({"val": {"a": 1}}, "'val' must be a folder or .txt list of images (a string), not dict"),
    "names a string": ({"names": "box"}, "'names' must be a list of class names or a {id: name} mapping, not str"),
    "nc -1": ({"nc": -1, "names": None}, "'nc' must be a positive integer (the number of classes), not -1"),
    "path a number": ({"path": 3}, "'path' must be a folder (a string), not int"),
    "channels 0": ({"channels": 0}, "'channels' must be a positive integer (3 for RGB images), not 0"),
    "names with gaps": ({"names": {0: "a", 2: "b"}}, "'names' must map class ids 0, 1, ..., n-1 to names"),
    "nc and names disagree": ({"nc": 3}, "'nc' is 3 but 'names' holds 1 classes"),
    "train missing": ({"train": None}, "'train:' key missing: train and val are required in a data YAML"),
}


@pytest.mark.parametrize("case", list(BAD_FIELDS))
def test_malformed_fields_are_one_line_naming_file_and_field(case, good_data, tmp_path, capsys):
    change, expected = BAD_FIELDS[case]
    config = yaml.safe_load(good_data.read_text())
    config["path"] = str(good_data.parent)
    config.update(change)
    config = {k: v for k, v in config.items() if v is not None}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    with pytest.raises(DatasetError) as error:
        trusted_data(bad)
    assert str(error.value) == f"{bad}: {expected}"
    assert main(["train", f"model={MODEL}", f"data={bad}", "epochs=1", "imgsz=64", f"project={tmp_path}"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"lcnet-yolo train: error: {bad}: {expected}"]


def test_an_empty_folder_and_unreadable_files_are_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"train: \xff\xfe\n")
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text("train: !!python/object/apply:os.system ['true']\nval: x\nnames: [a]\n")
    cases = {
        str(empty): f"data={empty}: the folder {empty} holds no data YAML (.yaml or .yml)",
        str(binary): f"{binary}: not UTF-8 text (byte 7)",
        str(tagged): f"{tagged}: holds a Python tag (!!python/...), refused (a data YAML is plain data)",
        "/dev/null": "/dev/null: not a regular file (a data YAML is a text file)",
    }
    for data, expected in cases.items():
        assert main(["val", f"model={MODEL}", f"data={data}", "imgsz=64"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"lcnet-yolo val: error: {expected}"), err


# ------------------------------------------------------------------------------------------------ seeded fuzz
FUZZ_VALUES = [
    None, 0, -1, 1, 3, 1.5, True, "", "images/train", "../x", "/nonexistent", "http://127.0.0.1:9/a.zip", [],
    [1, 2], ["images/train"], ["a", None], {}, {"a": 1}, {0: "a"}, {0: "a", 1: "b"}, {"0": "a"}, {-1: "a"}, "box",
    ["box"], [["box"]], {0: ["x"]}, "a" * 300, "ünïcödé", "\x00", float("nan"), 10**30,
]  # fmt: skip
FUZZ_KEYS = ["path", "train", "val", "validation", "test", "names", "nc", "channels", "download", "kpt_shape", 7]


def test_fuzzed_data_yamls_pass_or_give_one_line(good_data, tmp_path):
    """200 seeded mutations of a good data YAML (and some raw bytes): accepted, or one DatasetError line; no script
    runs (every mutation keeps a download field that would write a marker)."""
    rng = random.Random(20)
    base = yaml.safe_load(good_data.read_text())
    base["path"] = str(good_data.parent)
    marker = tmp_path / "ran"
    base["download"] = f"open({str(marker)!r}, 'w').close()"
    outcomes = {"accepted": 0, "refused": 0}
    for index in range(200):
        path = tmp_path / f"fuzz{index}.yaml"
        if index % 10 == 9:  # raw bytes: YAML syntax, tags, invalid UTF-8
            atoms = [b"train", b"val", b"names", b":", b" ", b"\n", b"- ", b"{", b"}", b"[", b"!!python/name:os.system",
                     b"&a", b"*a", b"\xff", b"'", b"\t", b"%TAG", b"0", b"nc"]  # fmt: skip
            path.write_bytes(b"".join(rng.choice(atoms) for _ in range(rng.randint(1, 40))))
        else:
            config = dict(base)
            for key in rng.sample(FUZZ_KEYS, rng.randint(1, 3)):
                config[key] = rng.choice(FUZZ_VALUES)
            try:
                path.write_text(yaml.safe_dump(config, allow_unicode=True))
            except yaml.YAMLError:
                continue
        try:
            trusted_data(path)
            outcomes["accepted"] += 1
        except DatasetError as error:
            outcomes["refused"] += 1
            assert str(error) and "\n" not in str(error)
    assert not marker.exists()
    assert outcomes["refused"] > 100 and outcomes["accepted"] > 5, outcomes


# ----------------------------------------------------------------------------------- the installed executables
def run_executable(args: list[str], cwd: Path, module: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", module] if module else [str(BIN / "lcnet-yolo")]
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_every_entry_of_the_executables_refuses_the_script(tmp_path):
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"not read: the data is checked first")
    entries = [
        ("train", ["train", f"model={MODEL}", "data=evil", "epochs=1", "imgsz=64", "project=runs"], None),
        ("val", ["val", f"model={MODEL}", "data={data}", "imgsz=64"], None),
        ("export", ["export", f"model={MODEL}", "format=onnx", "int8=True", "data={data}", "imgsz=64"], None),
        ("formats", ["formats", "--model", str(weights), "--data", "{data}", "--formats", "onnx"], None),
        ("quantize", ["--model", MODEL, "--data", "{data}", "--no-val", "--out", "int8"], "lcnet_yolo.quantize"),
        ("benchmark", ["benchmark", "--data", "{data}", "--epochs", "1", "--no-latency", "--out", "bench"], None),
    ]
    before = datasets_snapshot()
    for index, (entry, args, module) in enumerate(entries):
        folder = tmp_path / entry
        data, marker = attack(folder, SPELLINGS[index % len(SPELLINGS)])
        proc = run_executable([a.replace("{data}", data) for a in args], cwd=folder, module=module)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (entry, proc.stderr[-2000:])
        assert len(lines) == 1 and "images not found" in lines[0] and "Traceback" not in lines[0], (entry, lines)
        assert not marker.exists(), entry
        written = [p for p in folder.rglob("*") if p.is_file() and p.parent != folder]
        assert not written, (entry, written)  # nothing but (empty) output folders
    assert datasets_snapshot() == before
