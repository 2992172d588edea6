"""Multi-GPU training trains in every rank what one process trains.

Ultralytics' real DDP path runs on the CPU: the launching process (``device=0,1``) -> Ultralytics' generated DDP file
-> torchrun -> two ranks with the gloo backend. The CUDA-only calls on that path are replaced in the child processes
by ``tests/ddp_shim/sitecustomize.py`` (never in the package); ``tests/ddp_shim/ddp_recorder.py`` writes what each
process trains with, and the ranks' records are compared with those of one process on the same data.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ultralytics import YOLO
from ultralytics.utils.callbacks import base

from lcnet_yolo.cli import main
from lcnet_yolo.data import make_synthetic_dataset
from lcnet_yolo.nn import PPLCNet

pytestmark = pytest.mark.slow  # about a minute on 2 cores: two torchrun launches of two ranks, two baselines

SHIM_DIR = Path(__file__).resolve().parent / "ddp_shim"
LCNET_YOLO = Path(sys.executable).with_name("lcnet-yolo")
RECIPE = ("trainer", "optimizer", "lr0", "lr", "weight_decay", "nbs", "accumulate", "batches", "defaults_line")
TRAIN = {"epochs": 1, "imgsz": 64, "batch": 4, "workers": 0, "seed": 0, "plots": False, "name": "train"}
API_SCRIPT = f"""
import sys
import lcnet_yolo  # registers our models; no trainer= below
from ultralytics import YOLO

data, project = sys.argv[1:3]
YOLO("yolov8n-pplcnet.yaml").train(data=data, project=project, device=[0, 1], **{TRAIN!r})
"""


def recorder():
    """``tests/ddp_shim/ddp_recorder.py`` as a module (its folder is on the children's path, not on this one's)."""
    spec = importlib.util.spec_from_file_location("ddp_recorder", SHIM_DIR / "ddp_recorder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cli_args(inputs: dict[str, Path], device: str, project: Path) -> list[str]:
    """``lcnet-yolo train`` arguments: our model with backbone weights on the synthetic data."""
    args = ["train", "model=yolov8n-pplcnet.yaml", f"data={inputs['data']}", f"device={device}", f"project={project}"]
    return [*args, f"backbone_weights={inputs['weights']}", *(f"{k}={v}" for k, v in TRAIN.items())]


def records(folder: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """16 training images at 64 px and a PP-LCNet x0.5 weights file of seeded random values."""
    root = tmp_path_factory.mktemp("ddp")
    data = make_synthetic_dataset(root / "data", n_train=16, n_val=4, imgsz=64)
    generator = torch.Generator().manual_seed(0)
    state = {
        k: (torch.randn(v.shape, generator=generator) if v.is_floating_point() else v)
        for k, v in PPLCNet(scale=0.5).state_dict().items()
    }
    state.update({k: v.abs() + 0.5 for k, v in state.items() if k.endswith("running_var")})
    torch.save(state, root / "pplcnet_x0_5.pt")
    return {"root": root, "data": data, "weights": root / "pplcnet_x0_5.pt"}


class Launches:
    """Both multi-GPU launches, started side by side and left running while the tests train one process:
    ``lcnet-yolo train ... device=0,1`` (our trainer, backbone weights, restricted loading) and
    ``YOLO(...).train(device=[0, 1])`` without ``trainer=``."""

    def __init__(self, inputs: dict[str, Path], subprocess_env: dict[str, str]) -> None:
        self.root = root = inputs["root"]
        commands = {
            "cli": [str(LCNET_YOLO), *cli_args(inputs, device="0,1", project=root / "cli")],
            "api": [sys.executable, "-c", API_SCRIPT, str(inputs["data"]), str(root / "api")],
        }
        self.processes, self.runs = {}, {}
        for name, command in commands.items():
            env = {
                **subprocess_env,
                "PYTHONPATH": os.pathsep.join([str(SHIM_DIR), subprocess_env["PYTHONPATH"]]),
                "LCNET_YOLO_DDP_SHIM": "1",
                "LCNET_YOLO_DDP_RECORD": str(root / f"records-{name}"),
                "OMP_NUM_THREADS": "1",
            }
            with open(root / f"{name}.log", "w") as log:
                self.processes[name] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def result(self, name: str) -> dict:
        """The launch's records, log and project folder, once it has ended (it must end with status 0)."""
        if name not in self.runs:
            code = self.processes[name].wait(timeout=300)
            text = (self.root / f"{name}.log").read_text()
            assert code == 0, f"{name} launch failed:\n{text[-4000:]}"
            folder = self.root / f"records-{name}"
            self.runs[name] = {"records": records(folder), "log": text, "project": self.root / name}
        return self.runs[name]

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def launches(inputs, subprocess_env):
    started = Launches(inputs, subprocess_env)
    yield started
    started.stop()


