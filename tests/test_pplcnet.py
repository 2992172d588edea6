"""PP-LCNet network: the paper's table, feature mode, ablation switches, bad input."""

from pathlib import Path

import pytest
import torch
from thop import profile
from torch.utils.flop_counter import FlopCounterMode

from lcnet_yolo.nn import SCALES, PPLCNet, make_divisible, pplcnet, pplcnet_x0_25, pplcnet_x1_0, pplcnet_x2_5


def count_params(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


@pytest.mark.parametrize("scale", list(SCALES))
def test_params_and_flops_match_the_paper_table(scale):
    paper_params, paper_flops = SCALES[scale]
    model = pplcnet(scale).eval()
    assert abs(count_params(model) - paper_params) <= 0.05
    x = torch.zeros(1, 3, 224, 224)
    macs, _ = profile(model, inputs=(x,), verbose=False)  # thop: conv + linear + BN/activation terms
    assert abs(macs / 1e6 - paper_flops) <= 0.10 * paper_flops
    with FlopCounterMode(display=False) as counter:  # torch: conv + linear only (2 FLOPs per multiply-add)
        model(x)
    assert abs(counter.get_total_flops() / 2e6 - paper_flops) <= 0.10 * paper_flops


def test_x1_0_has_the_parameter_count_paddleclas_reports():
    assert count_params(pplcnet_x1_0()) == pytest.approx(2.95, abs=0.01)  # PaddleClas: 2.96 M incl. rounding


def test_make_divisible_follows_paddleclas_rounding():
    assert [make_divisible(16 * s) for s in SCALES] == [8, 8, 8, 16, 16, 24, 32, 40]
    assert make_divisible(512 * 0.35) == 176
    assert make_divisible(3) == 8


def test_named_constructors_cover_every_scale():
    assert pplcnet_x0_25().scale == 0.25
    assert pplcnet_x2_5().scale == 2.5
    assert pplcnet_x1_0.__name__ == "pplcnet_x1_0"


def test_classifier_forward_gives_logits_and_pre_logits():
    model = pplcnet(0.5, num_classes=7).eval()
    x = torch.randn(2, 3, 64, 64)
    assert model(x).shape == (2, 7)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 1280)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)


def test_paddleclas_structure_no_bias_in_convs_but_in_se_and_fc():
    model = pplcnet_x1_0()
    names = dict(model.named_parameters())
    assert "last_conv.bias" not in names and "conv1.conv.bias" not in names
    assert "blocks6.0.se.conv1.bias" in names and "fc.bias" in names
    assert names["blocks6.0.se.conv1.weight"].shape == (64, 256, 1, 1)  # SE acts on the depthwise output: C -> C/4
    assert names["blocks6.1.se.conv2.weight"].shape == (512, 128, 1, 1)
    assert "blocks5.5.se.conv1.weight" not in names  # SE only in the last two blocks
    assert names["blocks5.1.dw_conv.conv.weight"].shape[-1] == 5
    assert names["blocks5.0.dw_conv.conv.weight"].shape[-1] == 3
    assert isinstance(model.conv1.bn, torch.nn.BatchNorm2d) and model.conv1.bn.eps == 1e-5


@pytest.mark.parametrize("scale, expected", [(0.5, [64, 128, 256]), (1.0, [128, 256, 512]), (2.0, [256, 512, 1024])])
def test_feature_mode_returns_p3_p4_p5(scale, expected):
    model = PPLCNet(scale, features_only=True, out_indices=(2, 3, 4)).eval()
    assert model.channels == expected and model.strides == [8, 16, 32]
    outputs = model(torch.randn(1, 3, 128, 96))
    assert [tuple(o.shape) for o in outputs] == [
        (1, c, 128 // s, 96 // s) for c, s in zip(expected, [8, 16, 32], strict=True)
    ]


def test_feature_mode_default_gives_strides_4_to_32_and_matches_classifier_trunk():
    torch.manual_seed(0)
    classifier = pplcnet(0.75).eval()
    features = PPLCNet(0.75, features_only=True).eval()
    features.load_state_dict(classifier.state_dict(), strict=False)
    x = torch.randn(1, 3, 64, 64)
    assert features.strides == [4, 8, 16, 32]
    assert torch.equal(features(x)[-1], classifier.forward_features(x))
    assert not any(k.startswith(("fc", "last_conv")) for k in features.state_dict())


def test_ablation_switches_change_the_network_as_configured():
    x = torch.randn(1, 3, 64, 64)
    no_se = PPLCNet(1.0, se_blocks=())
    all_se = PPLCNet(1.0, se_blocks=range(13))
    small_kernels = PPLCNet(1.0, large_kernel_blocks=())
    relu = PPLCNet(1.0, act="relu")
    no_last_conv = PPLCNet(1.0, use_last_conv=False, num_classes=10)
    base = count_params(pplcnet_x1_0())
    assert count_params(no_se) < base < count_params(all_se)
    assert count_params(small_kernels) < base
    assert all(isinstance(m, torch.nn.ReLU) for m in (relu.conv1.act, relu.blocks6[0].pw_conv.act))
    assert no_last_conv.last_conv is None and no_last_conv.fc.in_features == 512
    for model in (no_se, all_se, small_kernels, relu, no_last_conv):
        assert torch.isfinite(model.eval()(x)).all()


def test_unknown_scale_lists_the_valid_scales():
    with pytest.raises(ValueError, match=r"0\.3.*0\.25, 0\.35, 0\.5, 0\.75, 1, 1\.5, 2, 2\.5"):
        PPLCNet(0.3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"act": "gelu"}, "activation 'gelu'"),
        ({"se_blocks": [13]}, "se_blocks must hold block indices 0..12"),
        ({"large_kernel_blocks": [-1]}, "large_kernel_blocks"),
        ({"features_only": True, "out_indices": (5,)}, "out_indices"),
    ],
)
def test_bad_arguments_raise_value_errors_that_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PPLCNet(1.0, **kwargs)


