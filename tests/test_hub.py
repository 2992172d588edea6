"""Weights by name: download through a real HTTP server on 127.0.0.1, the verified cache, and every way it fails."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save

from lcnet_yolo import load_pretrained
from lcnet_yolo.cli import main
from lcnet_yolo.io import hub
from lcnet_yolo.io.errors import HubError
from lcnet_yolo.nn import PPLCNet

STEM = "conv1.conv.weight"
TAGS = {0.5: "x0_5", 0.75: "x0_75", 1.0: "x1_0"}  # PaddleClas' file-name spelling of the scales


class Routes(http.server.ThreadingHTTPServer):
    """A loopback server whose answers per path the test sets: ``(mode, body)``; it counts the requests."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        mode, body = self.server.routes.get(self.path, ("missing", b""))
        if mode == "missing":
            self.send_error(404, "Not Found")
            return
        if mode == "redirect":
            self.send_response(302)
            self.send_header("Location", body.decode())
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if mode == "ok":
                self.wfile.write(body)
            elif mode == "truncated":  # announce the whole file, send half, close
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
            elif mode == "slow":  # half now, the rest never (within the test's time): a download to kill
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not getattr(self.server, "stopping", False):
                    time.sleep(0.1)
        except OSError:  # the client went away
            pass


@pytest.fixture(scope="module")
def server():
    routes = Routes()
    thread = threading.Thread(target=routes.serve_forever, daemon=True)
    thread.start()
    yield routes
    routes.stopping = True
    routes.shutdown()
    routes.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch, server) -> Path:
    """An empty weights cache, and a name table whose URLs point at the loopback server."""
    folder = tmp_path / "weights-cache"
    monkeypatch.setenv(hub.WEIGHTS_DIR_ENV, str(folder))
    base = server.base
    monkeypatch.setattr(
        hub,
        "WEIGHTS",
        {
            "imagenet": {s: f"{base}/paddle/PPLCNet_{TAGS[s]}_pretrained.pdparams" for s in (0.5, 0.75, 1.0)},
            "imagenet-ssld": {s: f"{base}/paddle/PPLCNet_{TAGS[s]}_ssld_pretrained.pdparams" for s in (0.5, 1.0)},
            "timm": {0.5: f"{base}/timm/lcnet_050.ra2_in1k/resolve/main/model.safetensors"},
        },
    )
    server.routes.clear()
    server.requests.clear()
    return folder


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def serve(server, name: str, scale: float, body: bytes, mode: str = "ok") -> str:
    url = hub.WEIGHTS[name][scale]
    server.routes[path_of(url)] = (mode, body)
    return url


def model_state(scale: float, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v for k, v in PPLCNet(scale).state_dict().items() if not k.endswith("num_batches_tracked")}


def pdparams_bytes(scale: float, seed: int = 0) -> bytes:
    """A PaddleClas-style ``.pdparams``: a pickled dict of numpy arrays under Paddle's names."""
    params = {}
    for key, value in model_state(scale, seed).items():
        key = key.replace(".running_mean", "._mean").replace(".running_var", "._variance")
        params[key] = np.ascontiguousarray(value.numpy().T if key == "fc.weight" else value.numpy())
    return pickle.dumps(params, protocol=2)


def cached_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_name_downloads_once_and_later_loads_come_from_the_verified_cache(cache, server):
    body = pdparams_bytes(0.5, seed=1)
    url = serve(server, "imagenet", 0.5, body)
    model = PPLCNet(0.5)
    report = load_pretrained(model, "imagenet")
    target = cache / "imagenet" / "PPLCNet_x0_5_pretrained.pdparams"
    assert report.path == str(target) and report.format == "paddleclas"
    assert torch.equal(model.state_dict()[STEM], model_state(0.5, seed=1)[STEM])
    assert target.read_bytes() == body
    record = json.loads((cache / "imagenet" / f"{target.name}.json").read_text())
    assert record["url"] == url and record["size"] == len(body)
    assert record["sha256"] == hashlib.sha256(body).hexdigest()
    assert cached_files(cache) == ["imagenet/PPLCNet_x0_5_pretrained.pdparams", f"imagenet/{target.name}.json"]

    load_pretrained(PPLCNet(0.5), "imagenet")
    assert server.requests == [path_of(url)]  # one download, then the cache


