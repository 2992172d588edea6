"""Faults as tested behaviour: damaged datasets, killed trainings, killed writes and racing runs."""

import csv
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lcnet_yolo.data import DatasetError, check_dataset, check_split, make_synthetic_dataset
from lcnet_yolo.io.runs import AtomicPath, reserve_save_dir, trim_results_csv
from lcnet_yolo.io.safe_load import safe_load
from lcnet_yolo.plugin.trainers import ReliableTrainerMixin

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC), "YOLO_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}

# What each damaged file holds, and the reason check_dataset must give for it (None: kept, with a note).
DAMAGE = {
    0: ("image", b"this is not an image", "not an image"),
    1: ("image", b"", "empty image file (0 bytes)"),
    2: ("image", "half", "undecodable image"),
    3: ("label", "0 0.5 nan 0.2 0.2\n", "line 1: NaN value"),
    4: ("label", "0 0.5 0.5 0.2 0.2\n0 -0.3 0.5 0.2 0.2\n", "line 2: negative coordinate -0.3"),
    5: ("label", "0 1.5 0.5 0.2 0.2\n", "line 1: coordinate 1.5 > 1"),
    6: ("label", "3 0.5 0.5 0.2 0.2\n", "line 1: class id 3 but the dataset has nc=1"),
    7: ("label", "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n0 0.3 0.3 0.1 0.1\n", "1 duplicate box(es), removed"),
    8: ("label", None, "no label file"),
    9: ("label", "", None),  # empty label file: a background image, like Ultralytics
}
CORRUPT = 7  # files 0..6 are skipped


def damage(root: Path, split: str) -> None:
    images = sorted((root / "images" / split).glob("*.png"))
    for index, (kind, content, _) in DAMAGE.items():
        image, label = images[index], root / "labels" / split / f"{images[index].stem}.txt"
        if kind == "image":
            image.write_bytes(image.read_bytes()[: image.stat().st_size // 2] if content == "half" else content)
        elif content is None:
            label.unlink()
        else:
            label.write_text(content)


@pytest.fixture(scope="module")
def damaged_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("damaged")
    data = make_synthetic_dataset(root, n_train=14, n_val=12, imgsz=64)
    damage(root, "train")
    damage(root, "val")
    return data


# ---------------------------------------------------------------------------------------------------- datasets
def test_dataset_check_names_each_bad_file_once_with_its_reason(damaged_data):
    lines: list[str] = []
    reports = check_dataset(damaged_data, log=lines.append)
    for split, report in reports.items():
        images = sorted((damaged_data.parent / "images" / split).glob("*.png"))
        for index, (_, _, reason) in DAMAGE.items():
            mentions = [line for line in lines if f"{split}_{index:04d}." in line]
            if reason is None:
                assert mentions == []
            else:
                assert len(mentions) == 1, mentions
                assert reason in mentions[0], mentions[0]
                assert mentions[0].startswith("skipped:" if index < CORRUPT else "note:")
        assert report.images == len(images)
        assert report.corrupt == CORRUPT and report.background == 2 and report.duplicates == 1
        assert report.usable == len(images) - CORRUPT
        usable = len(images) - CORRUPT
        summary = f"{split}: {len(images)} images, {usable} usable ({usable - 2} labelled, 2 background), 7 skipped"
        assert sum(line.startswith(summary) for line in lines) == 1, lines


@pytest.mark.parametrize("cut", [2, 400])  # only the end-of-image marker, or a real part of the data
def test_a_truncated_jpeg_is_skipped_as_ultralytics_does(tmp_path, cut):
    from PIL import Image
    from ultralytics.data.utils import verify_image_label

    make_synthetic_dataset(tmp_path, n_train=1, n_val=0, imgsz=64)
    png = tmp_path / "images" / "train" / "train_0000.png"
    jpg = png.with_suffix(".jpg")
    Image.open(png).save(jpg, quality=95)
    png.unlink()
    jpg.write_bytes(jpg.read_bytes()[:-cut])
    report = check_split([jpg], nc=1)
    ultralytics = verify_image_label((str(jpg), str(tmp_path / "labels/train/train_0000.txt"), "", 0, 1, 0, 0, 0))
    assert report.corrupt == ultralytics[8] == 1
    assert "truncated JPEG" in report.issues[0].reason


def test_dataset_check_never_modifies_files(damaged_data):
    root = damaged_data.parent
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()}
    check_dataset(damaged_data, log=None)
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()}
    assert before == after


