"""Every command line the documentation shows, run as a user runs it: the installed executable in a subprocess.

The commands are read from the fenced code blocks of README.md's "Command line" section and of runtime/README.md
(every line starting with ``lcnet-yolo`` or ``lcnet-yolo-infer``; an indented line continues the one above). What a
reader has and the test does not (their trained ``best.pt``, their pictures, ``neon-trees``) is mapped through ONE
table, :data:`PLACEHOLDERS`, to files the test made: a model trained 1 epoch at 64 px on synthetic data, its ONNX
export, a few pictures and a short video. A path, an UPPERCASE placeholder, an ``[optional]`` group or a ``data=``
value that the table does not know fails the test, so that a new documented command cannot go untested.
:data:`BUDGET` appends arguments that keep a command to seconds (smaller images, one epoch, fewer formats); it
never replaces a path. Each command must exit 0, print no traceback, and leave the outputs it promises.

``tests/test_cli.py`` keeps the in-process tests of the same modes; these are what a user runs.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from lcnet_yolo.plugin.register import packaged_models

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED = {ROOT / "README.md": "Command line", ROOT / "runtime" / "README.md": None}  # file -> section (None: all)
EXECUTABLES = ("lcnet-yolo", "lcnet-yolo-infer")
BIN = Path(sys.executable).parent
TIMEOUT_S = 600
IMGSZ = 64  # the size the test model was trained and exported at

# README word -> what the test runs instead ({name} is a file made by the fixtures, relative paths are in the
# command's own working folder). Keys: whole values (`key=VALUE`, `--opt VALUE`, a positional), UPPERCASE
# placeholders, and whole `[optional]` groups of a synopsis ("" leaves the group out).
PLACEHOLDERS = {
    "runs/detect/train/weights/best.pt": "{pt}",  # the reader's trained model
    "best.pt": "{pt}",
    "runs/demo/train/weights/best.pt": "{pt}",
    "best.onnx": "{onnx}",
    "runs/detect/train/weights/best.onnx": "{onnx}",  # the reader's exports of it
    "runs/detect/train/weights/best_openvino_model": "{openvino}",
    "runs/detect/train/weights/best_ncnn_model": "{ncnn}",
    "path/to/images": "{images}",  # a folder of pictures
    "image.png": "{image}",
    "image.jpg": "{image}",
    "video.mp4": "{video}",
    "clip.mp4": "{video}",
    "neon-trees": "{data}",  # data= names and files: the synthetic dataset
    "path/to/data.yaml": "{data}",
    "MODEL": "{onnx}",  # lcnet-yolo-infer's synopsis
    "SOURCE": "{images}",
    "[--quick]": "--quick",
    "[--save]": "--save",
    "[--json]": "--json",
    "[--conf 0.25]": "--conf 0.25",
    "[--iou 0.7]": "--iou 0.7",
    "[--max-det 300]": "--max-det 300",
    "[--output runs/infer]": "--output runs/infer",
    "[--names a,b,c]": "",  # only for models without metadata; ours has its names
    "[--imgsz 640]": "",  # a fixed-size export runs at its own size only
    "[--threads N]": "--threads 1",
    "runs/infer": "runs/infer",  # an output folder in the command's working folder
}
# Names that are not the reader's files: packaged model YAMLs and Ultralytics' tracker configurations.
KNOWN_NAMES = {*packaged_models(), "bytetrack.yaml", "botsort.yaml"}
FILE_SUFFIXES = (".pt", ".onnx", ".xml", ".png", ".jpg", ".jpeg", ".mp4", ".avi", ".yaml", ".yml", ".safetensors")

# Arguments appended to keep a command to seconds (the last value of a key wins in `lcnet-yolo`): first words -> args.
BUDGET = {
    ("lcnet-yolo", "train"): f"epochs=1 imgsz={IMGSZ} batch=4 workers=0 device=cpu plots=False",
    ("lcnet-yolo", "val"): f"imgsz={IMGSZ} batch=4 workers=0 device=cpu",
    ("lcnet-yolo", "predict"): f"imgsz={IMGSZ} device=cpu conf=0.001",  # the barely trained model draws boxes
    ("lcnet-yolo", "track"): f"imgsz={IMGSZ} device=cpu conf=0.001",
    ("lcnet-yolo", "export"): f"imgsz={IMGSZ} device=cpu",
    ("lcnet-yolo", "formats"): f"--data {{data}} --imgsz {IMGSZ} --runs 2 --formats pt,onnx --threads 1",
}
SLOW = {"train", "formats", "info", "demo", "track"}  # second words of commands that take more than ~10 s here


def documented_commands(path: Path, section: str | None) -> list[str]:
    """Command lines of the fenced code blocks in ``path`` (in the level-2 ``section`` only, if given)."""
    text = path.read_text(encoding="utf-8")
    if section is not None:
        match = re.search(rf"^## {re.escape(section)}\s*$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
        assert match, f"{path.name} has no '## {section}' section"
        text = match.group(1)
    commands: list[str] = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S):
        current: str | None = None
        for line in block.splitlines():
            code = re.sub(r"\s+#.*$", "", line).rstrip()
            if current is not None and code[:1].isspace():  # an indented line continues the command
                current += " " + code.strip()
                continue
            if current is not None:
                commands.append(current)
            current = code if code.split(" ", 1)[0] in EXECUTABLES else None
        if current is not None:
            commands.append(current)
    return commands


def all_commands() -> list[str]:
    return [command for path, section in DOCUMENTED.items() for command in documented_commands(path, section)]


def _needs_mapping(value: str) -> bool:
    """A value that names something of the reader's: a path, a file, or an UPPERCASE placeholder."""
    if value in KNOWN_NAMES:
        return False
    return "/" in value or value.lower().endswith(FILE_SUFFIXES) or bool(re.fullmatch(r"[A-Z][A-Z_]*", value))