def test_detector_backbone_and_timm_name_load_the_right_file(cache, server):
    from ultralytics import YOLO

    from lcnet_yolo.nn import find_backbone

    torch.manual_seed(0)
    source = timm.create_model("lcnet_050", pretrained=False).state_dict()
    url = serve(server, "timm", 0.5, f"{server.base}/file-store/blob-1".encode(), mode="redirect")
    server.routes["/file-store/blob-1"] = ("ok", save(source))  # the hub redirects to its file store
    detector = YOLO("yolov8n-pplcnet.yaml").model  # PP-LCNet x0.5
    report = load_pretrained(detector, "timm")
    assert Path(report.path) == cache / "timm" / "lcnet_050.ra2_in1k.safetensors"
    assert report.format == "timm" and report.complete
    assert torch.equal(find_backbone(detector).conv1.conv.weight.detach(), source["conv_stem.weight"])
    assert server.requests == [path_of(url), "/file-store/blob-1"]


def test_trainer_loads_the_named_weights_into_the_model_it_builds(cache, server, tmp_path):
    from lcnet_yolo import LCNetDetectionTrainer
    from lcnet_yolo.data import make_synthetic_dataset
    from lcnet_yolo.nn import find_backbone

    data = make_synthetic_dataset(tmp_path / "data", n_train=2, n_val=2, imgsz=64)
    serve(server, "imagenet", 0.5, pdparams_bytes(0.5, seed=6))
    overrides = {"model": "yolov8n-pplcnet.yaml", "data": str(data), "imgsz": 64, "device": "cpu"}
    trainer = LCNetDetectionTrainer(overrides={**overrides, "project": str(tmp_path), "backbone_weights": "imagenet"})
    stem = find_backbone(trainer.model).conv1.conv.weight.detach()
    assert torch.equal(stem, model_state(0.5, seed=6)[STEM])
    assert cached_files(cache)[0] == "imagenet/PPLCNet_x0_5_pretrained.pdparams"


def test_server_error_names_the_url_and_where_to_put_the_file(cache, server):
    url = hub.WEIGHTS["imagenet"][0.5]  # nothing served there: 404
    with pytest.raises(HubError) as error:
        load_pretrained(PPLCNet(0.5), "imagenet")
    target = cache / "imagenet" / "PPLCNet_x0_5_pretrained.pdparams"
    assert str(error.value) == (
        f"cannot download {url} (HTTP 404 Not Found); download it by other means and put it at {target}"
    )
    assert cached_files(cache) == []


def test_offline_then_a_file_put_by_hand_is_used_and_recorded(cache, server, monkeypatch):
    with __import__("socket").socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/PPLCNet_x0_5_pretrained.pdparams"
    monkeypatch.setitem(hub.WEIGHTS, "imagenet", {0.5: url})
    with pytest.raises(HubError) as error:
        load_pretrained(PPLCNet(0.5), "imagenet")
    target = cache / "imagenet" / "PPLCNet_x0_5_pretrained.pdparams"
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"cannot download {url} (")
    assert message.endswith(f"put it at {target}") and "refused" in message.lower()  # connection refused

    body = pdparams_bytes(0.5, seed=2)
    assert cached_files(cache) == []  # the failed download left an empty folder, no file
    target.write_bytes(body)
    model = PPLCNet(0.5)
    assert load_pretrained(model, "imagenet").path == str(target)
    assert torch.equal(model.state_dict()[STEM], model_state(0.5, seed=2)[STEM])
    record = json.loads(hub.record_path(target).read_text())
    assert record["sha256"] == hashlib.sha256(body).hexdigest() and "by hand" in record["how"]


