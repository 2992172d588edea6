"""Property-based and seeded fuzz tests: constructors take valid input and refuse the rest with ValueError; damaged
checkpoint files give one WeightsError (one line naming the file, exit status 2 in the CLI), never a traceback."""

import io
import pickle
import random
import zipfile
from collections import Counter
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lcnet_yolo.io.checkpoints import verify_file
from lcnet_yolo.io.errors import WeightsError
from lcnet_yolo.nn import SCALES, PPLCNet
from lcnet_yolo.nn.layers import PPLCNetBackbone
from lcnet_yolo.nn.pplcnet import ACTIVATIONS

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
block_index = st.integers(0, 12)
valid_scales = st.sampled_from(sorted(SCALES))


@FAST
@given(
    scale=st.sampled_from([0.25, 0.35, 0.5]),
    out_indices=st.lists(st.integers(0, 4), min_size=1, max_size=5, unique=True).map(sorted),
    se_blocks=st.lists(block_index, max_size=4),
    large_kernel_blocks=st.lists(block_index, max_size=4),
    act=st.sampled_from(sorted(ACTIVATIONS)),
    height=st.integers(8, 80),
    width=st.integers(8, 80),
)
def test_valid_feature_extractors_build_and_return_the_promised_shapes(
    scale, out_indices, se_blocks, large_kernel_blocks, act, height, width
):
    model = PPLCNet(
        scale,
        features_only=True,
        out_indices=out_indices,
        se_blocks=se_blocks,
        large_kernel_blocks=large_kernel_blocks,
        act=act,
    ).eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, height, width))
    assert [o.shape[1] for o in outputs] == model.channels
    for output, stride in zip(outputs, model.strides, strict=True):
        assert output.shape[2:] == (-(-height // stride), -(-width // stride))  # ceil division, "same" padding


@FAST
@given(scale=valid_scales, num_classes=st.integers(0, 50), in_chans=st.integers(1, 4), dropout=st.floats(0, 0.99))
def test_valid_classifiers_build_and_give_logits(scale, num_classes, in_chans, dropout):
    model = PPLCNet(scale, num_classes=num_classes, in_chans=in_chans, dropout=dropout).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, in_chans, 32, 32))
    assert logits.shape == (2, num_classes if num_classes else model.head_hidden_size)


invalid_kwargs = st.one_of(
    st.fixed_dictionaries({"scale": st.floats(allow_nan=True).filter(lambda s: s not in SCALES)}),
    st.fixed_dictionaries({"scale": st.one_of(st.text(max_size=3), st.none(), st.lists(st.floats(), max_size=2))}),
    st.fixed_dictionaries({"num_classes": st.one_of(st.integers(max_value=-1), st.floats(), st.text(max_size=2))}),
    st.fixed_dictionaries({"in_chans": st.integers(max_value=0)}),
    st.fixed_dictionaries({"dropout": st.one_of(st.floats(min_value=1.0), st.floats(max_value=-1e-9))}),
    st.fixed_dictionaries({"act": st.text(max_size=8).filter(lambda a: a not in ACTIVATIONS)}),
    st.fixed_dictionaries({"se_blocks": st.lists(st.integers().filter(lambda i: not 0 <= i <= 12), min_size=1)}),
    st.fixed_dictionaries({"large_kernel_blocks": st.one_of(st.integers(), st.text(min_size=1, max_size=3))}),
    st.fixed_dictionaries(
        {"features_only": st.just(True), "out_indices": st.lists(st.integers().filter(lambda i: not 0 <= i <= 4))}
    ),
)


@FAST
@given(kwargs=invalid_kwargs)
def test_invalid_arguments_raise_value_error_never_key_or_index_error(kwargs):
    kwargs = {"scale": 1.0, **kwargs}
    with pytest.raises(ValueError):
        PPLCNet(**kwargs)


@FAST
@given(scale=st.one_of(st.floats(), st.integers(), st.text(max_size=4)), out=st.lists(st.integers(-3, 8), max_size=4))
def test_yaml_backbone_layer_accepts_only_valid_arguments(scale, out):
    valid = scale in SCALES and bool(out) and all(0 <= i <= 4 for i in out)
    if valid:
        assert len(PPLCNetBackbone(scale, out).channels) == len(out)
    else:
        with pytest.raises(ValueError):
            PPLCNetBackbone(scale, out)


# ------------------------------------------------------------------------------------------- damaged .pt files
JUNK_KINDS = ("random-bytes", "truncated", "bit-flips", "tail-flips", "head-flips", "junk-pickle", "pickle-in-zip")


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> bytes:
    """An Ultralytics checkpoint (``torch.save`` of the checkpoint dict) of an untrained yolov8n-pplcnet, FP16."""
    import copy

    from ultralytics import YOLO
    from ultralytics.utils import DEFAULT_CFG_DICT

    torch.manual_seed(0)  # the same bytes every run, so the seeded fuzz damages the same places
    model = YOLO("yolov8n-pplcnet.yaml").model
    path = tmp_path_factory.mktemp("checkpoint") / "best.pt"
    ckpt = {"model": copy.deepcopy(model).half(), "ema": None, "train_args": {**DEFAULT_CFG_DICT, "imgsz": 64}}
    torch.save({**ckpt, "epoch": -1, "optimizer": None}, path)
    return path.read_bytes()


