"""The trust boundary for checkpoints and model files (SECURITY.md): every ``.pt`` is read the same way, whoever asks.

Each payload writes a marker file when it runs. Each attack is first shown to run without our protection (the
positive control: Ultralytics' own restricted loader, plain ``YOLO()``, Ultralytics' trainer), then refused through
the installed ``lcnet-yolo`` in a subprocess and through the Python API: no marker, no write outside the run
folder, one line on stderr, exit status 2.
"""

from __future__ import annotations

import contextlib
import copy
import os
import pickle
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from ultralytics import YOLO
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.nn.distill_model import DistillationModel
from ultralytics.nn.tasks import torch_safe_load

from lcnet_yolo import LCNetDetectionTrainer
from lcnet_yolo.data import make_synthetic_dataset
from lcnet_yolo.io.checkpoint_pickle import allowed_global
from lcnet_yolo.io.checkpoints import load_yolo
from lcnet_yolo.io.errors import WeightsError
from lcnet_yolo.io.model_yaml import check_model_yaml
from lcnet_yolo.io.safe_load import safe_load, scoped_safe_globals
from lcnet_yolo.io.train_args import check_train_args, usable_train_args
from lcnet_yolo.nn.registry import module_classes

LCNET_YOLO = Path(sys.executable).with_name("lcnet-yolo")
TINY = ("epochs=1", "imgsz=32", "batch=2", "workers=0", "device=cpu", "plots=False")


class Reduce:
    """Pickles as ``fn(*args)``: what a hostile file makes the unpickler call."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def touch(marker: Path) -> Reduce:
    return Reduce(os.system, f"touch {marker}")


def cli(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(LCNET_YOLO), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    """The run ended with one line on stderr naming ``words`` and exit status 2."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], err[-3000:])
    assert "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    assert "\n" not in text and "Traceback" not in text, text
    return text


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to show nothing there was written)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("tiny-data"), n_train=4, n_val=2, imgsz=32)


@pytest.fixture(scope="module")
def genuine(best_pt) -> dict:
    """A genuine checkpoint's contents, read through the boundary."""
    return safe_load(best_pt)


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "marker"


@pytest.fixture
def teacher(tmp_path, marker) -> Path:
    """A second file that runs code when unpickled (a distillation teacher, as a file beside the checkpoint)."""
    path = tmp_path / "teacher.pt"
    torch.save(touch(marker), path)
    return path


@pytest.fixture(scope="module")
def mid_run(tiny_data, tmp_path_factory) -> dict:
    """A checkpoint saved in the middle of a run (optimizer state and all): what ``resume`` continues."""
    root = tmp_path_factory.mktemp("mid-run")
    overrides = {"model": "yolov8n-pplcnet.yaml", "data": str(tiny_data), "epochs": 1, "imgsz": 32, "batch": 2}
    trainer = LCNetDetectionTrainer(overrides={**overrides, "workers": 0, "plots": False, "project": str(root)})
    trainer.train()
    trainer.save_model()  # last.pt as written after each epoch, before training strips it
    return torch.load(trainer.last, map_location="cpu", weights_only=False)  # written by this test


def resumable(mid_run: dict, **train_args) -> dict:
    """A copy of the mid-run checkpoint stopped after its first of two epochs, with ``train_args`` updated."""
    ckpt = dict(mid_run)
    ckpt["epoch"] = 0
    ckpt["train_args"] = {**mid_run["train_args"], "epochs": 2, "workers": 0, "plots": False, **train_args}
    return ckpt


# ------------------------------------------------------------------------- a pickled DistillationModel in a .pt
@pytest.fixture
def distill_pt(genuine, teacher, tmp_path) -> Path:
    """A ``.pt`` whose network is ``DistillationModel(teacher, student)``: its constructor loads the teacher with
    ``weights_only=False``. Ultralytics' restricted loader admits that class."""
    path = tmp_path / "distill.pt"
    student = genuine["model"]
    torch.save({**genuine, "model": Reduce(DistillationModel, str(teacher), student), "ema": None}, path)
    return path


def test_a_pickled_distillation_model_runs_its_teacher_under_ultralytics_restricted_loader(distill_pt, marker):
    with contextlib.suppress(Exception), scoped_safe_globals(module_classes()):  # what safe_load used to call
        torch_safe_load(str(distill_pt), safe_only=True)
    assert marker.exists()