def test_file_put_by_hand_that_runs_code_is_refused_before_it_is_recorded(cache, tmp_path):
    marker = tmp_path / "pwned"

    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    target = hub.cache_path("imagenet", 0.5)
    target.parent.mkdir(parents=True)
    target.write_bytes(pickle.dumps({STEM: RunsCode()}))
    with pytest.raises(HubError) as error:
        load_pretrained(PPLCNet(0.5), "imagenet")
    assert str(error.value).startswith(f"refused {target}: ") and str(error.value).endswith("nothing was recorded")
    assert not marker.exists() and not hub.record_path(target).exists()


def test_truncated_response_leaves_nothing_in_the_cache(cache, server):
    body = pdparams_bytes(0.5)
    url = serve(server, "imagenet", 0.5, body, mode="truncated")
    with pytest.raises(HubError) as error:
        load_pretrained(PPLCNet(0.5), "imagenet")
    assert str(error.value).startswith(
        f"cannot download {url} (the connection closed after {len(body) // 2} of {len(body)} bytes)"
    )
    assert cached_files(cache) == []


def test_file_of_another_scale_on_the_server_is_refused_and_not_cached(cache, server):
    url = serve(server, "imagenet", 0.5, pdparams_bytes(1.0))
    with pytest.raises(HubError) as error:
        load_pretrained(PPLCNet(0.5), "imagenet")
    message = str(error.value)
    assert message.startswith(f"refused {url}: ") and "PP-LCNet x1 " in message and "PP-LCNet x0.5" in message
    assert message.endswith("nothing was cached") and "\n" not in message
    assert cached_files(cache) == []


def test_pickle_that_runs_code_is_refused_and_runs_nothing(cache, server, tmp_path):
    marker = tmp_path / "pwned"

    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    url = serve(server, "imagenet", 0.5, pickle.dumps({"conv1.conv.weight": RunsCode()}))
    with pytest.raises(HubError) as error:
        load_pretrained(PPLCNet(0.5), "imagenet")
    message = str(error.value)
    assert message.startswith(f"refused {url}: ") and "pickle" in message and "\n" not in message
    assert not marker.exists()
    assert cached_files(cache) == []


def test_changed_cached_file_and_changed_server_file_are_refused(cache, server):
    original = pdparams_bytes(0.5, seed=3)
    url = serve(server, "imagenet", 0.5, original)
    target = hub.fetch("imagenet", 0.5)

    target.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # same size, one bit flipped
    with pytest.raises(HubError) as error:
        load_pretrained(PPLCNet(0.5), "imagenet")
    assert str(error.value).startswith(f"{target} changed since it was recorded on ")
    assert str(error.value).endswith("refused: delete it to download it again")

    target.unlink()  # download again: the server now serves other bytes
    serve(server, "imagenet", 0.5, pdparams_bytes(0.5, seed=4))
    with pytest.raises(HubError) as error:
        hub.fetch("imagenet", 0.5)
    assert str(error.value).startswith(f"{url} now serves a different file than the one recorded on ")
    assert not target.exists()
    assert json.loads(hub.record_path(target).read_text())["sha256"] == hashlib.sha256(original).hexdigest()

    serve(server, "imagenet", 0.5, original)  # the original bytes are accepted again
    assert hub.fetch("imagenet", 0.5).read_bytes() == original


KILLED_DOWNLOAD = """
import sys
from lcnet_yolo.io import hub
hub.WEIGHTS["imagenet"] = {0.5: sys.argv[1]}
hub.fetch("imagenet", 0.5)
"""


@pytest.mark.slow
def test_download_killed_midway_leaves_no_complete_looking_file_and_the_next_run_completes(
    cache, server, subprocess_env
):
    body = pdparams_bytes(0.5, seed=5)
    url = serve(server, "imagenet", 0.5, body, mode="slow")
    env = {**subprocess_env, hub.WEIGHTS_DIR_ENV: str(cache)}
    child = subprocess.Popen([sys.executable, "-c", KILLED_DOWNLOAD, url], env=env, stderr=subprocess.PIPE)
    folder = cache / "imagenet"

    def download_started() -> bool:
        return any(p.stat().st_size for p in folder.glob("*.part")) if folder.exists() else False

    deadline = time.monotonic() + 180
    while not download_started():
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stderr.close()
    parts = [p.name for p in folder.iterdir()]
    assert parts == [f"PPLCNet_x0_5_pretrained.pdparams.{child.pid}.part"]  # no final name, no record

    serve(server, "imagenet", 0.5, body)
    target = hub.fetch("imagenet", 0.5)
    assert target.read_bytes() == body
    assert cached_files(cache) == ["imagenet/PPLCNet_x0_5_pretrained.pdparams", f"imagenet/{target.name}.json"]


