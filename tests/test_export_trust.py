"""Exported models from elsewhere: every malformed metadata field, graph or source is one line and exit status 2.

Covers ``lcnet-yolo-infer`` (the torch-free runtime: ONNX and OpenVINO folders) and ``lcnet-yolo val/predict`` on
exports. Models are tiny graphs built with ``onnx.helper`` (no training): one float input (1, 3, 64, 64), one
output (1, 4 + nc, 8). Each refusal has a positive control: the same model with well-formed metadata runs (exit 0),
and a ``!!python`` tag does run its payload when the YAML is loaded unsafely. A seeded fuzz of ONNX and OpenVINO
metadata asserts only the one-line error.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"
if importlib.util.find_spec("lcnet_yolo_runtime") is None:  # not installed: use the sources
    sys.path.insert(0, str(RUNTIME_DIR / "src"))

from lcnet_yolo_runtime import Detector  # noqa: E402
from lcnet_yolo_runtime.backends import read_sidecar  # noqa: E402
from lcnet_yolo_runtime.cli import main as infer_main  # noqa: E402
from lcnet_yolo_runtime.errors import InputError  # noqa: E402
from lcnet_yolo_runtime.metadata import check_metadata  # noqa: E402

BIN = Path(sys.executable).parent
IMGSZ = 64
GOOD = {"task": "detect", "stride": "32", "names": "{0: 'tree'}", "imgsz": "[64, 64]", "args": "{'nms': False}"}


def tiny_onnx(
    path: Path,
    metadata: dict[str, str] | None = None,
    nc: int = 1,
    input_type: int = TensorProto.FLOAT,
    inputs: bool = True,
    failing: bool = False,
) -> Path:
    """A detector-shaped ONNX graph: scores and boxes that do not depend much on the picture, but are computed."""
    rows = 4 + nc
    const = np.zeros((1, rows, 8), np.float32)
    const[0, :4] = np.array([[32], [32], [16], [16]], np.float32)
    if nc:
        const[0, 4:, 0] = 0.9
    nodes = [helper.make_node("Constant", [], ["base"], value=helper.make_tensor("v", TensorProto.FLOAT, const.shape,
                                                                               const.ravel().tolist()))]  # fmt: skip
    graph_inputs = []
    if inputs:
        graph_inputs = [helper.make_tensor_value_info("images", input_type, [1, 3, IMGSZ, IMGSZ])]
        cast = "images"
        if input_type != TensorProto.FLOAT:
            nodes.append(helper.make_node("Cast", ["images"], ["as_float"], to=TensorProto.FLOAT))
            cast = "as_float"
        nodes.append(helper.make_node("ReduceMean", [cast], ["mean"], keepdims=0))
        nodes.append(helper.make_node("Mul", ["mean", "zero"], ["nothing"]))
        nodes.append(helper.make_node("Add", ["base", "nothing"], ["pre"]))
    else:
        nodes.append(helper.make_node("Identity", ["base"], ["pre"]))
    if failing:  # a Reshape whose target shape does not fit: fails when run, not when loaded
        nodes.append(helper.make_node("Reshape", ["pre", "bad_shape"], ["output0"]))
    else:
        nodes.append(helper.make_node("Identity", ["pre"], ["output0"]))
    initializers = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])]
    if failing:
        initializers.append(helper.make_tensor("bad_shape", TensorProto.INT64, [3], [1, 7, 3]))
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, None if failing else [1, rows, 8])
    graph = helper.make_graph(nodes, "tiny", graph_inputs, [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (GOOD if metadata is None else metadata).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("picture") / "picture.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 96, 3), np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def good_onnx(tmp_path_factory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("good") / "good.onnx")


def run_infer(capsys, *args) -> tuple[int, list[str], list[str]]:
    status = infer_main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err.splitlines()


def one_line(status: int, err: list[str], prefix: str = "lcnet-yolo-infer: error: ") -> str:
    assert status == 2, err
    assert len(err) == 1, err
    assert err[0].startswith(prefix) and "Traceback" not in err[0]
    return err[0]


def run_executable(name: str, *args, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(RUNTIME_DIR / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [str(BIN / name), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


# ------------------------------------------------------------------------------------- positive control: it runs
def test_the_tiny_model_runs_with_good_metadata(good_onnx, picture, capsys):
    status, out, err = run_infer(capsys, good_onnx, picture, "--json", "--output", good_onnx.parent / "out")
    assert status == 0, err
    assert out[-1].startswith("1 image: 1 boxes")


# -------------------------------------------------------------------------------------- ONNX metadata, one field
BAD_ONNX_METADATA = {
    "names keyed by a list": ("names", "{[0]: 'tree'}", "metadata 'names' is unusable"),
    "names keyed by strings": ("names", "{'a': 'tree'}", "metadata 'names' is unusable"),
    "names a set": ("names", "{'tree', 'bush'}", "metadata 'names' is unusable"),
    "no class names": ("names", "{}", "zero classes"),
    "names a number": ("names", "7", "metadata 'names' is unusable"),
    "stride abc": ("stride", "abc", "metadata 'stride' 'abc' is not a positive integer"),
    "stride 0": ("stride", "0", "metadata 'stride' 0 is not a positive integer"),
    "stride huge": ("stride", "10**100", "metadata 'stride'"),
    "args a list": ("args", "[1, 2]", "metadata 'args' is a list, not a mapping"),
    "imgsz text": ("imgsz", "'big'", "metadata 'imgsz'"),
    "task a list": ("task", "['detect']", "metadata 'task'"),
    "end2end a dict": ("end2end", "{1: 2}", "metadata 'end2end'"),
    "batch -1": ("batch", "-1", "metadata 'batch'"),
}


@pytest.mark.parametrize("case", list(BAD_ONNX_METADATA))
def test_malformed_onnx_metadata_is_one_line(case, tmp_path, picture, capsys):
    key, value, expected = BAD_ONNX_METADATA[case]
    model = tiny_onnx(tmp_path / "model.onnx", {**GOOD, key: value})
    message = one_line(*run_infer(capsys, model, picture)[::2])
    assert expected in message and "model.onnx" in message


BAD_GRAPHS = {
    "uint8 input": ({"input_type": TensorProto.UINT8}, "takes tensor(uint8) input"),
    "no input": ({"inputs": False}, "has 0 inputs"),
    "zero classes": ({"nc": 0}, "zero classes"),
    "a failing node": ({"failing": True}, "failed to run"),
}


@pytest.mark.parametrize("case", list(BAD_GRAPHS))
def test_malformed_graphs_are_one_line(case, tmp_path, picture, capsys):
    options, expected = BAD_GRAPHS[case]
    metadata = {**GOOD, "names": "{}"} if options.get("nc") == 0 else GOOD
    if options.get("nc") == 0:  # names given on the command line: the graph itself has no class rows
        status, _, err = run_infer(capsys, tiny_onnx(tmp_path / "m.onnx", metadata, **options), picture, "--names", "a")
    else:
        status, _, err = run_infer(capsys, tiny_onnx(tmp_path / "m.onnx", metadata, **options), picture)
    assert expected in one_line(status, err)


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_devices_and_pipes_are_refused_without_reading_them(good_onnx, tmp_path, capsys):
    for source in ("/dev/null", make_fifo(tmp_path / "pipe.png")):
        message = one_line(*run_infer(capsys, good_onnx, source)[::2])
        assert message.endswith(f"source {source} is not a regular file or folder (a device or a pipe?)")
    for model in ("/dev/null", make_fifo(tmp_path / "pipe.onnx")):
        message = one_line(*run_infer(capsys, model, tmp_path)[::2])
        assert message.endswith(f"model {model} is not a regular file or folder (a device or a pipe?)")
    with pytest.raises(InputError, match="not a regular file"):
        Detector(good_onnx).predict(tmp_path / "pipe.png")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_the_executable_gives_one_line_for_bad_models_and_sources(good_onnx, picture, tmp_path):
    cases = [
        (tiny_onnx(tmp_path / "stride.onnx", {**GOOD, "stride": "0"}), picture, "metadata 'stride' 0"),
        (tiny_onnx(tmp_path / "names.onnx", {**GOOD, "names": "{[0]: 'a'}"}), picture, "metadata 'names'"),
        (tiny_onnx(tmp_path / "u8.onnx", input_type=TensorProto.UINT8), picture, "tensor(uint8)"),
        (good_onnx, make_fifo(tmp_path / "fifo.jpg"), "a device or a pipe"),
        (good_onnx, "/dev/null", "a device or a pipe"),
    ]
    for model, source, expected in cases:
        proc = run_executable("lcnet-yolo-infer", model, source, cwd=tmp_path, timeout=60)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("lcnet-yolo-infer: error: ") and expected in lines[0]


# ---------------------------------------------------------------------------------- OpenVINO metadata.yaml sidecar
@pytest.fixture(scope="module")
def openvino_folder(tmp_path_factory) -> Path:
    ov = pytest.importorskip("openvino")
    folder = tmp_path_factory.mktemp("ov") / "tiny_openvino_model"
    folder.mkdir()
    source = tiny_onnx(folder.parent / "tiny.onnx")
    ov.save_model(ov.convert_model(str(source)), str(folder / "tiny.xml"), compress_to_fp16=False)
    (folder / "metadata.yaml").write_text("task: detect\nstride: 32\nimgsz: [64, 64]\nnames:\n  0: tree\n")
    return folder


def copy_with_metadata(folder: Path, target: Path, metadata: bytes | None) -> Path:
    shutil.copytree(folder, target)
    if metadata is not None:
        (target / "metadata.yaml").write_bytes(metadata)
    return target


def test_openvino_folder_runs_with_good_metadata(openvino_folder, picture, capsys):
    status, out, err = run_infer(capsys, openvino_folder, picture)
    assert status == 0, err
    assert out[-1].startswith("1 image: 1 boxes")


def test_a_python_tag_in_openvino_metadata_is_refused_not_run(openvino_folder, picture, tmp_path, capsys):
    import yaml

    marker = tmp_path / "ran"
    payload = f"!!python/object/apply:os.system ['touch {marker}']\n".encode()
    yaml.unsafe_load(payload)  # positive control: loaded without protection, the tag runs its command
    assert marker.exists()
    marker.unlink()
    model = copy_with_metadata(openvino_folder, tmp_path / "evil_openvino_model", b"names: " + payload)
    message = one_line(*run_infer(capsys, model, picture)[::2])
    assert "metadata.yaml holds a Python tag (!!python/...), refused" in message
    proc = run_executable("lcnet-yolo-infer", model, picture, cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "a Python tag" in proc.stderr
    assert not marker.exists()


BAD_SIDECARS = {
    "invalid YAML": (b"names: [unclosed\n", "is not valid YAML"),
    "non-UTF-8 bytes": (b"names: {0: \xff\xfe}\n", "is not UTF-8 text"),
    "a list": (b"- 1\n- 2\n", "holds a list, not a mapping"),
    "names a set": (b"names: !!set {a: null}\nstride: 32\nimgsz: 64\n", "metadata 'names'"),
    "stride 0": (b"names: {0: tree}\nstride: 0\nimgsz: 64\n", "metadata 'stride' 0"),
    "args a list": (b"names: {0: tree}\nargs: [1]\nimgsz: 64\n", "metadata 'args' is a list"),
}


@pytest.mark.parametrize("case", list(BAD_SIDECARS))
def test_malformed_openvino_metadata_is_one_line(case, openvino_folder, picture, tmp_path, capsys):
    content, expected = BAD_SIDECARS[case]
    model = copy_with_metadata(openvino_folder, tmp_path / "m_openvino_model", content)
    assert expected in one_line(*run_infer(capsys, model, picture)[::2])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_unreadable_openvino_metadata_is_one_line(openvino_folder, picture, tmp_path, capsys):
    pipe = copy_with_metadata(openvino_folder, tmp_path / "pipe_openvino_model", None)
    (pipe / "metadata.yaml").unlink()
    os.mkfifo(pipe / "metadata.yaml")
    assert "metadata.yaml is not a regular file" in one_line(*run_infer(capsys, pipe, picture)[::2])
    folder = copy_with_metadata(openvino_folder, tmp_path / "dir_openvino_model", None)
    (folder / "metadata.yaml").unlink()
    (folder / "metadata.yaml").mkdir()
    assert "metadata.yaml is not a regular file" in one_line(*run_infer(capsys, folder, picture)[::2])


# ------------------------------------------------------------------------------------------------ seeded fuzz
FUZZ_VALUES = [
    "", "0", "-1", "32", "1e9", "abc", "None", "True", "[]", "{}", "()", "[1, 2, 3]", "{0: 'a'}", "{1: 'a'}",
    "{'0': 'a'}", "{0: 1}", "{0: None}", "{0: [1]}", "{[1]: 2}", "{(1, 2): 'a'}", "{'a', 'b'}", "b'x'", "1j",
    "[[[[[[[[[[]]]]]]]]]]", "(" * 200 + ")" * 200, "'" * 3, "__import__('os')", "lambda: 0", "{0: 'a', 0.5: 'b'}",
    "[64, 64, 64]", "[0, 64]", "[64.5]", "'64,64'", "{'nms': 'yes'}", "[{'nms': True}]", "\x00", "\u202e", "9" * 400,
]  # fmt: skip
FUZZ_KEYS = ["names", "stride", "imgsz", "args", "task", "end2end", "batch"]


def fuzz_metadata(rng: random.Random) -> dict:
    metadata = dict(GOOD)
    for key in rng.sample(FUZZ_KEYS, rng.randint(1, 3)):
        metadata[key] = rng.choice(FUZZ_VALUES)
    return metadata


def test_fuzzed_onnx_metadata_is_accepted_or_one_line():
    """300 seeded metadata sets through the runtime's metadata check: a ModelInfo or an InputError, nothing else."""
    from lcnet_yolo_runtime.metadata import model_info

    rng, refused = random.Random(20), 0
    for _ in range(300):
        metadata = fuzz_metadata(rng)
        try:
            info = model_info(metadata, "fuzz.onnx", (IMGSZ, IMGSZ))
        except InputError as error:
            refused += 1
            assert "\n" not in str(error) and str(error)
        else:
            assert info.names and info.stride >= 1 and min(info.imgsz) >= 1
    assert refused > 150  # most random sets are refused; some are valid


