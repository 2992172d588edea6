"""Weight import: timm parity, PaddleClas round trip, safe unpickling, strictness, BatchNorm eps, bad files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from lcnet_yolo import LoadReport, WeightsError, load_pretrained
from lcnet_yolo.io.weights import (
    WeightsFileNotFoundError,
    convert_paddle_state_dict,
    convert_timm_state_dict,
    read_checkpoint,
    read_pdparams,
)
from lcnet_yolo.nn import PPLCNet
from lcnet_yolo.nn.layers import PPLCNetBackbone

TIMM_SCALES = {"lcnet_035": 0.35, "lcnet_050": 0.5, "lcnet_075": 0.75, "lcnet_100": 1.0, "lcnet_150": 1.5}
TIMM_STAGE_OF_OURS = (1, 2, 4, 5)  # timm stages whose outputs are our blocks3, blocks4, blocks5, blocks6
HEAD_KEYS = ["fc.bias", "fc.weight", "last_conv.weight"]


@torch.no_grad()
def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine terms, and every bias a non-zero value."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(0.2 * torch.randn(c, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(c, generator=generator))
            module.weight.copy_(1 + 0.2 * torch.randn(c, generator=generator))
            module.bias.copy_(0.2 * torch.randn(c, generator=generator))
        elif isinstance(module, nn.Conv2d | nn.Linear) and module.bias is not None:
            module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=generator))
    return model.eval()


def timm_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return randomise(timm.create_model(name, pretrained=False), seed=1)


@torch.no_grad()
def timm_stage_outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    x = model.bn1(model.conv_stem(x))
    outputs = []
    for index, stage in enumerate(model.blocks):
        x = stage(x)
        if index in TIMM_STAGE_OF_OURS:
            outputs.append(x)
    return outputs


def our_model_state(scale: float, seed: int, **kwargs) -> tuple[PPLCNet, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    model = randomise(PPLCNet(scale, **kwargs), seed=seed + 1)
    return model, {k: v.clone() for k, v in model.state_dict().items()}


def to_paddle_params(model: nn.Module) -> dict[str, object]:
    """What ``paddle.save(model.state_dict())`` writes for PaddleClas' PP-LCNet: numpy arrays, Paddle names."""
    params: dict[str, object] = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        key = key.replace(".running_mean", "._mean").replace(".running_var", "._variance")
        array = value.detach().numpy()
        params[key] = np.ascontiguousarray(array.T if key == "fc.weight" else array)
    params["StructuredToParameterName@@"] = {key: f"param_{i}" for i, key in enumerate(params)}
    return params


def timm_parity(name: str, tmp_dir, batch: int = 2, size: int = 96) -> dict[str, float]:
    """Max abs differences between timm and our model loaded from timm's safetensors (keep-bias path)."""
    source = timm_model(name)
    path = tmp_dir / f"{name}.safetensors"
    save_file(source.state_dict(), str(path))
    ours = PPLCNet(TIMM_SCALES[name], head_bias=True).eval()
    features = PPLCNet(TIMM_SCALES[name], features_only=True).eval()
    load_pretrained(ours, path)
    load_pretrained(features, path)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert source(x).std() > 1e-2  # non-degenerate outputs, so a zero difference means something
        diffs = {"logits": (ours(x) - source(x)).abs().max().item()}
        stages = ("blocks3", "blocks4", "blocks5", "blocks6")
        for stage, a, b in zip(stages, features(x), timm_stage_outputs(source, x), strict=True):
            assert a.shape == b.shape
            diffs[stage] = (a - b).abs().max().item()
    return diffs


# ---------------------------------------------------------------------------------------------------- timm


@pytest.mark.parametrize("name", list(TIMM_SCALES))
def test_timm_weights_give_identical_logits_and_feature_maps(name, tmp_path):
    diffs = timm_parity(name, tmp_path)
    assert max(diffs.values()) <= 1e-5, diffs


