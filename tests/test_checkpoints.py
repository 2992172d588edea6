"""Untrusted and damaged weight files: safe loading, .safetensors conversion, one clear error per bad file."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lcnet_yolo.data import make_synthetic_dataset
from lcnet_yolo.io.checkpoints import load_yolo, verify_file
from lcnet_yolo.io.errors import WeightsError
from lcnet_yolo.io.safe_load import restricted_loading, safe_load
from lcnet_yolo.io.safetensors import METADATA_FORMAT, convert, load_safetensors

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def best_pt(tmp_path_factory) -> Path:
    """``best.pt`` of a real one-epoch training of yolov8n-pplcnet on tiny synthetic images."""
    from ultralytics import YOLO

    root = tmp_path_factory.mktemp("ckpt")
    data = make_synthetic_dataset(root / "data", n_train=8, n_val=4, imgsz=64)
    YOLO("yolov8n-pplcnet.yaml").train(
        data=str(data), epochs=1, imgsz=64, batch=4, workers=0, device="cpu", project=str(root / "runs"),
        name="train", plots=False, verbose=False,
    )  # fmt: skip
    return root / "runs" / "train" / "weights" / "best.pt"


class RunsShell:
    """Pickles into a call of ``os.system`` that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _one_line_naming(error: Exception, path: Path) -> str:
    message = str(error)
    assert message.startswith(str(path)), message
    assert "\n" not in message and len(message) < 400, message
    return message


# --------------------------------------------------------------------------------------------------- safe loading
def test_ultralytics_safe_mode_refuses_our_classes_until_they_are_allow_listed(best_pt):
    script = f"""
import torch
import lcnet_yolo
from lcnet_yolo.io.safe_load import allow_our_classes
from ultralytics import YOLO
torch.serialization.clear_safe_globals()
try:
    YOLO({str(best_pt)!r})
    print("loaded before allow-listing")
except TypeError as error:
    print("refused before:", error)
allow_our_classes()
print("loaded after:", type(YOLO({str(best_pt)!r}).model).__name__)
print("built:", type(YOLO("yolov8n-pplcnet.yaml").model.model[0]).__name__)
"""
    env = {**os.environ, "PYTHONPATH": str(SRC), "YOLO_OFFLINE": "1", "ULTRALYTICS_SAFE_LOAD": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused before:" in out.stdout and "references types outside" in out.stdout
    assert "loaded after: DetectionModel" in out.stdout
    assert "built: PPLCNetBackbone" in out.stdout  # YAML models build under the restricted (no-eval) parser


def test_safe_load_rebuilds_a_trained_checkpoint(best_pt):
    ckpt = safe_load(best_pt)
    model = ckpt["model"]
    assert type(model).__name__ == "DetectionModel"
    assert model.names == {0: "box"}
    assert any(type(m).__name__ == "PPLCNetBackbone" for m in model.modules())
    assert ckpt["train_args"]["imgsz"] == 64


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")
@pytest.mark.parametrize("kind", ["torch.save", "pickle-protocol-2", "pickle-protocol-4"])
def test_a_checkpoint_whose_pickle_runs_code_is_refused_before_it_runs(tmp_path, kind):
    marker = tmp_path / "marker"
    evil = tmp_path / "best.pt"
    payload = {"model": RunsShell(marker), "epoch": 3}
    if kind == "torch.save":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload, protocol=int(kind[-1])))
    for load in (safe_load, verify_file, load_yolo):
        with pytest.raises(WeightsError) as caught:
            load(evil)
        message = _one_line_naming(caught.value, evil)
        assert "refused to load" in message and "could run code" in message
    if kind != "pickle-protocol-4":  # protocol 4 is refused on its framing opcode, before any name is read
        assert "posix.system" in message
    from ultralytics import YOLO

    with restricted_loading(), pytest.raises(WeightsError, match="refused to load"):  # the mode load_yolo opens in
        YOLO(str(evil))
    assert not marker.exists()
    pickle.loads(pickle.dumps(RunsShell(marker)))  # the payload does work when unpickled without restriction
    assert marker.exists()


def test_load_yolo_gives_the_same_model_as_yolo(best_pt):
    from ultralytics import YOLO

    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = YOLO(str(best_pt)).model.eval()(x)[0]
        got = load_yolo(best_pt).model.eval()(x)[0]
    assert torch.equal(expected, got)