class _PoolingSE(torch.nn.Module):
    """The SE block as it was: ``AdaptiveAvgPool2d`` at every export (shows what NCNN's 1-D path looks like)."""

    def __init__(self, se: torch.nn.Module):
        super().__init__()
        self.se = se

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        se = self.se
        return x * se.hardsigmoid(se.conv2(se.relu(se.conv1(se.avg_pool(x)))))


def _ncnn_run(module: torch.nn.Module, x: torch.Tensor, folder, capfd) -> tuple[torch.Tensor, str, str]:
    """``module`` exported through PNNX (as Ultralytics' NCNN export does) and run in NCNN: output, the NCNN
    param text, and what NCNN printed on stderr while running it."""
    import ncnn
    import numpy as np
    import pnnx

    folder.mkdir()
    files = {"ptpath": "m.pt", "pnnxparam": "m.pnnx.param", "pnnxbin": "m.pnnx.bin", "pnnxpy": "m_pnnx.py"}
    files |= {"pnnxonnx": "m.pnnx.onnx", "ncnnparam": "m.ncnn.param", "ncnnbin": "m.ncnn.bin", "ncnnpy": "m_ncnn.py"}
    paths = {name: str(folder / file) for name, file in files.items()}
    pnnx.export(module, inputs=x, **paths, fp16=False)  # as Ultralytics' NCNN export calls it
    capfd.readouterr()
    net = ncnn.Net()
    net.load_param(paths["ncnnparam"])
    net.load_model(paths["ncnnbin"])
    extractor = net.create_extractor()
    extractor.input("in0", ncnn.Mat(x[0].numpy()))
    _, out = extractor.extract("out0")
    return torch.from_numpy(np.array(out)), Path(paths["ncnnparam"]).read_text(), capfd.readouterr().err


def test_se_block_runs_on_ncnn_2d_path_with_torch_numbers(tmp_path, monkeypatch, capfd):
    from lcnet_yolo.nn.pplcnet import SEModule

    monkeypatch.chdir(tmp_path)  # PNNX writes debug files into the working folder
    torch.manual_seed(0)
    se = SEModule(32).eval()
    x = torch.rand(1, 32, 12, 12)
    with torch.no_grad():
        expected = se(x)[0]
        assert torch.allclose(expected, _PoolingSE(se)(x)[0], atol=1e-6)  # same numbers as the pooling form
        out, param, err = _ncnn_run(se, x, tmp_path / "mean", capfd)
        old_out, old_param, old_err = _ncnn_run(_PoolingSE(se), x, tmp_path / "pool", capfd)
    assert torch.allclose(out, expected, atol=1e-4)
    assert "Reduction" in param and "Pooling" not in param and "Reshape" not in param
    assert "1d input compatibility path" not in err
    # the check can fail: the pooling form takes NCNN's flat global pooling and its 1-D convolution path
    assert torch.allclose(old_out, expected, atol=1e-4)
    assert "Pooling" in old_param and "1d input compatibility path" in old_err


def test_se_block_exports_to_onnx_as_global_average_pool(tmp_path):
    import onnx

    from lcnet_yolo.nn.pplcnet import SEModule

    torch.onnx.export(SEModule(32).eval(), torch.rand(1, 32, 12, 12), tmp_path / "se.onnx", dynamo=False)
    ops = [node.op_type for node in onnx.load(tmp_path / "se.onnx").graph.node]
    assert "GlobalAveragePool" in ops and "ReduceMean" not in ops, ops