def _mapped(value: str, files: dict[str, str]) -> str:
    if value not in PLACEHOLDERS:
        raise AssertionError(f"'{value}' is not in PLACEHOLDERS: map it to a file the test makes")
    return PLACEHOLDERS[value].format_map(files)


class Files(dict):
    """The files :data:`PLACEHOLDERS` names; OpenVINO and NCNN exports of the test model are made when first named."""

    def __missing__(self, key: str) -> str:
        if key not in {"openvino", "ncnn"}:
            raise KeyError(key)
        from ultralytics import YOLO

        folder = Path(self["onnx"]).parent
        self[key] = str(YOLO(folder / "best.pt").export(format=key, imgsz=IMGSZ, device="cpu"))
        return self[key]


def as_run(command: str, files: dict[str, str]) -> list[str]:
    """The documented ``command`` as the test runs it: placeholders mapped, budget appended."""
    for group in re.findall(r"\[[^\]]*\]", command):
        command = command.replace(group, _mapped(group, files), 1)
    words: list[str] = []
    for word in shlex.split(command):
        key, sep, value = word.rpartition("=") if "=" in word and not word.startswith("-") else ("", "", word)
        if key == "data" or _needs_mapping(value):
            value = _mapped(value, files)
        words.append(f"{key}{sep}{value}")
    budget = BUDGET.get(tuple(words[:2]), "")
    return [*words, *shlex.split(budget.format_map(files))]


@dataclass
class Ran:
    """One finished command: its words, exit status, output and the folders it ran in."""

    words: list[str]
    returncode: int
    output: str
    cwd: Path
    new_runs: list[Path]