def test_a_split_without_usable_images_is_one_clear_error(tmp_path):
    data = make_synthetic_dataset(tmp_path, n_train=2, n_val=1, imgsz=32)
    (tmp_path / "images" / "val" / "val_0000.png").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"data\.yaml: val has 0 usable images of 1"):
        check_dataset(data, log=None)


def test_a_data_yaml_whose_download_script_would_run_is_refused(tmp_path):
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.models.yolo.detect import DetectionTrainer

    class CheckedTrainer(ReliableTrainerMixin, DetectionTrainer):
        pass

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.yaml"
    evil.write_text(
        f"path: {tmp_path / 'missing'}\ntrain: images/train\nval: images/val\nnames: {{0: box}}\n"
        f"download: open({str(marker)!r}, 'w').close()\n"
    )
    with pytest.raises(DatasetError, match=r"evil\.yaml: images not found: .*; its download: script is not run"):
        CheckedTrainer(overrides={"data": str(evil), "model": "yolov8n-pplcnet.yaml", "project": str(tmp_path)})
    assert not marker.exists()
    check_det_dataset(str(evil))  # Ultralytics alone runs the script ("Dataset download success")
    assert marker.exists()


@pytest.mark.slow
def test_training_and_validation_run_on_the_good_part_and_agree_with_the_check(damaged_data, tmp_path):
    from ultralytics import YOLO
    from ultralytics.data.utils import load_dataset_cache_file
    from ultralytics.models.yolo.detect import DetectionTrainer

    lines: list[str] = []

    class CheckedTrainer(ReliableTrainerMixin, DetectionTrainer):
        def log_data_check(self, line: str) -> None:
            lines.append(line)

    ours = check_dataset(damaged_data, log=None)
    model = YOLO("yolov8n-pplcnet.yaml")
    model.train(
        data=str(damaged_data), epochs=1, imgsz=64, batch=4, workers=0, device="cpu", project=str(tmp_path),
        name="train", plots=False, verbose=False, trainer=CheckedTrainer,
    )  # fmt: skip
    for split in ("train", "val"):  # the trainer printed each bad file once, then the counts
        for index in range(9):
            assert sum(f"{split}_{index:04d}." in line for line in lines) == 1, (split, index, lines)
        assert sum(line.startswith(f"{split}: ") for line in lines) == 1
    rows = list(csv.DictReader((tmp_path / "train" / "results.csv").open()))
    assert len(rows) == 1 and float(rows[0]["train/box_loss"]) > 0
    metrics = model.val(data=str(damaged_data), imgsz=64, batch=4, device="cpu", plots=False, verbose=False)
    assert 0 <= metrics.box.map50 <= 1
    for split, report in ours.items():
        cache = load_dataset_cache_file(damaged_data.parent / "labels" / f"{split}.cache")
        _, missing, empty, corrupt, total = cache["results"]
        assert (total, corrupt, missing + empty) == (report.images, report.corrupt, report.background)
        assert len(cache["labels"]) == report.usable
        nan_message = next(m for m in cache["msgs"] if f"{split}_0003" in m)
        assert "nan" not in nan_message.lower()  # Ultralytics says "out of bounds coordinates []"; we say NaN


# ---------------------------------------------------------------------------------------------- atomic writes
def test_atomic_path_replaces_the_whole_file_and_keeps_plain_permissions(tmp_path):
    target = AtomicPath(tmp_path / "weights") / "last.pt"
    assert isinstance(target, AtomicPath) and isinstance(target.with_name("best.pt"), AtomicPath)
    target.parent.mkdir()
    assert target.write_bytes(b"first") == 5
    assert target.write_bytes(memoryview(b"second checkpoint")) == 17
    assert target.read_bytes() == b"second checkpoint"
    assert target.stat().st_mode & 0o777 == 0o644
    target.write_text("epoch,loss\n")
    assert target.read_text() == "epoch,loss\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.pt"]  # no temporary files left


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    import errno

    last = AtomicPath(tmp_path / "last.pt")
    last.write_bytes(b"old checkpoint")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        last.write_bytes(b"new checkpoint")
    assert last.read_bytes() == b"old checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