def _flip(data: bytes, rng: random.Random, flips: int, start: int = 0, stop: int | None = None) -> bytes:
    damaged = bytearray(data)
    stop = len(data) if stop is None else min(stop, len(data))
    for _ in range(flips):
        position = rng.randrange(max(start, 0), stop)
        damaged[position] ^= 1 << rng.randrange(8)
    return bytes(damaged)


def junk_checkpoint(data: bytes, kind: str, seed: int) -> bytes:
    """A damaged copy of a checkpoint: ``kind`` says how, ``seed`` where."""
    rng = random.Random(seed)
    if kind == "random-bytes":
        return rng.randbytes(rng.randint(1, 4096))
    if kind == "truncated":
        return data[: rng.randint(1, len(data) - 1)]
    if kind == "bit-flips":
        return _flip(data, rng, rng.randint(1, 8))
    if kind == "tail-flips":  # the zip central directory and end record
        return _flip(data, rng, rng.randint(1, 4), start=len(data) - 4096)
    if kind == "head-flips":  # the first local header and the start of data.pkl
        return _flip(data, rng, rng.randint(1, 4), stop=4096)
    if kind == "junk-pickle":
        return b"\x80\x02" + rng.randbytes(rng.randint(0, 512))
    # pickle-in-zip: a damaged data.pkl inside an archive whose checksums are right, so the unpickler meets it
    source, target = io.BytesIO(data), io.BytesIO()
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
        for member in archive.infolist():
            content = archive.read(member)
            if member.filename.endswith("data.pkl"):
                content = _flip(content, rng, rng.randint(1, 6))
            out.writestr(member.filename, content)
    return target.getvalue()


def _assert_one_checkpoint_error_or_loads(path: Path) -> bool:
    """True when the file was refused with one WeightsError line naming it, False when it loaded."""
    try:
        verify_file(path)
    except WeightsError as error:
        message = str(error)
        assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 500, message
        return True
    return False


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(JUNK_KINDS), seed=st.integers(0, 2**32 - 1))
def test_a_damaged_checkpoint_gives_one_checkpoint_error_or_loads(checkpoint_bytes, tmp_path_factory, kind, seed):
    path = tmp_path_factory.mktemp("junk") / "best.pt"
    path.write_bytes(junk_checkpoint(checkpoint_bytes, kind, seed))
    refused = _assert_one_checkpoint_error_or_loads(path)
    assert refused or kind in {"bit-flips", "tail-flips", "head-flips", "pickle-in-zip"}  # a flip may be harmless


HANDLED_BEFORE = (TypeError, zipfile.BadZipFile, RuntimeError, EOFError, pickle.UnpicklingError, OSError)


@pytest.mark.slow
def test_300_seeded_junk_checkpoints_give_only_checkpoint_errors_and_one_line_in_the_cli(
    checkpoint_bytes, tmp_path, capsys
):
    """Every file is refused with one WeightsError or loads; each refused one gives one line and exit 2 through
    ``predict``, ``val``, ``convert`` and ``train``."""
    from ultralytics.nn.tasks import torch_safe_load

    from lcnet_yolo.cli import main
    from lcnet_yolo.io.safe_load import scoped_safe_globals
    from lcnet_yolo.nn import module_classes

    refused, kinds, escaped_ultralytics = [], set(), []
    for index in range(300):
        kind = JUNK_KINDS[index % len(JUNK_KINDS)]
        path = tmp_path / f"junk{index:03d}.pt"
        path.write_bytes(junk_checkpoint(checkpoint_bytes, kind, seed=index))
        if _assert_one_checkpoint_error_or_loads(path):
            refused.append(path)
            kinds.add(kind)
        try:  # positive control: what the loaders we call raise on their own (the checks safe_load used to do)
            if zipfile.is_zipfile(path):
                zipfile.ZipFile(path).testzip()
            with scoped_safe_globals(module_classes()):
                torch_safe_load(str(path), safe_only=True)
        except HANDLED_BEFORE:
            pass
        except Exception as error:
            escaped_ultralytics.append(type(error).__name__)
    with capsys.disabled():
        print(f"\nrefused {len(refused)}/300; raw from zipfile/Ultralytics alone: {Counter(escaped_ultralytics)}")
    assert len(refused) >= 270 and kinds == set(JUNK_KINDS)
    assert escaped_ultralytics  # e.g. IndexError, KeyError, UnicodeDecodeError: what used to leak as a traceback
    data = tmp_path / "data.yaml"
    data.write_text("path: .\ntrain: images\nval: images\nnames: {0: box}\n")
    for path in refused:
        for command in (
            ["predict", f"model={path}"],
            ["val", f"model={path}", f"data={data}"],
            ["convert", str(path)],
            ["train", f"model={path}", f"data={data}", "epochs=1", f"project={tmp_path}"],
        ):
            assert main(command) == 2
            err = capsys.readouterr().err
            assert err.startswith(f"lcnet-yolo {command[0]}: error: {path}: ") and err.count("\n") == 1, err
