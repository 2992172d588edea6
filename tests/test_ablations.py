"""Ablations are a base model plus declared changes (``cfg/ablations.yaml``), and each builds what it says."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn
from ultralytics import YOLO
from ultralytics.nn.modules import Detect
from ultralytics.nn.modules.block import RepVGGDW
from ultralytics.utils import YAML

from lcnet_yolo.nn import find_backbone
from lcnet_yolo.nn.neck import LCBlock
from lcnet_yolo.nn.pplcnet import SEModule
from lcnet_yolo.plugin.register import ablation_yaml, ablations, packaged_models, packaged_yaml, resolve_model


def build(name: str) -> nn.Module:
    return YOLO(f"{name}.yaml").model


def activation_types(model: nn.Module) -> set[str]:
    """The activations of the model's layers, outside squeeze-excitation (whose ReLU is the paper's everywhere) and
    outside the RepVGGDW of C2fCIB (whose SiLU Ultralytics hard-codes: the YAML's `activation` does not reach it)."""
    kinds = (nn.Hardswish, nn.SiLU, nn.ReLU, nn.ReLU6, nn.LeakyReLU)
    fixed = {id(m) for block in model.modules() if isinstance(block, SEModule | RepVGGDW) for m in block.modules()}
    return {type(m).__name__ for m in model.modules() if isinstance(m, kinds) and id(m) not in fixed}


def depthwise_kernels(module: nn.Module) -> set[int]:
    return {m.kernel_size[0] for m in module.modules() if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1}


def neck_blocks(model: nn.Module) -> list[LCBlock]:
    return [m for m in model.modules() if isinstance(m, LCBlock)]


@pytest.fixture(scope="module")
def base() -> nn.Module:
    return build("yolov8n-pplcnet")


def test_every_ablation_is_listed_loads_by_name_and_round_trips_through_its_file():
    for name in ablations():
        assert f"{name}.yaml" in packaged_models()
        assert resolve_model(name) == f"{name}.yaml"
        written = packaged_yaml(f"{name}.yaml")
        assert written.endswith(f"{name}.yaml")
        assert YAML.load(written) == ablation_yaml(name)
        assert ablations()[name]["about"] in Path(written).read_text()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("yolov8n-pplcnet-abl-relu", {"ReLU"}),
        ("yolov8n-pplcnet-abl-relu6", {"ReLU6"}),
        ("yolov8n-pplcnet-abl-leaky", {"LeakyReLU"}),
    ],
)
def test_activation_variants_use_one_activation_everywhere(base, name, expected):
    assert activation_types(base) == {"Hardswish", "SiLU"}  # the paper's hardswish, SiLU in Ultralytics' rows
    model = build(name)
    assert activation_types(model) == expected
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in base.parameters())
    assert [type(m.act).__name__ for m in model.modules() if isinstance(m, RepVGGDW)] == ["SiLU"]
    if name.endswith("leaky"):
        assert {m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)} == {0.1}


def test_head_ablations_change_the_head_only_as_declared(base):
    assert base.model[-1].reg_max == 1
    assert build("yolov8n-pplcnet-abl-dfl").model[-1].reg_max == 16
    assert build("yolov8n-pplcnet-abl-plain-regmax1").model[-1].reg_max == 1
    assert build("yolov8n-pplcnet-plain").model[-1].reg_max == 16
    relu_head, dense_head = build("yolov8n-pplcnet-abl-relu").model[-1], build("yolov8n-pplcnet-abl-densecls").model[-1]
    assert isinstance(dense_head, Detect)
    assert depthwise_kernels(relu_head.cv3) and not depthwise_kernels(dense_head.cv3)  # dense 3x3 class branch


def test_backbone_and_neck_ablations_change_what_they_say(base):
    assert depthwise_kernels(find_backbone(base)) == {3, 5}
    assert depthwise_kernels(find_backbone(build("yolov8n-pplcnet-abl-k3"))) == {3}
    assert any(isinstance(m, SEModule) for m in find_backbone(base).modules())
    assert not any(isinstance(m, SEModule) for m in find_backbone(build("yolov8n-pplcnet-abl-se-off")).modules())
    assert find_backbone(build("yolov8n-pplcnet-abl-x0.75")).scale == 0.75
    assert find_backbone(build("yolov8n-pplcnet-abl-x1.0")).scale == 1.0
    assert [len(block.blocks) for block in neck_blocks(build("yolov8n-pplcnet-abl-n2"))] == [2, 2, 2]
    assert [len(block.blocks) for block in neck_blocks(base)] == [1, 1, 1]
    assert all(depthwise_kernels(b) == {3} for b in neck_blocks(build("yolov8n-pplcnet-abl-neck-k3")))
    assert all(depthwise_kernels(b) == {5} for b in neck_blocks(base))


def test_generated_ablation_files_share_one_folder_and_one_cleanup_hook_per_process(monkeypatch):
    from lcnet_yolo.plugin import register

    hooks = []
    monkeypatch.setattr(register.atexit, "register", lambda *args, **kwargs: hooks.append(args))
    names = sorted(ablations())[:2]
    register._generated_dir.cache_clear()
    try:
        paths = [register._ablation_file(name) for name in names + names] + [Path(packaged_yaml(f"{names[0]}.yaml"))]
        folder = register._generated_dir()
        assert {p.parent for p in paths} == {folder} and folder.is_dir()
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{name}.yaml" for name in names)
        assert hooks == [(register.shutil.rmtree, folder)]
    finally:
        register.shutil.rmtree(register._generated_dir(), ignore_errors=True)
        register._generated_dir.cache_clear()