def test_unknown_name_and_name_of_another_scale_say_what_is_valid(cache):
    with pytest.raises(HubError) as error:
        load_pretrained(PPLCNet(0.75), "imagenet-sld")
    assert str(error.value) == (
        "unknown backbone weights 'imagenet-sld': names for PP-LCNet x0.75 are imagenet "
        "(or give a weights file path; `lcnet-yolo weights` lists them all)"
    )
    with pytest.raises(HubError) as error:
        load_pretrained(PPLCNet(0.75), "imagenet-ssld")
    assert str(error.value) == (
        "backbone weights 'imagenet-ssld' exist for PP-LCNet x0.5, x1.0 only, not for the model's x0.75 "
        "(names for x0.75: imagenet)"
    )
    assert cached_files(cache) == []


def test_real_table_covers_the_published_scales():
    assert sorted(hub.WEIGHTS["imagenet"]) == [0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5]
    assert sorted(hub.WEIGHTS["imagenet-ssld"]) == [0.5, 1.0, 2.5]
    assert sorted(hub.WEIGHTS["timm"]) == [0.5, 0.75, 1.0]
    for name, files in hub.WEIGHTS.items():
        for scale, url in files.items():
            assert url.startswith("https://"), (name, scale)
    assert hub.file_name(hub.WEIGHTS["timm"][0.75]) == "lcnet_075.ra2_in1k.safetensors"
    assert hub.file_name(hub.WEIGHTS["imagenet-ssld"][2.5]) == "PPLCNet_x2_5_ssld_pretrained.pdparams"


def test_weights_command_lists_names_scales_urls_and_the_cache(cache, server, capsys):
    serve(server, "imagenet", 0.5, pdparams_bytes(0.5))
    hub.fetch("imagenet", 0.5)
    capsys.readouterr()
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    assert f"cache: {cache}" in out
    rows = {tuple(line.split()[:2]): line for line in out.splitlines()[4:]}
    assert len(rows) == 6
    assert "SHA-256 ok" in rows[("imagenet", "x0.5")] and hub.WEIGHTS["imagenet"][0.5] in rows[("imagenet", "x0.5")]
    assert rows[("timm", "x0.5")].split()[2] == "-"


def test_cli_train_with_a_name_of_another_scale_is_one_line(cache, capsys, tmp_path):
    code = main(["train", "model=yolov8n-pplcnet-abl-x0.75.yaml", "backbone_weights=imagenet-ssld"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "'imagenet-ssld' exist for PP-LCNet x0.5, x1.0 only, not for the model's x0.75" in err


def test_weights_doc_table_is_the_code_table():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "weights.md").read_text()
    rows = set()
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].strip("`") in hub.WEIGHTS and cells[1].startswith("x"):
            rows.add((cells[0].strip("`"), float(cells[1][1:]), cells[3]))
    assert rows == {(name, scale, url) for name, files in hub.WEIGHTS.items() for scale, url in files.items()}


def test_names_and_paths_are_told_apart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "timm").mkdir()  # a folder named like a weights name (a timm checkout) does not hide the name
    (tmp_path / "imagenet").write_bytes(b"")  # a file of that name is the file
    assert hub.is_weights_name("timm") and hub.is_weights_name("imagenet-sld")
    assert not hub.is_weights_name("imagenet")
    assert not any(map(hub.is_weights_name, ["x.pdparams", "weights/x", "lcnet_050.ra2_in1k", "", "."]))