KILL_MID_WRITE = """
import os, signal, sys
from pathlib import Path

class HalfThenDie:  # writes half of what it is given, then the process is killed
    def __init__(self, file): self.file = file
    def __enter__(self): return self
    def __exit__(self, *exc): self.file.close()
    def __getattr__(self, name): return getattr(self.file, name)
    def write(self, data):
        self.file.write(bytes(data)[: len(data) // 2]); self.file.flush(); os.fsync(self.file.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

mode, target = sys.argv[1], Path(sys.argv[2])
if mode == "plain":
    real_open = Path.open
    Path.open = lambda self, *a, **k: HalfThenDie(real_open(self, *a, **k))
    target.write_bytes(b"N" * 1_000_000)
else:
    from lcnet_yolo.io.runs import AtomicPath
    real_fdopen = os.fdopen
    os.fdopen = lambda *a, **k: HalfThenDie(real_fdopen(*a, **k))
    AtomicPath(target).write_bytes(b"N" * 1_000_000)
"""


@pytest.mark.parametrize("writer", ["plain", "atomic"])
def test_a_kill_mid_write_leaves_the_previous_checkpoint_intact_only_with_atomic_writes(tmp_path, writer):
    last = tmp_path / "last.pt"
    last.write_bytes(b"O" * 800_000)
    script = tmp_path / "kill.py"
    script.write_text(KILL_MID_WRITE)
    run = subprocess.run([sys.executable, script, writer, last], env=ENV, timeout=60)
    assert run.returncode == -signal.SIGKILL
    if writer == "plain":  # what Ultralytics' Path.write_bytes does: the old checkpoint is gone, half a new one
        assert last.read_bytes() == b"N" * 500_000
    else:
        assert last.read_bytes() == b"O" * 800_000
        AtomicPath(last).write_bytes(b"new")  # the leftover temporary file does not get in the way
        assert last.read_bytes() == b"new"


def test_trim_results_csv_keeps_only_the_epochs_the_checkpoint_holds(tmp_path):
    results = tmp_path / "results.csv"
    results.write_text("epoch,time,loss\n1,1.0,0.5\n2,2.0,0.4\n3,3.0,0.3\n4,4.0,0.")
    assert trim_results_csv(results, 2) == 2
    assert results.read_text() == "epoch,time,loss\n1,1.0,0.5\n2,2.0,0.4\n"
    results.write_text("epoch,time,loss\n1,1.0,0.5\n2,2.0")  # a kill mid-append
    assert trim_results_csv(results, 5) == 1


# ------------------------------------------------------------------------------------------ interrupted training
TRAIN = """
import os, signal, sys, time
import lcnet_yolo
from lcnet_yolo.plugin.trainers import ReliableTrainerMixin
from ultralytics import YOLO
from ultralytics.models.yolo.detect import DetectionTrainer

mode, data, project = sys.argv[1], sys.argv[2], sys.argv[3]

class Trainer(ReliableTrainerMixin, DetectionTrainer):
    def save_model(self):
        if mode == "die-before-save" and self.epoch == 1:  # results.csv has epoch 2, last.pt will not
            os.kill(os.getpid(), signal.SIGKILL)
        return super().save_model()

args = dict(data=data, epochs=3, imgsz=64, batch=4, workers=0, device="cpu", plots=False, verbose=False)
if mode == "resume":
    model = YOLO(os.path.join(project, "run", "weights", "last.pt"))
    model.train(resume=True, trainer=Trainer)
else:
    model = YOLO("yolov8n-pplcnet.yaml")
    if mode == "slow":  # leave time to kill the run between epochs
        model.add_callback("on_fit_epoch_end", lambda trainer: time.sleep(2))
    model.train(project=project, name="run", trainer=Trainer, **args)
print("SAVE_DIR", model.trainer.save_dir)
"""


def _epochs(results: Path) -> list[int]:
    return [int(float(row["epoch"])) for row in csv.DictReader(results.open())]


@pytest.fixture(scope="module")
def train_script(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train")
    data = make_synthetic_dataset(root / "data", n_train=8, n_val=4, imgsz=64)
    script = root / "train.py"
    script.write_text(TRAIN)
    return script, data


def _run(script: Path, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, script, *map(str, args)], env=ENV, capture_output=True, text=True, timeout=timeout
    )
    return run