def test_timm_state_dict_maps_key_for_key_onto_a_head_bias_model():
    source = timm_model("lcnet_050")
    converted = convert_timm_state_dict(source.state_dict())
    model = PPLCNet(0.5, head_bias=True)
    assert set(converted) == set(model.state_dict())
    model.load_state_dict(converted, strict=True)
    assert torch.equal(model.blocks5[5].dw_conv.conv.weight, source.blocks[4][3].conv_dw.weight)  # flattened order
    assert torch.equal(model.blocks6[1].se.conv2.bias, source.blocks[5][1].se.conv_expand.bias)


def test_timm_head_bias_is_dropped_with_a_warning_by_default(tmp_path):
    source = timm_model("lcnet_050")
    path = tmp_path / "lcnet_050.safetensors"
    save_file(source.state_dict(), str(path))
    model = PPLCNet(0.5).eval()
    with pytest.warns(UserWarning, match="head_bias=True"):
        report = load_pretrained(model, path)
    assert report.format == "timm" and report.dropped == ["last_conv.bias"] and report.complete
    assert any("conv_head.bias" in w for w in report.warnings)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        with_bias = source(x)
        source.conv_head.bias.zero_()
        without_bias = source(x)
        ours = model(x)
    assert (ours - without_bias).abs().max() <= 1e-5
    assert (ours - with_bias).abs().max() > 1e-3  # the dropped bias really mattered


@pytest.mark.parametrize(
    "filename, writer",
    [
        ("lcnet.safetensors", "safetensors"),
        ("lcnet.pth", "torch"),
        ("pytorch_model.bin", "torch"),
        ("misnamed.pth", "safetensors"),
        ("misnamed.safetensors", "torch"),
        ("legacy.pt", "torch_legacy"),
    ],
)
def test_timm_files_are_recognised_from_their_contents(filename, writer, tmp_path):
    source = timm_model("lcnet_050")
    path = tmp_path / filename
    if writer == "safetensors":
        save_file(source.state_dict(), str(path))
    else:
        torch.save(source.state_dict(), path, _use_new_zipfile_serialization=writer == "torch")
    model = PPLCNet(0.5, head_bias=True).eval()
    report = load_pretrained(model, path)
    assert report.format == "timm" and report.complete and report.checkpoint_scale == 0.5
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - source(x)).abs().max() <= 1e-5


# ---------------------------------------------------------------------------------------------------- PaddleClas


@pytest.mark.parametrize("protocol", [2, 4])
def test_pdparams_round_trip_gives_paddleclas_logits_with_dropout_folded(protocol, tmp_path):
    source, _ = our_model_state(0.5, seed=3)
    path = tmp_path / "PPLCNet_x0_5_pretrained.pdparams"
    path.write_bytes(pickle.dumps(to_paddle_params(source), protocol=protocol))
    model = PPLCNet(0.5, dropout=0.2).eval()
    report = load_pretrained(model, path)
    assert report.format == "paddleclas" and report.complete and report.checkpoint_scale == 0.5
    assert any("1 - 0.2" in note for note in report.notes)
    assert torch.equal(model.fc.weight, source.fc.weight * (1 - 0.2))
    for key, value in source.state_dict().items():
        if key != "fc.weight":
            assert torch.equal(model.state_dict()[key], value), key
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pre_logits = source.forward_head(source.forward_features(x), pre_logits=True)
        paddle_logits = nn.functional.linear(pre_logits * (1 - 0.2), source.fc.weight, source.fc.bias)  # downscale
        assert (model(x) - paddle_logits).abs().max() <= 1e-5
        assert (model(x) - source(x)).abs().max() > 1e-3  # the fold changed the logits


def test_pdparams_written_by_numpy_1_under_numpy_core_names_are_read(tmp_path):
    source, _ = our_model_state(0.25, seed=4)
    data = pickle.dumps(to_paddle_params(source), protocol=2)  # protocol 2 spells globals as "module\nname\n"
    legacy = data.replace(b"cnumpy._core.", b"cnumpy.core.")
    assert b"cnumpy.core.multiarray\n_reconstruct" in legacy and b"numpy._core" not in legacy
    path = tmp_path / "legacy.pdparams"
    path.write_bytes(legacy)
    arrays = read_pdparams(path)
    assert "StructuredToParameterName@@" not in arrays
    assert arrays["fc.weight"].shape == (1280, 1000)  # Paddle's [in, out]
    converted = convert_paddle_state_dict(arrays)
    assert converted["conv1.bn.running_var"].shape == (8,) and converted["fc.weight"].shape == (1000, 1280)