@pytest.mark.parametrize(
    "mode",
    [
        ("val",),
        ("predict",),
        ("export", "format=torchscript"),
        ("info",),
        ("train",),
        ("train", "resume=True"),
        ("convert",),
        ("formats",),
        ("demo", "--quick"),
        ("quantize",),
    ],
    ids=lambda m: "-".join(m),
)
def test_a_pickled_distillation_model_is_refused_in_every_mode(
    distill_pt, marker, tiny_data, tmp_path, mode, subprocess_env
):
    name, *extra = mode
    if name == "convert":
        args = ["convert", str(distill_pt), str(tmp_path / "out.safetensors")]
    elif name == "formats":
        args = ["formats", "--model", str(distill_pt), "--data", str(tiny_data), "--imgsz", "32"]
    elif name == "demo":
        args = ["demo", "--quick", "--model", str(distill_pt), "--project", str(tmp_path / "demo")]
    elif name == "quantize":
        proc = subprocess.run(
            [sys.executable, "-m", "lcnet_yolo.quantize", "--model", str(distill_pt), "--data", str(tiny_data)],
            cwd=tmp_path, env=subprocess_env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        refused(proc, str(distill_pt), "DistillationModel")
        assert not marker.exists()
        return
    else:
        args = [name, f"model={distill_pt}", *extra, f"data={tiny_data}", f"project={tmp_path}", *TINY]
        if name == "info":
            args = ["info", f"model={distill_pt}"]
    refused(cli(*args, cwd=tmp_path, env=subprocess_env), str(distill_pt), "DistillationModel")
    assert not marker.exists()


def test_a_pickled_distillation_model_is_refused_through_the_python_api(distill_pt, marker, tiny_data, tmp_path):
    common = {"data": str(tiny_data), "epochs": 1, "imgsz": 32, "batch": 2, "workers": 0, "project": str(tmp_path)}
    for attempt in (
        lambda: safe_load(distill_pt),
        lambda: load_yolo(distill_pt),
        lambda: LCNetDetectionTrainer(overrides={"model": str(distill_pt), "resume": str(distill_pt), **common}),
        lambda: LCNetDetectionTrainer(
            overrides={"model": "yolov8n-pplcnet.yaml", "pretrained": str(distill_pt), **common}
        ),
        lambda: YOLO("yolov8n-pplcnet.yaml").train(trainer=LCNetDetectionTrainer, pretrained=str(distill_pt), **common),
    ):
        with pytest.raises(WeightsError) as caught:
            attempt()
        message = one_line(caught.value)
        assert message.startswith(f"{distill_pt}: refused to load:") and "DistillationModel" in message, message
    assert not marker.exists()


# ----------------------------------------------------------------------------------------- a bare pickle as .pt
@pytest.fixture
def plain_pickle(tmp_path, marker) -> Path:
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps(touch(marker), protocol=2))
    return path


def test_a_plain_pickle_runs_under_plain_yolo_and_is_refused_everywhere(plain_pickle, marker, tmp_path, subprocess_env):
    for args in (
        ["info", f"model={plain_pickle}"],
        ["demo", "--quick", "--model", str(plain_pickle), "--project", str(tmp_path / "demo")],
        ["val", f"model={plain_pickle}"],
        ["predict", f"model={plain_pickle}"],
    ):
        refused(cli(*args, cwd=tmp_path, env=subprocess_env), str(plain_pickle), "a bare pickle naming posix.system")
    for attempt in (lambda: safe_load(plain_pickle), lambda: load_yolo(plain_pickle)):
        with pytest.raises(WeightsError, match=r"a bare pickle naming posix\.system"):
            attempt()
    assert not marker.exists()
    with contextlib.suppress(Exception):  # positive control: what `info` and `demo` used to do
        YOLO(str(plain_pickle))
    assert marker.exists()


# --------------------------------------------------------------- train_args: distill_model, save_dir and data
@pytest.fixture
def hostile_resume(mid_run, teacher, tiny_data, tmp_path) -> tuple[Path, Path]:
    """``RUN/weights/last.pt`` whose ``train_args`` name a teacher that runs code and another run's folder."""
    other = tmp_path / "other_run"
    (other / "weights").mkdir(parents=True)
    (other / "weights" / "best.pt").write_bytes(b"the other run's weights")
    (other / "results.csv").write_text("epoch,loss\n1,0.5\n")
    last = tmp_path / "run" / "weights" / "last.pt"
    last.parent.mkdir(parents=True)
    args = {"distill_model": str(teacher), "save_dir": str(other), "data": str(tiny_data), "project": str(other)}
    torch.save(resumable(mid_run, **args), last)
    return last, other