# ---------------------------------------------------------------------------------------------------- safetensors
def test_converted_safetensors_gives_identical_outputs_and_records_the_model(best_pt, tmp_path):
    from safetensors import safe_open
    from ultralytics import YOLO

    import lcnet_yolo

    dst = convert(best_pt, tmp_path / "best.safetensors")
    with safe_open(str(dst), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == METADATA_FORMAT
    assert meta["model_name"] == "yolov8n-pplcnet.yaml"
    assert meta["scale"] == "n" and json.loads(meta["backbone_scale"]) == 0.5
    assert meta["nc"] == "1" and json.loads(meta["names"]) == {"0": "box"}
    assert meta["lcnet_yolo_version"] == lcnet_yolo.__version__
    assert json.loads(meta["model_yaml"])["backbone"][0][2] == "PPLCNetBackbone"

    original, restored = YOLO(str(best_pt)), load_safetensors(dst)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = original.model.eval()(x)[0], restored.model.eval()(x)[0]
    assert a.shape == b.shape and torch.equal(a, b)
    image = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    pa = original.predict(image, imgsz=64, conf=0.0, verbose=False)[0]
    pb = restored.predict(image, imgsz=64, conf=0.0, verbose=False)[0]
    assert restored.names == {0: "box"}
    assert torch.equal(pa.boxes.data, pb.boxes.data)


def test_a_safetensors_file_whose_metadata_would_run_code_is_refused(best_pt, tmp_path):
    import safetensors.torch

    dst = convert(best_pt, tmp_path / "good.safetensors")
    tensors = safetensors.torch.load_file(str(dst))
    from safetensors import safe_open

    with safe_open(str(dst), framework="pt") as f:
        meta = f.metadata()
    marker = tmp_path / "marker"
    cfg = json.loads(meta["model_yaml"])
    evil_activation = {**cfg, "activation": f"__import__('os').system('touch {marker}')"}
    evil_layer = {**cfg, "head": [*cfg["head"][:-1], [-1, 1, "torch_safe_load", [str(tmp_path / "x.pt")]]]}
    for i, evil_cfg in enumerate((evil_activation, evil_layer)):
        evil = tmp_path / f"evil{i}.safetensors"
        safetensors.torch.save_file(tensors, str(evil), metadata={**meta, "model_yaml": json.dumps(evil_cfg)})
        with pytest.raises(WeightsError, match="invalid metadata"):
            load_safetensors(evil)
    assert not marker.exists()


def test_a_safetensors_file_that_does_not_fit_its_model_is_refused(best_pt, tmp_path):
    import safetensors.torch

    dst = convert(best_pt, tmp_path / "good.safetensors")
    from safetensors import safe_open

    with safe_open(str(dst), framework="pt") as f:
        meta = f.metadata()
    tensors = safetensors.torch.load_file(str(dst))
    tensors.pop(next(k for k in tensors if k.endswith(".conv.weight")))
    bad = tmp_path / "missing.safetensors"
    safetensors.torch.save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(WeightsError, match="do not fit the recorded model"):
        load_safetensors(bad)
    plain = tmp_path / "plain.safetensors"
    safetensors.torch.save_file(tensors, str(plain))
    with pytest.raises(WeightsError, match="no lcnet-yolo metadata"):
        load_safetensors(plain)


# ------------------------------------------------------------------------------------------------- damaged files
@pytest.fixture(scope="module")
def whole_files(best_pt, tmp_path_factory) -> dict[str, Path]:
    import onnx
    from onnx import TensorProto, helper

    root = tmp_path_factory.mktemp("whole")
    weight = helper.make_tensor("w", TensorProto.FLOAT, [8, 3, 3, 3], np.ones(216, np.float32).tolist())
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "w"], ["out"], pads=[1, 1, 1, 1])],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8, 16, 16])],
        [weight],
    )
    onnx_path = root / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(onnx_path))
    pdparams = root / "PPLCNet_x0_25_pretrained.pdparams"  # what Paddle writes: a pickled dict of numpy arrays
    arrays = {"conv1.conv.weight": np.ones((8, 3, 3, 3), np.float32), "conv1.bn._mean": np.zeros(8, np.float32)}
    pdparams.write_bytes(pickle.dumps(arrays, protocol=2))
    return {
        "pt": best_pt,
        "safetensors": convert(best_pt, root / "best.safetensors"),
        "onnx": onnx_path,
        "pdparams": pdparams,
    }


@pytest.mark.parametrize("fmt", ["pt", "safetensors", "onnx", "pdparams"])
@pytest.mark.parametrize("keep", [0.0, 0.01, 0.5, 0.99])
def test_a_truncated_weights_file_gives_one_clear_error_naming_it(whole_files, tmp_path, fmt, keep):
    whole = whole_files[fmt]
    assert verify_file(whole) == fmt
    data = whole.read_bytes()
    damaged = tmp_path / whole.name
    damaged.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(WeightsError) as caught:
        verify_file(damaged)
    message = _one_line_naming(caught.value, damaged)
    assert ("empty (0 bytes)" if keep == 0 else "truncated or corrupt") in message