@pytest.mark.parametrize("forbidden", ["os\nsystem", "builtins\neval"])
def test_malicious_pickle_is_refused_and_nothing_runs(forbidden, tmp_path):
    def payload(marker) -> bytes:
        command = f"touch {marker}" if forbidden.startswith("os") else f"open({str(marker)!r}, 'w').close()"
        return b"\x80\x02c" + forbidden.encode() + b"\n(V" + command.encode() + b"\ntR."

    control = tmp_path / "control-ran"
    pickle.loads(payload(control))  # the payload does what it says when unpickled without restriction
    assert control.exists()

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pdparams"
    path.write_bytes(payload(marker))
    module, name = forbidden.split("\n")
    with pytest.raises(WeightsError, match=rf"evil\.pdparams.*'{module}\.{name}'"):
        load_pretrained(PPLCNet(0.25), path)
    assert not marker.exists()


def test_malicious_object_hidden_among_arrays_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    path = tmp_path / "mixed.pdparams"
    path.write_bytes(pickle.dumps({"conv1.conv.weight": np.zeros((8, 3, 3, 3), np.float32), "x": Payload()}))
    with pytest.raises(WeightsError, match=r"mixed\.pdparams.*'builtins\.eval'"):
        read_pdparams(path)


# ---------------------------------------------------------------------------------------------------- strictness


def test_wrong_scale_names_both_scales_and_leaves_the_model_untouched(tmp_path):
    path = tmp_path / "lcnet_050.safetensors"
    save_file(timm_model("lcnet_050").state_dict(), str(path))
    model = PPLCNet(1.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsError, match=r"PP-LCNet x0\.5 weights but the model is PP-LCNet x1\b") as error:
        load_pretrained(model, path)
    assert "shape mismatches" in str(error.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_non_strict_load_reports_missing_unexpected_and_mismatched_keys(tmp_path):
    _, state = our_model_state(0.5, seed=5)
    del state["blocks2.0.pw_conv.bn.running_var"]
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "ours.pt"
    torch.save(state, path)
    model = PPLCNet(0.5, num_classes=10)
    with pytest.raises(WeightsError) as error:
        load_pretrained(model, path)
    message = str(error.value)
    for expected in ("blocks2.0.pw_conv.bn.running_var", "extra.weight", "fc.weight [1000, 1280] vs model [10, 1280]"):
        assert expected in message

    report = load_pretrained(model, path, strict=False)
    assert isinstance(report, LoadReport) and report.format == "lcnet_yolo" and not report.complete
    assert report.missing == ["blocks2.0.pw_conv.bn.running_var"]
    assert report.unexpected == ["extra.weight"]
    assert report.mismatched == [("fc.weight", (1000, 1280), (10, 1280)), ("fc.bias", (1000,), (10,))]
    assert "fc.weight" not in report.loaded and "blocks6.1.pw_conv.conv.weight" in report.loaded
    assert torch.equal(model.blocks6[1].pw_conv.conv.weight, state["blocks6.1.pw_conv.conv.weight"])
    assert "missing" in str(report) and "unexpected" in str(report)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_own_state_dicts_round_trip_exactly(suffix, tmp_path):
    _, state = our_model_state(0.75, seed=6)
    path = tmp_path / f"ours{suffix}"
    if suffix == ".pt":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    model = PPLCNet(0.75)
    report = load_pretrained(model, path)
    assert report.format == "lcnet_yolo" and report.complete and not (report.skipped or report.dropped)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_backbone_loads_a_classifier_checkpoint_and_skips_the_head(tmp_path):
    classifier, state = our_model_state(1.0, seed=7)
    path = tmp_path / "classifier.pt"
    torch.save(state, path)
    backbone = PPLCNetBackbone(1.0).eval()
    report = load_pretrained(backbone, path)
    assert report.complete and sorted(report.skipped) == HEAD_KEYS
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(backbone(x)[-1], classifier.forward_features(x))


def test_batchnorm_eps_is_reset_to_the_training_value(tmp_path):
    source, state = our_model_state(0.5, seed=8, features_only=True)
    path = tmp_path / "features.safetensors"
    save_file(state, str(path))
    model = PPLCNet(0.5, features_only=True).eval()
    batchnorms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in batchnorms:
        bn.eps = 1e-3  # what Ultralytics sets on every BatchNorm when it builds a detector
    report = load_pretrained(model, path)
    assert {bn.eps for bn in batchnorms} == {1e-5}
    assert any(f"eps set to 1e-05 on {len(batchnorms)} layers" in note for note in report.notes)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(x), source(x), strict=True))
        for bn in batchnorms:
            bn.eps = 1e-3
        assert (model(x)[-1] - source(x)[-1]).abs().max() > 1e-4  # eps matters for these weights