def run_documented(words: list[str], cwd: Path, env: dict[str, str], runs_dir: Path) -> Ran:
    """Run ``words`` with the installed executable in ``cwd``; new Ultralytics run folders are noted."""
    executable = BIN / words[0]
    assert executable.is_file(), f"{executable} is not installed"
    before = set(runs_dir.glob("*/*"))
    proc = subprocess.run(
        [str(executable), *words[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    new_runs = sorted(set(runs_dir.glob("*/*")) - before)
    return Ran(words, proc.returncode, proc.stdout + proc.stderr, cwd, new_runs)


def check_ran_cleanly(ran: Ran) -> None:
    shown = " ".join(ran.words)
    assert ran.returncode == 0, f"{shown}: exit {ran.returncode}\n{ran.output[-3000:]}"
    assert "Traceback" not in ran.output, f"{shown}:\n{ran.output[-3000:]}"


def _one_run(ran: Ran, prefix: str) -> Path:
    runs = [run for run in ran.new_runs if run.name.startswith(prefix)]
    assert len(runs) == 1, f"{' '.join(ran.words)}: expected one new {prefix}* run folder, got {ran.new_runs}"
    return runs[0]


def _stems(folder: Path) -> set[str]:
    return {p.stem for p in folder.iterdir() if p.is_file() and p.stat().st_size > 0}


def check_promised_outputs(ran: Ran, files: dict[str, str]) -> None:
    """The outputs the documented command promises exist (annotated pictures, video, export, JSON...)."""
    words, output = ran.words, ran.output
    args = dict(w.split("=", 1) for w in words[2:] if "=" in w and not w.startswith("-"))
    mode = words[1] if len(words) > 1 else ""
    positional = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    source = Path(positional[1] if words[0] == "lcnet-yolo-infer" else args.get("source", files["images"]))
    pictures = {p.stem for p in source.iterdir()} if source.is_dir() else {source.stem}
    if words[0] == "lcnet-yolo-infer":
        out = ran.cwd / words[words.index("--output") + 1] if "--output" in words else ran.cwd / "runs" / "infer"
        if "--save" in words:
            assert _stems(out) >= pictures, f"annotated pictures missing in {out}: {sorted(out.iterdir())}"
        if "--json" in words:
            records = json.loads((out / "results.json").read_text())
            assert len(records) == len(pictures) and all("detections" in r for r in records), records
        assert output.count("\n") >= len(pictures)  # one line per picture
    elif mode in {"--help", "help"} or words[1:] == []:
        assert "Usage:" in output and "yolov8n-pplcnet" in output
    elif mode == "train":
        run = _one_run(ran, "train")
        assert (run / "weights" / "best.pt").is_file() and (run / "results.csv").is_file()
    elif mode == "val":
        _one_run(ran, "val")
        assert re.search(r"\ball\s+\d+\s+\d+\s+[\d.]+", output), output[-2000:]  # Ultralytics' metrics line
    elif mode == "predict":
        run = _one_run(ran, "predict")
        assert _stems(run) >= pictures, f"annotated pictures missing in {run}: {sorted(run.iterdir())}"
        if args.get("save_txt", "").lower() in {"true", "1"} or "save_txt" in words:
            labels = run / "labels"
            assert _stems(labels) >= pictures, f"label files missing in {labels}"
            rows = [line.split() for p in labels.iterdir() for line in p.read_text().splitlines()]
            assert rows and all(len(row) == 5 and row[0] == "0" for row in rows), rows[:5]
    elif mode == "track":
        run = _one_run(ran, "track")
        videos = [p for p in run.iterdir() if p.stem == source.stem and p.suffix in {".avi", ".mp4"}]
        assert videos and videos[0].stat().st_size > 1000, sorted(run.iterdir())
    elif mode == "export":
        model, fmt = Path(args["model"]), args.get("format", "torchscript")
        exported = {
            "onnx": model.with_suffix(".onnx"),
            "torchscript": model.with_suffix(".torchscript"),
            "openvino": model.parent / f"{model.stem}_openvino_model" / f"{model.stem}.xml",
            "ncnn": model.parent / f"{model.stem}_ncnn_model" / "model.ncnn.bin",
        }.get(fmt)
        assert exported is not None, f"no promised file known for format={fmt}: add it here"
        assert exported.is_file() and exported.stat().st_size > 1000, f"{words}: no {exported}"
    elif mode == "convert":
        assert Path(words[2]).with_suffix(".safetensors").is_file()
    elif mode == "formats" and "--support" in words:
        for fmt in ("onnx", "openvino", "ncnn"):
            assert re.search(rf"^\| `{fmt}` \| .+ \| yes: export, predict, val", output, re.M), output
    elif mode == "formats":
        for label in ("PyTorch (.pt)", "ONNX"):
            assert re.search(rf"^\| {re.escape(label)} \| [^|]+ \| ok \(\d+\) \| [\d.]+ \|", output, re.M), output
    elif mode == "info" and "model=" in " ".join(words):
        assert re.search(r"\d+ layers, [\d,]+ parameters", output), output
    elif mode == "info":
        assert re.search(r"^\| yolov8n-pplcnet \| PP-LCNet ", output, re.M), output
    elif mode == "weights":
        assert re.search(r"^imagenet\s+x0\.25\s", output, re.M), output
    elif mode == "benchmark":
        assert "usage: " in output
    elif mode == "demo":
        assert "lcnet-yolo demo finished" in output
        assert (ran.cwd / "runs" / "demo" / "train" / "weights" / "best.pt").is_file()
        assert list((ran.cwd / "runs" / "demo" / "predict").iterdir())
    else:
        raise AssertionError(f"no promised outputs known for {words[:2]}: add them to check_promised_outputs")


def make_video(path: Path, frames: int = 12, size: int = 64) -> Path:
    """A short mp4 of a bright square moving over a dark background."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (size, size))
    assert writer.isOpened(), "OpenCV cannot write mp4 here"
    for i in range(frames):
        frame = np.full((size, size, 3), 40, np.uint8)
        cv2.rectangle(frame, (4 + 2 * i, 10), (24 + 2 * i, 30), (220, 220, 220), -1)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="session")
def documented_files(tmp_path_factory, best_pt) -> Files:
    """The files :data:`PLACEHOLDERS` maps to: model, ONNX, dataset, pictures, video (made once per session)."""
    from ultralytics import YOLO

    from lcnet_yolo.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("documented")
    data = make_synthetic_dataset(root / "data", n_train=8, n_val=4, imgsz=IMGSZ, seed=1)
    images = root / "images"
    images.mkdir()
    for picture in sorted((root / "data" / "images" / "val").glob("*.png"))[:2]:
        shutil.copy(picture, images / picture.name)
    exports = root / "exports"
    exports.mkdir()
    shutil.copy(best_pt, exports / "best.pt")
    onnx = YOLO(exports / "best.pt").export(format="onnx", imgsz=IMGSZ, device="cpu")
    return Files(
        pt_source=str(best_pt),
        onnx=str(onnx),
        data=str(data),
        images=str(images),
        image=str(sorted(images.iterdir())[0]),
        video=str(make_video(root / "clip.mp4")),
    )


@pytest.fixture(scope="session")
def runs_dir() -> Path:
    from ultralytics.utils import SETTINGS  # where the executable's Ultralytics puts runs (conftest isolates it)

    return Path(SETTINGS["runs_dir"])


def _command_params() -> list:
    params = []
    for command in all_commands():
        words = command.split()
        marks = [pytest.mark.slow] if len(words) > 1 and words[1] in SLOW else []
        params.append(pytest.param(command, marks=marks, id=command))
    return params


def test_documentation_shows_commands_of_both_executables():
    commands = all_commands()
    assert any(c.startswith("lcnet-yolo predict ") for c in commands), commands
    assert any(c.startswith("lcnet-yolo track ") for c in commands), commands
    assert any(c.startswith("lcnet-yolo-infer ") for c in commands), commands


def test_an_unmapped_path_fails_the_mapping():
    files = Files(pt="/x/best.pt", onnx="/x/best.onnx", data="/x/data.yaml", images="/x", image="/x/a.png")
    files["video"] = "/x/v.mp4"
    assert as_run("lcnet-yolo predict model=best.pt source=image.png", files)[2:4] == [
        "model=/x/best.pt",
        "source=/x/a.png",
    ]
    for unmapped in ("source=my/pictures", "model=other.pt", "data=coco8", "[--verbose]"):
        with pytest.raises(AssertionError, match="is not in PLACEHOLDERS"):
            as_run(f"lcnet-yolo predict model=best.pt {unmapped}", files)
    assert as_run("lcnet-yolo train model=yolov8n-pplcnet.yaml", files)[2] == "model=yolov8n-pplcnet.yaml"


@pytest.mark.parametrize("command", _command_params())
def test_documented_command_runs_through_the_installed_executable(
    command, documented_files, subprocess_env, runs_dir, tmp_path
):
    files = documented_files  # shared: exports made on first use are kept for the session
    files["pt"] = str(shutil.copy(files["pt_source"], tmp_path / "best.pt"))  # exports land beside this copy
    words = as_run(command, files)
    ran = run_documented(words, tmp_path, subprocess_env, runs_dir)
    check_ran_cleanly(ran)
    check_promised_outputs(ran, files)


@pytest.fixture(scope="session")
def exported_models(documented_files) -> dict[str, str]:
    """The test model as .pt and exported (fixed 64 px) to ONNX, OpenVINO and NCNN."""
    files = documented_files
    return {"pt": files["pt_source"], "onnx": files["onnx"], "openvino": files["openvino"], "ncnn": files["ncnn"]}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pt", "onnx", "openvino", "ncnn"])
@pytest.mark.parametrize("mode", ["predict", "track"])
def test_predict_and_track_through_the_executable_on_every_format(
    mode, fmt, exported_models, documented_files, subprocess_env, runs_dir, tmp_path
):
    source = documented_files["video" if mode == "track" else "images"]
    words = ["lcnet-yolo", mode, f"model={exported_models[fmt]}", f"source={source}", f"imgsz={IMGSZ}"]
    ran = run_documented(words, tmp_path, subprocess_env, runs_dir)
    check_ran_cleanly(ran)
    check_promised_outputs(ran, documented_files)
    if fmt != "pt":
        name = re.escape(Path(exported_models[fmt]).name)
        assert re.search(rf"Loading \S*{name}", ran.output), ran.output[:2000]  # the export ran, not a .pt