def test_a_half_precision_onnx_export_passes_the_file_check_and_predicts_through_the_cli(
    best_pt, tmp_path, capsys, monkeypatch
):
    import onnx
    from ultralytics import YOLO

    from lcnet_yolo.cli import main

    weights = tmp_path / "best.pt"
    weights.write_bytes(best_pt.read_bytes())
    exported = Path(YOLO(str(weights)).export(format="onnx", half=True, imgsz=64, device="cpu"))
    model = onnx.load(str(exported))
    assert onnx.TensorProto.FLOAT16 in {init.data_type for init in model.graph.initializer}
    with pytest.raises(onnx.checker.ValidationError, match="topologically sorted"):
        onnx.checker.check_model(model)  # the strict checker's rule that the FP16 conversion does not keep
    assert verify_file(exported) == "onnx"
    image = tmp_path / "images" / "one.png"
    image.parent.mkdir()
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(image)
    args = ["predict", f"model={exported}", f"source={image.parent}", "imgsz=64", f"project={tmp_path}", "name=p"]
    assert main([*args, "save_txt=True", "conf=0.0"]) == 0, capsys.readouterr().err
    rows = [line.split() for line in (tmp_path / "p" / "labels" / "one.txt").read_text().splitlines()]
    assert rows and all(len(row) == 5 and row[0] == "0" for row in rows)  # class 0 and a box, from the FP16 model
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(exported.read_bytes()[: exported.stat().st_size // 2])
    with pytest.raises(WeightsError, match="not a readable ONNX model: truncated or corrupted"):
        verify_file(damaged)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # without onnxruntime: ONNX's checker, node order aside
    assert verify_file(exported) == "onnx"
    with pytest.raises(WeightsError, match="not a readable ONNX model: truncated or corrupted"):
        verify_file(damaged)


def test_zeroed_bytes_inside_a_checkpoint_are_caught_by_their_checksums(whole_files, tmp_path):
    from ultralytics import YOLO

    data = bytearray(whole_files["pt"].read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = bytes(64)  # lands in tensor data, which torch.load never checks
    damaged = tmp_path / "best.pt"
    damaged.write_bytes(bytes(data))
    YOLO(str(damaged))  # Ultralytics (torch.load) loads the damaged weights without a word
    with pytest.raises(WeightsError) as caught:
        verify_file(damaged)
    assert "checksum" in _one_line_naming(caught.value, damaged)


def test_yolo_own_messages_for_truncated_pt_and_onnx_name_the_file(whole_files, tmp_path):
    """What a user sees without our checks: Ultralytics' TypeError is clear, though multi-line."""
    from ultralytics import YOLO

    for fmt in ("pt", "onnx"):
        damaged = tmp_path / whole_files[fmt].name
        damaged.write_bytes(whole_files[fmt].read_bytes()[:1000])
        with pytest.raises(TypeError) as caught:
            YOLO(str(damaged), task="detect").predict(np.zeros((16, 16, 3), np.uint8), imgsz=16, verbose=False)
        assert str(damaged) in str(caught.value)
        assert "empty, truncated or corrupted" in str(caught.value)


def test_missing_empty_and_unknown_files_give_one_clear_error(tmp_path):
    cases = {
        tmp_path / "nope.pt": "no such file",
        tmp_path / "empty.safetensors": "empty (0 bytes)",
        tmp_path / "weights.bin": "unknown weights format '.bin'",
    }
    (tmp_path / "empty.safetensors").write_bytes(b"")
    (tmp_path / "weights.bin").write_bytes(b"\0" * 10)
    for path, expected in cases.items():
        with pytest.raises(WeightsError) as caught:
            verify_file(path)
        assert expected in _one_line_naming(caught.value, path)


def test_verify_file_refuses_a_pdparams_whose_pickle_runs_code(tmp_path):
    marker = tmp_path / "marker"
    evil = tmp_path / "PPLCNet_x0_5_pretrained.pdparams"
    evil.write_bytes(pickle.dumps({"conv1.conv.weight": np.zeros(3, np.float32), "x": RunsShell(marker)}, protocol=2))
    with pytest.raises(WeightsError) as caught:
        verify_file(evil)
    message = _one_line_naming(caught.value, evil)
    assert "refused" in message and "posix.system" in message
    assert not marker.exists()
