"""Every reach into Ultralytics' internals (``lcnet_yolo.plugin.compat``), checked against the pinned 8.4.190.

When Ultralytics is upgraded, these tests name what changed; nothing outside compat touches its internals (the
last test checks the imports of the whole package).
"""

from __future__ import annotations

import ast
import inspect
import logging
import re
from pathlib import Path

import pytest
import torch
import ultralytics
from torch import nn
from ultralytics import YOLO
from ultralytics.nn import tasks
from ultralytics.utils import patches

from lcnet_yolo.nn import YAML_LAYERS, find_backbone
from lcnet_yolo.plugin import compat
from lcnet_yolo.plugin.register import MODELS_DIR, packaged_yaml, register

SRC = Path(__file__).resolve().parents[1] / "src" / "lcnet_yolo"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_installed_ultralytics_is_the_pinned_release():
    assert ultralytics.__version__ == compat.ULTRALYTICS_VERSION == "8.4.190"
    assert f'"ultralytics=={compat.ULTRALYTICS_VERSION}"' in PYPROJECT.read_text()


def test_our_layers_are_found_where_parse_model_looks_names_up():
    for name, layer in YAML_LAYERS.items():
        assert vars(tasks)[name] is layer
        assert compat.layer_named(name) is layer
    assert compat.layer_named("C2f") is tasks.C2f
    assert compat.layer_named("NoSuchLayer") is None


def test_yaml_lookup_finds_packaged_names_and_leaves_the_rest_to_ultralytics():
    assert tasks.check_yaml("yolov8n-pplcnet.yaml") == str(MODELS_DIR / "yolov8n-pplcnet.yaml")
    # Ultralytics asks for the scale-less name (yolov8n.yaml -> yolov8.yaml)
    assert Path(tasks.check_yaml("yolov8.yaml")).parts[-4:] == ("cfg", "models", "v8", "yolov8.yaml")
    with pytest.raises(FileNotFoundError, match=r"packaged models: .*yolov8n-pplcnet\.yaml"):
        tasks.check_yaml("yolov8q-pplcnet.yaml")
    register()  # idempotent: the hook is not stacked
    assert tasks.check_yaml.lcnet_yolo_resolve is packaged_yaml
    original = inspect.getclosurevars(tasks.check_yaml).nonlocals["original"]
    assert not hasattr(original, "lcnet_yolo_resolve")
    assert inspect.signature(original).parameters.keys() >= {"file", "suffix", "hard"}


def test_safe_load_mode_switches_ultralytics_restricted_loading_and_back():
    assert tasks.SAFE_LOAD is False
    with pytest.raises(KeyError), compat.safe_load_mode():
        assert tasks.SAFE_LOAD is True
        raise KeyError("inside")
    assert tasks.SAFE_LOAD is False
    assert "safe_only" in inspect.signature(compat.torch_safe_load).parameters


def test_plain_image_open_is_pil_without_ultralytics_patch():
    from PIL import Image

    assert hasattr(patches, "_image_open")  # Ultralytics keeps PIL's own open here and patches Image.open
    assert compat.plain_image_open() is patches._image_open
    assert Image.open is not patches._image_open


def test_logger_helpers_silence_ultralytics_and_restore_it(capsys):
    level, disabled = compat.LOGGER.level, compat.LOGGER.disabled
    with compat.logger_disabled():
        assert compat.LOGGER.disabled is True
    assert compat.LOGGER.disabled is disabled
    with compat.quiet():
        print("hidden")
        assert compat.LOGGER.level == logging.ERROR
    assert compat.LOGGER.level == level
    assert "hidden" not in capsys.readouterr().out


def test_dataset_errors_are_wrapped_by_the_trainer_as_compat_expects(tmp_path):
    with pytest.raises(RuntimeError) as caught:
        compat.DetectionTrainer(overrides={"model": "yolov8n.yaml", "data": str(tmp_path / "missing.yaml")})
    cause = compat.dataset_error_cause(caught.value)
    assert cause is not None and "missing.yaml" in str(cause)
    assert compat.dataset_error_cause(RuntimeError("something else")) is None


@pytest.mark.parametrize("method", sorted(compat.TRAINER_HOOKS))
def test_trainer_methods_we_override_keep_their_parameters(method):
    parameters = list(inspect.signature(getattr(compat.BaseTrainer, method)).parameters)
    assert parameters == ["self", *compat.TRAINER_HOOKS[method]]


def test_trainer_attributes_our_trainers_read_exist(tmp_path):
    source = inspect.getsource(compat.BaseTrainer)
    for attribute in ("self.accumulate", "self.train_loader", "self.batch_size", "self.last", "self.best", "self.csv"):
        assert attribute in source
    assert "self.start_epoch" in inspect.getsource(compat.BaseTrainer.resume_training)


def test_fusion_and_batchnorm_rules_our_layers_rely_on():
    model = YOLO("yolov8n-pplcnet.yaml").model  # built by parse_model + initialize_weights
    backbone = find_backbone(model)
    norms = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.eps == 1e-5 for m in norms)  # initialize_weights skips our named BatchNorm subclass
    neck_norms = [m for m in model.model[5:].modules() if type(m) is nn.BatchNorm2d]
    assert neck_norms and all(m.eps == 1e-3 for m in neck_norms)  # ... and sets Ultralytics' eps on plain ones
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model.eval()(x)[0]
        model.fuse(verbose=False)  # folds BN of every Conv instance with a `bn`: ours subclass Conv
        after = model(x)[0]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    assert torch.allclose(before, after, atol=1e-4)


def test_classify_head_attribute_ultralytics_resizes():
    assert "linear" in inspect.getsource(compat.Classify.__init__)
    assert ".linear" in inspect.getsource(tasks.ClassificationModel.reshape_outputs)


ALLOWED_ULTRALYTICS_IMPORTS = {"ultralytics": {"YOLO"}}  # `import ultralytics` (for __version__) is allowed too


def test_only_compat_imports_ultralytics_internals():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "plugin" / "compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and re.match(r"ultralytics\b", node.module):
                names = {alias.name for alias in node.names}
                if not names <= ALLOWED_ULTRALYTICS_IMPORTS.get(node.module, set()):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} from {node.module} import {names}")
            elif isinstance(node, ast.Import):
                offenders += [
                    f"{path.relative_to(SRC)}:{node.lineno} import {a.name}"
                    for a in node.names
                    if a.name.startswith("ultralytics.")
                ]
    assert not offenders, "\n".join(offenders)


def test_compat_docstring_lists_every_helper_it_defines():
    doc = compat.__doc__
    helpers = [
        name for name, obj in vars(compat).items() if inspect.isfunction(obj) and obj.__module__ == compat.__name__
    ]
    missing = [name for name in helpers if name not in doc]
    assert not missing, missing