def test_train_args_of_a_resumed_checkpoint_are_not_followed(hostile_resume, marker, tmp_path, subprocess_env):
    last, other = hostile_resume
    api_last = tmp_path / "api" / "weights" / "last.pt"
    api_last.parent.mkdir(parents=True)
    shutil.copy(last, api_last)
    before = tree(other)
    proc = cli("train", "resume=True", f"model={last}", cwd=tmp_path, env=subprocess_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not marker.exists()
    assert tree(other) == before  # nothing written into the other run's folder
    run = last.parent.parent
    assert (run / "args.yaml").is_file() and (run / "results.csv").is_file()  # written beside the checkpoint
    assert yaml.safe_load((run / "args.yaml").read_text())["save_dir"] == str(run)

    # Python API: the same file resumed with our trainer
    load_yolo(api_last).train(trainer=LCNetDetectionTrainer, resume=True)
    assert not marker.exists() and tree(other) == before
    assert (api_last.parent.parent / "results.csv").is_file()


def test_train_args_of_a_resumed_checkpoint_run_code_and_write_elsewhere_under_ultralytics(
    mid_run, teacher, tiny_data, marker, tmp_path
):
    other = tmp_path / "other_run"
    last = tmp_path / "run" / "weights" / "last.pt"
    last.parent.mkdir(parents=True)
    args = {"distill_model": str(teacher), "save_dir": str(other), "data": str(tiny_data)}
    torch.save(resumable(mid_run, **args), last)
    with contextlib.suppress(Exception):  # positive control: Ultralytics' own trainer follows them
        YOLO(str(last)).train(trainer=DetectionTrainer, resume=True)
    assert marker.exists()
    assert (other / "args.yaml").is_file()


def test_a_stored_dataset_with_a_download_field_is_not_followed(genuine, tmp_path, marker, subprocess_env):
    evil = tmp_path / "evil-data"
    evil.mkdir()
    script = f"import os; os.system('touch {marker}')"
    (evil / "data.yaml").write_text(
        yaml.safe_dump({"path": str(evil), "train": "t", "val": "v", "names": {0: "a"}, "download": script})
    )
    path = tmp_path / "stored-data.pt"
    torch.save({**genuine, "train_args": {**genuine["train_args"], "data": str(evil / "data.yaml")}}, path)
    refused(cli("val", f"model={path}", cwd=tmp_path, env=subprocess_env), str(path), "val needs data=")
    assert load_yolo(path).overrides.get("data") is None
    assert not marker.exists()
    with contextlib.suppress(Exception):  # positive control: Ultralytics validates on the stored dataset
        YOLO(str(path)).val(imgsz=32, batch=2, plots=False)
    assert marker.exists()


def test_a_stored_dataset_from_another_machine_asks_for_data(genuine, mid_run, tmp_path, subprocess_env):
    path = tmp_path / "elsewhere.pt"
    torch.save({**genuine, "train_args": {**genuine["train_args"], "data": "/home/someone/else/data.yaml"}}, path)
    refused(cli("val", f"model={path}", cwd=tmp_path, env=subprocess_env), str(path), "val needs data=")
    last = tmp_path / "run" / "weights" / "last.pt"
    last.parent.mkdir(parents=True)
    torch.save(resumable(mid_run, data="/home/someone/else/data.yaml"), last)
    refused(cli("train", "resume=True", f"model={last}", cwd=tmp_path, env=subprocess_env), "resuming needs data=")


# ------------------------------------------------------------------------------ train_args of the wrong type
WRONG_TYPES = {
    "task": 3,
    "single_cls": "yes",
    "data": ["a", "b"],
    "epochs": "ten",
    "batch": "16",
    "optimizer": "Evil",
    "save_dir": 5,
    "imgsz": "big",
    "lr0": "fast",
}


@pytest.mark.parametrize("field", [*WRONG_TYPES, "(a list)"])
def test_train_args_of_the_wrong_type_give_one_line_naming_the_field(genuine, tmp_path, field, subprocess_env):
    path = tmp_path / "typed.pt"
    args = ["not", "a", "dict"] if field == "(a list)" else {**genuine["train_args"], field: WRONG_TYPES[field]}
    torch.save({**genuine, "train_args": args}, path)
    expected = "field 'train_args'" if field == "(a list)" else f"field 'train_args.{field}'"
    with pytest.raises(WeightsError) as caught:
        load_yolo(path)
    assert one_line(caught.value).startswith(f"{path}: {expected}")
    if field in ("task", "epochs", "(a list)"):  # the CLI says the same in one line, exit 2
        refused(cli("predict", f"model={path}", cwd=tmp_path, env=subprocess_env), str(path), expected)


def test_train_args_fuzz_gives_one_line_or_a_checked_mapping(genuine):
    """Seeded fuzz: any value of any type for any key is either accepted (and then usable) or one line."""
    rng = random.Random(20)
    values = [None, True, 0, -1, 2.5, "", "x" * 5000, "detect", [1, 2], [[[[[1]]]]], {"a": 1}, b"bytes", 1j, ("t",)]
    keys = [*genuine["train_args"], "unknown_key", 7]
    for _ in range(600):
        args = dict(genuine["train_args"])
        for _ in range(rng.randint(1, 3)):
            args[rng.choice(keys)] = rng.choice(values)
        try:
            checked = check_train_args("f.pt", args)
        except WeightsError as error:
            assert one_line(error).startswith("f.pt: field 'train_args")
            continue
        usable = usable_train_args("f.pt", checked)
        assert all(
            usable.get(k) in (None, True, False, "tracktrack.yaml")
            for k in ("save_dir", "project", "name", "distill_model", "pretrained", "model", "tracker")
        )


# ----------------------------------------------------------------------------------------- model=FILE.yaml
@pytest.fixture
def evil_yaml(tmp_path, marker) -> Path:
    path = tmp_path / "yolov8n-evil.yaml"
    cfg = yaml.safe_load((Path(__file__).parents[1] / "src/lcnet_yolo/cfg/models/yolov8n-pplcnet.yaml").read_text())
    cfg["activation"] = f"(__import__('os').system('touch {marker}'), nn.SiLU())[1]"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_a_model_yaml_with_python_in_activation_is_refused_before_it_is_built(
    evil_yaml, marker, tiny_data, tmp_path, subprocess_env
):
    for args in (
        ["train", f"model={evil_yaml}", f"data={tiny_data}", f"project={tmp_path}", *TINY],
        ["val", f"model={evil_yaml}", f"data={tiny_data}", f"project={tmp_path}", *TINY],
        ["predict", f"model={evil_yaml}", f"project={tmp_path}", "imgsz=32"],
        ["export", f"model={evil_yaml}", "imgsz=32"],
        ["info", f"model={evil_yaml}"],
        ["demo", "--quick", "--model", str(evil_yaml), "--project", str(tmp_path / "demo")],
    ):
        refused(cli(*args, cwd=tmp_path, env=subprocess_env), str(evil_yaml), "field 'activation'")
    with pytest.raises(WeightsError, match="field 'activation'"):
        load_yolo(evil_yaml)
    with pytest.raises(WeightsError, match="field 'activation'"):
        LCNetDetectionTrainer(
            overrides={
                "model": str(evil_yaml),
                "data": str(tiny_data),
                "project": str(tmp_path),
                "epochs": 1,
                "imgsz": 32,
            }
        ).get_model(cfg=str(evil_yaml))
    assert not marker.exists()
    YOLO(str(evil_yaml))  # positive control: Ultralytics evals it when it builds the model
    assert marker.exists()


def test_model_yaml_rows_fuzz_gives_one_line(genuine):
    """Seeded fuzz of model-YAML rows and fields: check_model_yaml accepts or raises one ValueError line."""
    rng = random.Random(20)
    base = genuine["model"].yaml
    junk = [None, -1, 0, 1, 2.5, "x", "Conv", "nn.Conv2d", [], [1, "a"], {"k": 1}, [[[[[[1]]]]]], "TorchVision", True]
    for _ in range(400):
        cfg = copy.deepcopy(base)
        section = rng.choice(["backbone", "head"])
        row = list(rng.choice(cfg[section]))
        row[rng.randrange(4)] = rng.choice(junk)
        cfg[section][rng.randrange(len(cfg[section]))] = row
        if rng.random() < 0.3:
            cfg[rng.choice(["nc", "scales", "depth_multiple", "activation", "channels"])] = rng.choice(junk)
        try:
            check_model_yaml(cfg)
        except ValueError as error:
            one_line(error)


def test_malformed_allowed_rows_in_a_checkpoint_give_one_line(genuine, tmp_path, subprocess_env, tiny_data):
    path = tmp_path / "rows.pt"
    model = copy.deepcopy(genuine["model"])
    model.yaml = {**model.yaml, "head": [[-1, "many", "Conv", [16, 3]], *model.yaml["head"]]}
    torch.save({**genuine, "model": model}, path)
    with pytest.raises(WeightsError) as caught:
        safe_load(path)
    assert "row 0 'repeats'" in one_line(caught.value)
    err = refused(cli("predict", f"model={path}", cwd=tmp_path, env=subprocess_env), str(path))
    assert "'repeats'" in err


# ------------------------------------------------------------------------------------------- the allow-list
def test_the_allow_list_admits_no_class_that_loads_downloads_or_evaluates():
    for name in (
        "ultralytics.nn.distill_model.DistillationModel",
        "ultralytics.nn.modules.block.TorchVision",
        "ultralytics.nn.text_model.CLIP",
        "ultralytics.nn.tasks.WorldModel",
        "ultralytics.nn.tasks.YOLOEModel",
        "ultralytics.nn.tasks.YOLOESegModel",
        "ultralytics.nn.tasks.RTDETRDetectionModel",
        "ultralytics.nn.tasks.Ensemble",
        "ultralytics.utils.loss.v8DetectionLoss",
        "ultralytics.utils.tal.TaskAlignedAssigner",
        "builtins.getattr",
        "builtins.eval",
        "posix.system",
        "torch.load",
        "torchvision.transforms.transforms.Compose",
    ):
        assert allowed_global(name) is None, name
    for name in (
        "ultralytics.nn.tasks.DetectionModel",
        "ultralytics.nn.modules.head.Detect",
        "torch.nn.modules.conv.Conv2d",
        "lcnet_yolo.nn.layers.PPLCNetBackbone",
        "torch._utils._rebuild_tensor_v2",
    ):
        assert allowed_global(name) is not None, name


def test_a_model_class_called_by_the_pickle_is_refused(genuine, tmp_path, marker):
    """REDUCE on an allowed model class would run its constructor: only creation without a call is allowed."""
    from ultralytics.nn.tasks import DetectionModel

    path = tmp_path / "called.pt"
    torch.save({**genuine, "model": Reduce(DetectionModel, {"backbone": [], "head": []})}, path)
    with pytest.raises(WeightsError, match=r"calls ultralytics\.nn\.tasks\.DetectionModel"):
        safe_load(path)


def test_safe_load_leaves_no_classes_on_torchs_allow_list(best_pt):
    before = list(torch.serialization.get_safe_globals())
    safe_load(best_pt)
    load_yolo(best_pt)
    assert torch.serialization.get_safe_globals() == before


def test_malformed_allowed_rows_in_safetensors_metadata_give_one_line(best_pt, tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    from lcnet_yolo.io.safetensors import convert, load_safetensors

    good = convert(best_pt, tmp_path / "good.safetensors")
    from safetensors import safe_open

    with safe_open(str(good), "pt") as handle:
        metadata = handle.metadata()
    for row, field in (([-1, "many", "Conv", [16, 3]], "'repeats'"), (["x", 1, "Conv", [16]], "'from'")):
        cfg = json.loads(metadata["model_yaml"])
        cfg["head"] = [row, *cfg["head"]]
        bad = tmp_path / "bad.safetensors"
        save_file(load_file(str(good)), str(bad), metadata={**metadata, "model_yaml": json.dumps(cfg)})
        with pytest.raises(WeightsError) as caught:
            load_safetensors(bad)
        assert field in one_line(caught.value)
    cfg = json.loads(metadata["model_yaml"])  # allowed and well-formed, but arguments the layer cannot take
    cfg["head"] = [[-1, 1, "Conv", ["sixteen", 3]], *cfg["head"]]
    save_file(load_file(str(good)), str(bad), metadata={**metadata, "model_yaml": json.dumps(cfg)})
    with pytest.raises(WeightsError) as caught:
        load_safetensors(bad)
    assert "does not build" in one_line(caught.value)


def test_a_zero_dim_tensor_in_backbone_weights_gives_one_error(tmp_path):
    from lcnet_yolo.io.weight_loading import SCALE_PROBE_KEY
    from lcnet_yolo.io.weights import load_pretrained
    from lcnet_yolo.nn.pplcnet import PPLCNet

    state = PPLCNet(scale=1.0).state_dict()
    state[SCALE_PROBE_KEY] = torch.tensor(1.0)
    path = tmp_path / "zero-dim.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=rf"{SCALE_PROBE_KEY} \[\]"):
        load_pretrained(PPLCNet(scale=1.0), path)


def test_a_deeply_nested_weights_cache_record_gives_one_error(tmp_path):
    from lcnet_yolo.io.errors import HubError
    from lcnet_yolo.io.hub import read_record, record_path

    weights = tmp_path / "PPLCNet_x1_0_pretrained.pdparams"
    weights.write_bytes(b"x")
    record_path(weights).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(HubError) as caught:
        read_record(weights)
    assert "is not a valid weights record" in one_line(caught.value)