def test_fuzzed_onnx_metadata_is_accepted_or_one_line_by_lcnet_yolo():
    """The same 300 sets through the check ``lcnet-yolo val/predict`` runs on exports: a dict or one ValueError line."""
    from lcnet_yolo.formats.metadata import check_metadata as check_export

    rng, refused = random.Random(20), 0
    for _ in range(300):
        try:
            parsed = check_export(fuzz_metadata(rng), "fuzz.onnx")
        except ValueError as error:
            refused += 1
            assert str(error).startswith("fuzz.onnx: metadata '") and "\n" not in str(error)
        else:
            assert isinstance(parsed.get("args", {}), dict) and parsed.get("stride", 32) >= 1
    assert refused > 150


def test_fuzzed_onnx_metadata_through_the_command(tmp_path, picture, capsys):
    rng = random.Random(21)
    for index in range(6):
        metadata = fuzz_metadata(rng)
        model = tiny_onnx(tmp_path / f"fuzz{index}.onnx", metadata)
        status, _, err = run_infer(capsys, model, picture)
        assert status in (0, 2) and len(err) == (status == 2), (metadata, err)


def test_fuzzed_openvino_metadata_is_accepted_or_one_line(tmp_path):
    """100 seeded metadata.yaml files: a dict that passes the field check, or one InputError line."""
    rng, refused = random.Random(22), 0
    atoms = [b"names", b"stride", b"imgsz", b"args", b":", b" ", b"\n", b"- ", b"{", b"}", b"[", b"]", b"!!set", b"&a",
             b"!!python/name:os.system", b"*a", b"0", b"-1", b"tree", b"'", b'"', b"\xff", b"\t", b"?", b"!!binary",
             b"%YAML 1.1\n"]  # fmt: skip
    path = tmp_path / "metadata.yaml"
    for _ in range(100):
        path.write_bytes(b"".join(rng.choice(atoms) for _ in range(rng.randint(1, 30))))
        try:
            check_metadata(read_sidecar(path), "fuzz_openvino_model")
        except InputError as error:
            refused += 1
            assert "\n" not in str(error) and str(error)
    assert refused > 50


