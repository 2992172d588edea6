"""Test isolation: Ultralytics settings, runs and fonts live in a temporary directory, never in the repo.

``YOLO_CONFIG_DIR`` must be set before Ultralytics is imported (it reads it at import), so this happens at the
top of conftest. Subprocesses started by tests inherit it. Tests also pass ``project=tmp_path`` explicitly.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_ISOLATED = Path(tempfile.mkdtemp(prefix="lcnet-yolo-tests-"))
os.environ["YOLO_CONFIG_DIR"] = str(_ISOLATED / "ultralytics-config")
os.environ["YOLO_OFFLINE"] = "1"
# Under `pytest -n N` (make test) the N worker processes share the cores: each gets its share of threads.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(max(1, min(2, (os.cpu_count() or 1) // _WORKERS))))

from ultralytics.utils import SETTINGS  # noqa: E402  (after YOLO_CONFIG_DIR)

SETTINGS.update(
    runs_dir=str(_ISOLATED / "runs"), datasets_dir=str(_ISOLATED / "datasets"), weights_dir=str(_ISOLATED / "weights")
)

import lcnet_yolo  # noqa: E402  (registers our layers and models)

SRC_DIR = Path(lcnet_yolo.__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def isolated_dir() -> Path:
    """The session's temporary directory holding Ultralytics' settings and runs."""
    return _ISOLATED


@pytest.fixture(scope="session")
def subprocess_env() -> dict[str, str]:
    """Environment for child Python processes: our sources importable, same isolated Ultralytics config."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC_DIR), env.get("PYTHONPATH", "")) if p)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


# A tiny training run shared by the detector, CLI and export tests. It runs in a child process with networking
# disabled (every connect/DNS call is recorded and refused), without YOLO_OFFLINE set and with an empty
# Ultralytics config dir, so it also shows that `import lcnet_yolo` alone keeps Ultralytics offline.
OFFLINE_TRAIN_SCRIPT = """
import json, socket, sys
attempts = []
def refuse_connect(self, address, *args, **kwargs):
    attempts.append(f"connect {address!r}")
    raise OSError(f"networking is disabled in this test: connect to {address!r}")
def refuse_dns(host, *args, **kwargs):
    attempts.append(f"getaddrinfo {host!r}")
    raise socket.gaierror(f"networking is disabled in this test: resolve {host!r}")
socket.socket.connect = refuse_connect
socket.socket.connect_ex = refuse_connect
socket.getaddrinfo = refuse_dns
socket.create_connection = lambda address, *a, **k: refuse_connect(None, address)

import lcnet_yolo
from ultralytics import YOLO

data, project, model_name = sys.argv[1:4]
model = YOLO(model_name)
model.train(data=data, epochs=1, imgsz=64, batch=4, workers=0, device="cpu", project=project, name="train",
            trainer=lcnet_yolo.LCNetDetectionTrainer, plots=True, seed=0, val=True)
print("RESULT " + json.dumps({"best": str(model.trainer.best), "last": str(model.trainer.last), "attempts": attempts}))
"""

BAD_SAMPLES = {  # file stem in images/train -> what is wrong with it
    "undecodable": "image bytes that are not an image",
    "train_0001": "label with class 3 in a one-class dataset",
    "train_0002": "label with x centre 1.7 (outside the image)",
}
EMPTY_LABEL_SAMPLE = "train_0003"


def make_flawed_dataset(root: Path) -> Path:
    """Synthetic one-class dataset with one undecodable image, two bad label files and one empty label file."""
    from lcnet_yolo.data import make_synthetic_dataset

    data_yaml = make_synthetic_dataset(root, n_train=8, n_val=4, imgsz=64, seed=0)
    (root / "images" / "train" / "undecodable.png").write_bytes(b"this is not a PNG file" * 10)
    (root / "labels" / "train" / "undecodable.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "labels" / "train" / "train_0001.txt").write_text("3 0.5 0.5 0.2 0.2\n")
    (root / "labels" / "train" / "train_0002.txt").write_text("0 1.7 0.5 0.2 0.2\n")
    (root / "labels" / "train" / f"{EMPTY_LABEL_SAMPLE}.txt").write_text("")
    return data_yaml


@pytest.fixture(scope="session")
def offline_training(tmp_path_factory, subprocess_env) -> dict:
    """Train ``yolov8n-pplcnet`` for one epoch at 64 px offline; returns paths, the log and network attempts."""
    import json
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("offline-training")
    data_yaml = make_flawed_dataset(root / "data")
    env = dict(subprocess_env)
    env.pop("YOLO_OFFLINE", None)
    env["YOLO_CONFIG_DIR"] = str(root / "fresh-ultralytics-config")
    proc = subprocess.run(
        [sys.executable, "-c", OFFLINE_TRAIN_SCRIPT, str(data_yaml), str(root / "runs"), "yolov8n-pplcnet.yaml"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    result = json.loads(log.split("RESULT ", 1)[1].splitlines()[0])
    return {
        **result,
        "log": log,
        "data": str(data_yaml),
        "root": root,
        "config_dir": Path(env["YOLO_CONFIG_DIR"]),
        "run_dir": Path(result["best"]).parent.parent,
    }


@pytest.fixture(scope="session")
def best_pt(offline_training) -> Path:
    """``best.pt`` of the shared tiny training run."""
    return Path(offline_training["best"])