def one_process(inputs, tmp_path, monkeypatch, *, cli: bool) -> dict:
    """What one process trains with on the same data (the CLI with our trainer, or the API without it)."""
    monkeypatch.setenv("LCNET_YOLO_DDP_RECORD", str(tmp_path / "records"))
    if cli:  # the CLI makes its own YOLO model: the recorder goes into the callbacks every model starts with
        event = "on_pretrain_routine_end"
        monkeypatch.setitem(base.default_callbacks, event, [*base.default_callbacks[event], recorder().record])
        assert main(cli_args(inputs, device="cpu", project=tmp_path)) == 0
    else:
        model = YOLO("yolov8n-pplcnet.yaml")
        model.add_callback("on_pretrain_routine_end", recorder().record)
        model.train(data=str(inputs["data"]), project=str(tmp_path), device="cpu", **TRAIN)
    return json.loads((tmp_path / "records" / "rank-1.json").read_text())


def test_every_rank_trains_our_recipe_with_the_backbone_weights_of_one_process(inputs, launches, tmp_path, monkeypatch):
    one = one_process(inputs, tmp_path, monkeypatch, cli=True)
    assert one["trainer"] == "lcnet_yolo.plugin.trainers.LCNetDetectionTrainer"
    assert (one["optimizer"], one["lr0"], one["nbs"], one["accumulate"], one["batches"]) == ("AdamW", 0.01, 4, 1, 4)
    assert one["defaults_line"].startswith("lcnet-yolo defaults: optimizer=AdamW lr0=0.01 nbs=4 accumulate=1; applied")
    assert one["restricted"] is True and one["backbone_sha256"]
    run = launches.result("cli")
    ranks = run["records"]
    assert {"rank0", "rank1", "launch"} <= set(ranks)
    for rank in ("rank0", "rank1"):
        assert ranks[rank]["world_size"] == 2
        assert {k: ranks[rank][k] for k in RECIPE} == {k: one[k] for k in RECIPE}, rank
        assert ranks[rank]["backbone_sha256"] == one["backbone_sha256"], rank
        assert ranks[rank]["restricted"] is True, rank  # best.pt is read weights-only in the ranks too
    assert run["log"].count("optimizer=AdamW lr0=0.01 nbs=4 accumulate=1; applied") == 1  # rank 0 logs it
    assert run["log"].count("Loaded PP-LCNet backbone weights") == 1  # read once, in the launching process


def test_the_reserved_run_folder_is_never_given_up_during_the_launch(launches):
    run = launches.result("cli")
    launch, rank0 = run["records"]["launch"], run["records"]["rank0"]
    assert Path(launch["save_dir"]) == run["project"] / "train"
    assert launch["save_dir_inode"] is not None  # still there once Ultralytics prepared torchrun's command
    assert rank0["save_dir"] == launch["save_dir"] and rank0["save_dir_inode"] == launch["save_dir_inode"]
    assert (run["project"] / "train" / "weights" / "best.pt").is_file()
    assert sorted(p.name for p in run["project"].iterdir()) == ["train"]


def test_without_trainer_the_ranks_know_our_models_and_train_as_one_process(inputs, launches, tmp_path, monkeypatch):
    one = one_process(inputs, tmp_path, monkeypatch, cli=False)
    assert one["trainer"] == "ultralytics.models.yolo.detect.train.DetectionTrainer"
    assert (one["optimizer"], one["lr0"], one["nbs"], one["accumulate"]) == ("AdamW", 0.002, 64, 4)
    ranks = launches.result("api")["records"]
    assert {"rank0", "rank1"} <= set(ranks)
    for rank in ("rank0", "rank1"):
        assert {k: ranks[rank][k] for k in RECIPE} == {k: one[k] for k in RECIPE}, rank
    # A model built from its YAML in each rank starts from rank 0's weights (DDP broadcasts them). Ultralytics seeds
    # each rank with seed + 1 + RANK, so they differ from a one-process run's (seed): compared between ranks only.
    assert ranks["rank0"]["backbone_sha256"] == ranks["rank1"]["backbone_sha256"] is not None