def test_head_bias_model_gets_a_zero_bias_from_a_file_without_one(tmp_path):
    source, _ = our_model_state(0.25, seed=9)
    path = tmp_path / "PPLCNet_x0_25.pdparams"
    path.write_bytes(pickle.dumps(to_paddle_params(source), protocol=4))
    model = PPLCNet(0.25, head_bias=True, dropout=0.0).eval()
    report = load_pretrained(model, path)
    assert report.complete and torch.equal(model.last_conv.bias, torch.zeros(1280))
    assert any("last_conv.bias set to zero" in note for note in report.notes)


# ---------------------------------------------------------------------------------------------------- bad files


def test_missing_file_is_one_line_naming_the_path(tmp_path):
    path = tmp_path / "nowhere.pdparams"
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pdparams") as error:
        load_pretrained(PPLCNet(0.25), path)
    assert isinstance(error.value, WeightsFileNotFoundError) and "\n" not in str(error.value)


def test_unknown_format_names_the_formats_we_read(tmp_path):
    path = tmp_path / "weights.onnx"
    path.write_bytes(b"\x08\x07\x12\x07pytorch" + bytes(64))
    with pytest.raises(WeightsError, match=r"weights\.onnx.*pdparams.*\.pt/\.pth/\.bin.*safetensors") as error:
        read_checkpoint(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".pdparams", ".pkl-legacy"])
def test_truncated_files_give_a_clear_error_naming_the_file(suffix, tmp_path):
    _, state = our_model_state(0.25, seed=10)
    path = tmp_path / f"cut{suffix}"
    if suffix == ".pt":
        torch.save(state, path)
    elif suffix == ".safetensors":
        save_file(state, str(path))
    elif suffix == ".pdparams":
        path.write_bytes(pickle.dumps({k: v.numpy() for k, v in state.items()}, protocol=4))
    else:
        torch.save(state, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=rf"cut{suffix}.*(truncated|corrupt)") as error:
        load_pretrained(PPLCNet(0.25), path)
    assert "\n" not in str(error.value)


def test_pickled_modules_are_refused_by_the_weights_only_reader(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(PPLCNet(0.25), path)
    with pytest.raises(WeightsError, match=r"whole_model\.pt.*not only tensors"):
        load_pretrained(PPLCNet(0.25), path)


def test_detector_backbone_loads_after_ultralytics_set_batchnorm_eps(tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    source, _ = our_model_state(0.5, seed=11)
    path = tmp_path / "PPLCNet_x0_5_pretrained.pdparams"
    path.write_bytes(pickle.dumps(to_paddle_params(source), protocol=4))
    detector = DetectionModel("yolov8n-pplcnet.yaml", verbose=False).eval()
    backbone = detector.model[0]
    assert {m.eps for m in detector.model[1:].modules() if isinstance(m, nn.BatchNorm2d)} == {1e-3}  # Ultralytics
    assert {m.eps for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)} == {1e-5}  # ours keeps PaddleClas'
    for m in backbone.modules():  # whatever set it since (a user, another init), loading restores 1e-5
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 1e-3
    report = load_pretrained(detector, path)
    assert report.complete and sorted(report.skipped) == HEAD_KEYS
    assert any("submodule 'model.0'" in note for note in report.notes)
    assert {m.eps for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)} == {1e-5}
    assert {m.eps for m in detector.model[1:].modules() if isinstance(m, nn.BatchNorm2d)} == {1e-3}  # not ours
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(backbone(x)[-1], source.forward_features(x))