@pytest.mark.slow
def test_a_training_killed_between_epochs_resumes_and_keeps_its_finished_epochs(train_script, tmp_path):
    script, data = train_script
    run_dir = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, script, "slow", data, tmp_path], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and child.poll() is None:
            results, last = run_dir / "results.csv", run_dir / "weights" / "last.pt"
            if last.exists() and results.exists() and len(_epochs(results)) >= 1:
                break
            time.sleep(0.05)
        assert child.poll() is None, "the training ended before it could be killed"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    finished = _epochs(run_dir / "results.csv")
    ckpt = safe_load(run_dir / "weights" / "last.pt")  # complete, whatever moment the kill came at
    assert finished[0] == 1 and 1 <= ckpt["epoch"] + 1 <= len(finished) < 3

    resumed = _run(script, "resume", data, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"SAVE_DIR {run_dir.resolve()}" in resumed.stdout
    assert _epochs(run_dir / "results.csv") == [1, 2, 3]
    final = safe_load(run_dir / "weights" / "last.pt")
    assert [int(e) for e in final["train_results"]["epoch"]] == [1, 2, 3]
    assert safe_load(run_dir / "weights" / "best.pt")["model"] is not None


@pytest.mark.slow
def test_a_training_killed_after_logging_but_before_saving_resumes_without_a_duplicate_epoch(train_script, tmp_path):
    script, data = train_script
    run_dir = tmp_path / "run"
    died = _run(script, "die-before-save", data, tmp_path)
    assert died.returncode == -signal.SIGKILL, died.stderr[-3000:]
    assert _epochs(run_dir / "results.csv") == [1, 2]  # epoch 2 logged ...
    assert safe_load(run_dir / "weights" / "last.pt")["epoch"] == 0  # ... but last.pt holds epoch 1 only
    resumed = _run(script, "resume", data, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _epochs(run_dir / "results.csv") == [1, 2, 3]  # Ultralytics alone gives [1, 2, 2, 3]


# ------------------------------------------------------------------------------------------------ racing runs
def test_ultralytics_run_names_are_check_then_create_and_ours_are_atomic(tmp_path):
    from types import SimpleNamespace

    from ultralytics.cfg import get_save_dir

    args = SimpleNamespace(project=str(tmp_path), name="run", task="detect", mode="train", exist_ok=False)
    first, second = get_save_dir(args), get_save_dir(args)  # two runs that both look before either creates
    assert first == second == tmp_path / "run"  # ... are handed the same directory
    overrides = {"project": str(tmp_path), "name": "run"}
    reserved = [reserve_save_dir(overrides=overrides) for _ in range(3)]
    assert [p.name for p in reserved] == ["run", "run-2", "run-3"] and all(p.is_dir() for p in reserved)
    assert reserve_save_dir(overrides={**overrides, "exist_ok": True}) == tmp_path / "run"
    assert reserve_save_dir(overrides={**overrides, "backbone_weights": "x.pt"}).name == "run-4"  # trainer-only keys


def _reserve(barrier, project: str, queue) -> None:
    barrier.wait()
    queue.put(str(reserve_save_dir(overrides={"project": project, "name": "run"})))


def test_processes_racing_for_one_run_name_each_get_their_own_directory(tmp_path):
    context = multiprocessing.get_context("fork")
    workers = 8
    barrier, queue = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=_reserve, args=(barrier, str(tmp_path), queue)) for _ in range(workers)]
    for process in processes:
        process.start()
    dirs = [queue.get(timeout=60) for _ in range(workers)]
    for process in processes:
        process.join(timeout=60)
    assert sorted(dirs) == sorted({str(tmp_path / "run"), *(str(tmp_path / f"run-{n}") for n in range(2, 9))})


@pytest.mark.slow
def test_two_trainings_started_together_into_one_name_keep_separate_runs(train_script, tmp_path):
    script, data = train_script
    command = [sys.executable, script, "fast", data, tmp_path]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    children = [subprocess.Popen(command, env=ENV, **pipes) for _ in range(2)]  # started together
    outputs = [child.communicate(timeout=180) for child in children]
    assert all(child.returncode == 0 for child in children), [err[-2000:] for _, err in outputs]
    save_dirs = {line.split(" ", 1)[1] for out, _ in outputs for line in out.splitlines() if line.startswith("SAVE_")}
    assert save_dirs == {str((tmp_path / "run").resolve()), str((tmp_path / "run-2").resolve())}
    for save_dir in map(Path, save_dirs):
        assert _epochs(save_dir / "results.csv") == [1, 2, 3]
        assert [int(e) for e in safe_load(save_dir / "weights" / "last.pt")["train_results"]["epoch"]] == [1, 2, 3]