# --------------------------------------------------------------------------------- lcnet-yolo val/predict on exports
BAD_EXPORTS = {
    "args a list": ({"args": "[1, 2]"}, "metadata 'args' is a list"),
    "names a set": ({"names": "{'a', 'b'}"}, "metadata 'names' must be a non-empty list"),
    "stride 0": ({"stride": "0"}, "metadata 'stride' '0' is not a positive integer"),
    "names keyed by strings": ({"names": "{'a': 'b'}"}, "metadata 'names' must map class ids"),
}


@pytest.mark.parametrize("case", list(BAD_EXPORTS))
def test_lcnet_yolo_refuses_malformed_export_metadata(case, tmp_path, capsys):
    from lcnet_yolo.cli import main

    change, expected = BAD_EXPORTS[case]
    model = tiny_onnx(tmp_path / "model.onnx", {**GOOD, **change})
    for mode in ("val", "predict"):
        status = main([mode, f"model={model}", "imgsz=64"])
        err = capsys.readouterr().err.splitlines()
        assert expected in one_line(status, err, f"lcnet-yolo {mode}: error: {model}: ")


def test_lcnet_yolo_refuses_unreadable_openvino_metadata(openvino_folder, tmp_path, capsys):
    from lcnet_yolo.cli import main

    for content, expected in ((b"\xff\xfe", "not UTF-8"), (b"a: !!python/name:os.system\n", "a Python tag")):
        model = copy_with_metadata(openvino_folder, tmp_path / f"m{len(content)}_openvino_model", content)
        status = main(["predict", f"model={model}", "imgsz=64"])
        assert expected in one_line(status, capsys.readouterr().err.splitlines(), "lcnet-yolo predict: error: ")
    proc = run_executable("lcnet-yolo", "val", f"model={model}", "imgsz=64", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"lcnet-yolo val: error: {model / 'metadata.yaml'}: holds a Python tag (!!python/...), refused"
    ]
