"""Every reach into Ultralytics' internals (``lcnet_yolo.plugin.compat``), checked against the pinned 8.4.190.

When Ultralytics is upgraded, these tests name what changed; nothing outside compat touches its internals (the
last test checks the imports of the whole package).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import logging
import pkgutil
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


OUTSIDE_SRC = {"tests", "runtime", "benchmarks", "docs"}  # folders of the repository the doc also names
DEVELOPMENT_DOC = Path(__file__).resolve().parents[1] / "docs" / "development.md"
PUBLIC_ULTRALYTICS_IMPORTS = {"from ultralytics import YOLO"}  # Ultralytics' documented entry point, anywhere
# The other imports of Ultralytics outside compat, file by file; docs/development.md lists each with its reason.
ULTRALYTICS_IMPORT_EXCEPTIONS = {
    "benchmark/latency.py": {"import ultralytics"},  # records ultralytics.__version__ with the measurements
    "io/safetensors.py": {"import ultralytics"},  # records ultralytics.__version__ in the file's metadata
}


def ultralytics_imports(path: Path) -> list[tuple[int, str]]:
    """(line, statement) for every import of Ultralytics in ``path``, at the top or inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and re.match(r"ultralytics\b", node.module):
            found += [(node.lineno, f"from {node.module} import {alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if re.match(r"ultralytics\b", a.name)]
    return sorted(found)


def test_only_compat_imports_ultralytics_internals():
    offenders, used = [], set()
    for path in sorted(SRC.rglob("*.py")):
        name = str(path.relative_to(SRC))
        if name.startswith("plugin/compat/"):  # the compat package, and nothing beside it
            continue
        for line, statement in ultralytics_imports(path):
            if statement in ULTRALYTICS_IMPORT_EXCEPTIONS.get(name, set()):
                used.add((name, statement))
            elif statement not in PUBLIC_ULTRALYTICS_IMPORTS:
                offenders.append(f"{name}:{line} {statement}")
    assert not offenders, "\n".join(offenders)
    listed = {(name, s) for name, statements in ULTRALYTICS_IMPORT_EXCEPTIONS.items() for s in statements}
    assert listed == used, f"exceptions no longer needed: {sorted(listed - used)}"


def test_the_import_check_sees_internal_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from ultralytics import YOLO\n\ndef f():\n    from ultralytics.nn.tasks import DetectionModel\n")
    assert ultralytics_imports(probe) == [
        (1, "from ultralytics import YOLO"),
        (4, "from ultralytics.nn.tasks import DetectionModel"),
    ]


def test_development_doc_names_every_exception_and_every_file_it_lists_exists():
    doc = DEVELOPMENT_DOC.read_text()
    for name, statements in ULTRALYTICS_IMPORT_EXCEPTIONS.items():
        assert f"`{name}`" in doc and all(f"`{s}`" in doc for s in statements), name
    named = {n.removeprefix("src/lcnet_yolo/") for n in re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.py)`", doc)}
    listed = {n for n in named if n.split("/")[0] not in OUTSIDE_SRC}
    files = {str(path.relative_to(SRC)) for path in SRC.rglob("*.py")}
    missing = sorted(n for n in listed if n not in files and ("/" in n or not any(f.endswith("/" + n) for f in files)))
    assert listed and not missing, missing


def compat_modules() -> list:
    """The compat package and each of its modules."""
    names = sorted(info.name for info in pkgutil.iter_modules(compat.__path__))
    return [compat, *(importlib.import_module(f"{compat.__name__}.{name}") for name in names)]


def test_compat_is_a_package_whose_modules_each_export_through_it():
    modules = compat_modules()
    assert [m.__name__.rsplit(".", 1)[-1] for m in modules[1:]] == ["core", "export", "predict", "training", "trust"]
    assert Path(compat.__file__).parent == SRC / "plugin" / "compat" and not (SRC / "plugin" / "compat.py").exists()
    for module in modules[1:]:
        assert module.__all__ and all(getattr(compat, name) is getattr(module, name) for name in module.__all__)
        public = {n for n, obj in vars(module).items() if getattr(obj, "__module__", None) == module.__name__}
        assert {n for n in public if not n.startswith("_")} <= set(module.__all__), module.__name__
    assert len(compat.__all__) == len(set(compat.__all__)) == sum(len(m.__all__) for m in modules[1:])


def test_compat_docstring_lists_every_helper_it_defines():
    modules = compat_modules()
    helpers = [
        (module, name)
        for module in modules
        for name, obj in vars(module).items()
        if inspect.isfunction(obj) and obj.__module__ == module.__name__
    ]
    assert {module for module, _ in helpers} == set(modules[1:])  # every module's functions are looked at
    missing = [f"{m.__name__}.{name}" for m, name in helpers if name not in compat.__doc__ + (m.__doc__ or "")]
    assert not missing, missing


# --------------------------------------------------------------------------------------------------------------
# Layers, export files, formats and training internals (the last block of compat).


@pytest.fixture(scope="module")
def yolov8n_onnx(tmp_path_factory) -> Path:
    """YOLOv8n (random init) exported to ONNX by Ultralytics at 32 px."""
    weights = tmp_path_factory.mktemp("compat-onnx") / "yolov8n.pt"
    YOLO("yolov8n.yaml").save(weights)  # the export is written beside it
    with compat.quiet():
        return Path(YOLO(weights).export(format="onnx", imgsz=32, simplify=False, dynamic=False))


def test_ultralytics_layers_are_told_apart_from_its_models_by_their_package():
    assert tasks.C2f.__module__ == "ultralytics.nn.modules.block"
    assert compat.is_ultralytics_layer(tasks.C2f) and compat.is_ultralytics_layer(tasks.Detect)
    assert compat.is_ultralytics_layer(tasks.TorchVision)  # refused by name in lcnet_yolo.io.model_yaml
    for other in (tasks.DetectionModel, nn.Conv2d, "C2f", None):
        assert not compat.is_ultralytics_layer(other)


def test_fusable_conv_and_classify_head_are_what_fuse_and_reshape_look_for():
    fuse = inspect.getsource(tasks.BaseModel.fuse)
    assert 'isinstance(m, (Conv, Conv2, DWConv)) and hasattr(m, "bn")' in fuse
    assert "m.forward = m.forward_fuse" in fuse
    assert "self.act(self.conv(x))" in inspect.getsource(compat.Conv.forward_fuse)
    assert compat.FusableConv.__init__ is compat.Conv.__init__  # never run: instances are PP-LCNet units retyped
    head = compat.ClassifyHead()
    assert isinstance(head, compat.Classify) and list(head.children()) == [] and head.export is False
    assert "isinstance(m, Classify)" in inspect.getsource(tasks.ClassificationModel.reshape_outputs)


def test_decoding_nodes_are_detect_minus_its_conv_branches_in_a_real_export(yolov8n_onnx):
    import onnx

    names = [node.name for node in onnx.load(str(yolov8n_onnx)).graph.node]
    decoding = compat.detect_decoding_nodes(names)
    assert decoding and all(n.startswith("/model.22/") for n in decoding)
    assert not any(n.startswith(("/model.22/cv2", "/model.22/cv3")) for n in decoding)
    assert any(n.startswith("/model.22/cv2.0/") for n in names) and any(n.startswith("/model.22/dfl/") for n in names)
    assert {"one2one_cv2", "one2one_cv3"} <= set(re.findall(r"self\.(one2one_cv\d)", inspect.getsource(tasks.Detect)))
    assert compat.detect_decoding_nodes(["/model.3/a", "/model.12/cv3.0/Conv", "/model.12/dfl/Conv", "x"]) == [
        "/model.12/dfl/Conv"
    ]


def test_export_metadata_is_written_and_read_as_ultralytics_does(tmp_path, yolov8n_onnx):
    from ultralytics.engine import exporter

    assert 'YAML.save(Path(file).parent / "metadata.yaml", self.metadata)' in inspect.getsource(exporter)  # OpenVINO
    metadata = {"task": "detect", "stride": 32, "imgsz": [64, 64], "names": {0: "tree"}, "args": "{'batch': 1}"}
    path = compat.write_export_metadata(tmp_path / "m_openvino_model", metadata)
    assert path == tmp_path / "m_openvino_model" / "metadata.yaml"
    assert compat.read_export_metadata(path.parent) == metadata
    recorded = compat.read_export_metadata(yolov8n_onnx)
    assert recorded["task"] == "detect" and recorded["imgsz"] == "[32, 32]"  # ONNX properties are strings
    assert compat.read_export_metadata(tmp_path / "nothing.onnx") == {}


def test_export_tables_are_the_exporter_s():
    from ultralytics.nn.autobackend import AutoBackend

    assert compat.export_format_names() == (
        *("torchscript", "onnx", "openvino", "engine", "coreml", "coreai", "saved_model", "pb", "edgetpu"),
        *("litert", "paddle", "mnn", "ncnn", "imx", "rknn", "executorch", "axelera", "deepx", "qnn", "hailo"),
        *("ascend", "xilinx"),
    )
    suffixes = compat.export_suffixes()
    assert suffixes["_ncnn_model"] == "ncnn" and suffixes["_qnn.onnx"] == "qnn" and suffixes[".mlmodel"] == "coreml"
    assert ".pt" not in suffixes and set(suffixes.values()) == set(compat.export_format_names())
    assert '".mlmodel"' in inspect.getsource(AutoBackend._model_type)  # the legacy ending it still reads


def test_format_aliases_are_the_ones_the_exporter_maps():
    from ultralytics.engine.exporter import Exporter

    source = inspect.getsource(Exporter.__call__)
    found = {}
    pattern = r'if fmt in \{([^}]*)\}:.*?fmt(?:, self\.args\.format)? = (?:self\.args\.format = )?"(\w+)"'
    for aliases, target in re.findall(pattern, source, flags=re.DOTALL):
        found.update(dict.fromkeys(re.findall(r'"(\w+)"', aliases), target))
    assert found == compat.export_format_aliases() == compat.EXPORT_FORMAT_ALIASES
    assert set(found.values()) <= set(compat.export_format_names())


def test_detection_loss_reads_the_batch_we_build():
    from ultralytics.utils.loss import v8DetectionLoss

    source = inspect.getsource(v8DetectionLoss)
    assert all(f'batch["{key}"]' in source for key in ("batch_idx", "cls", "bboxes"))
    model = compat.DetectionModel("yolov8n.yaml", nc=1, verbose=False).train()
    targets = torch.tensor([[0, 0, 0.5, 0.5, 0.2, 0.3], [1, 0, 0.3, 0.6, 0.1, 0.1], [1, 0, 0.7, 0.2, 0.2, 0.2]])
    batch = compat.detection_batch(torch.rand(2, 3, 64, 64), targets)
    assert batch["cls"].shape == (3, 1) and batch["bboxes"].shape == (3, 4) and batch["batch_idx"].shape == (3,)
    loss = compat.detection_loss(model, batch)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.args.box == compat.DEFAULT_CFG.box  # the trainer's default hyperparameters


def test_trainer_reads_args_val_after_epoch_end_and_writes_checkpoints_by_write_bytes(tmp_path):
    from types import SimpleNamespace

    from lcnet_yolo.io.runs import AtomicPath

    train = inspect.getsource(compat.BaseTrainer._do_train)
    assert 0 < train.index('self.run_callbacks("on_train_epoch_end")') < train.index("if self.args.val or final_epoch")
    save = inspect.getsource(compat.BaseTrainer.save_model)
    assert "self.last.write_bytes(" in save and "self.best.write_bytes(" in save
    callbacks = {}
    yolo = SimpleNamespace(add_callback=lambda event, f: callbacks.setdefault(event, f))
    compat.validate_on_epochs(yolo, lambda epoch, epochs: epoch % 2 == 0 or epoch == epochs)
    trainer = SimpleNamespace(epoch=0, epochs=3, args=SimpleNamespace(val=True))
    seen = []
    for trainer.epoch in range(3):
        callbacks["on_train_epoch_end"](trainer)
        seen.append(trainer.args.val)
    assert seen == [False, True, True]
    trainer = SimpleNamespace(last=tmp_path / "last.pt", best=tmp_path / "best.pt")
    compat.save_checkpoints_through(trainer, AtomicPath)
    assert type(trainer.last) is AtomicPath and trainer.best == tmp_path / "best.pt"


def test_results_csv_columns_are_the_detection_metrics_keys():
    from ultralytics.utils.metrics import DetMetrics

    assert set(compat.RESULTS_CSV_COLUMNS.values()) <= set(DetMetrics().keys)
    assert compat.RESULTS_CSV_COLUMNS["map50_95"] == "metrics/mAP50-95(B)"


# --- Multi-GPU (DDP) launch: what our trainers and tests/ddp_shim rely on ---


def test_ddp_launch_removes_the_run_folder_unless_resuming_and_carries_callbacks_by_reference(tmp_path):
    from types import SimpleNamespace

    from ultralytics.utils import dist

    from lcnet_yolo.plugin.ddp import import_in_ranks

    save_dir = tmp_path / "run"
    trainer = SimpleNamespace(
        resume=False, save_dir=save_dir, world_size=2, args=SimpleNamespace(model="m.yaml"), model="m.yaml"
    )
    trainer.callbacks = YOLO("yolov8n.yaml").callbacks
    assert import_in_ranks in trainer.callbacks["on_pretrain_routine_start"]  # every model carries it
    for keep in (True, False):
        save_dir.mkdir(exist_ok=True)
        with compat.ddp_launch_keeps_save_dir(trainer) if keep else contextlib.nullcontext():
            command, file = dist.generate_ddp_command(trainer)
        assert save_dir.is_dir() is keep and trainer.resume is False
        assert command[1:5] == ["-m", "torch.distributed.run", "--nproc_per_node", "2"] and command[-1] == file
        script, state = Path(file).read_text(), Path(file).with_suffix(".pt").read_bytes()
        assert 'state["trainer"](cfg=cfg, overrides=state["args"], _callbacks=state["callbacks"])' in script
        assert b"lcnet_yolo.plugin.ddp" in state and b"import_in_ranks" in state  # by reference: imports us
        dist.ddp_cleanup(trainer, file)
        assert not Path(file).exists()


def test_trainer_launches_ranks_from_train_when_ddp_and_is_told_apart_by_rank():
    source = inspect.getsource(compat.BaseTrainer.__init__)
    assert "self.ddp = world_size > 1 and LOCAL_RANK == -1" in source
    assert "select_device(self.args.device)" in source  # tests/ddp_shim replaces it in the trainer's module
    assert "generate_ddp_command(self)" in inspect.getsource(compat.BaseTrainer.train)
    from ultralytics.engine import trainer as trainer_module
    from ultralytics.engine import validator as validator_module

    assert callable(trainer_module.select_device) and callable(trainer_module.generate_ddp_command)
    assert validator_module.AutoBackend.__name__ == "AutoBackend"


def test_cuda_only_calls_the_cpu_ddp_test_replaces():
    setup = inspect.getsource(compat.BaseTrainer._setup_ddp)
    assert "self.accelerator.set_device(index)" in setup and 'else "gloo"' in setup
    assert "dist.is_nccl_available()" in setup and "dist.init_process_group(" in setup
    train_setup = inspect.getsource(compat.BaseTrainer._setup_train)
    assert "nn.parallel.DistributedDataParallel(" in train_setup and "device_ids=[self.device.index]" in train_setup
    from ultralytics.engine.validator import BaseValidator

    call = inspect.getsource(BaseValidator.__call__)
    assert "model = AutoBackend(" in call and ".current_device())" in call
    assert "device=select_device(self.args.device)" in call  # a keyword: the shim replaces it
    from ultralytics.data.build import build_dataloader

    assert 'device_type not in {"cpu", "mps"}' in inspect.getsource(build_dataloader)


def test_safe_load_active_reads_the_switch_safe_load_mode_sets():
    assert compat.safe_load_active() is False
    with compat.safe_load_mode():
        assert compat.safe_load_active() is True
    assert compat.safe_load_active() is False


def test_deterministic_algorithms_is_the_trainers_deterministic_mode_and_is_undone():
    from ultralytics.utils import torch_utils

    assert list(inspect.signature(torch_utils.init_seeds).parameters) == ["seed", "deterministic"]
    assert "init_seeds(self.args.seed + 1 + RANK, deterministic=self.args.deterministic)" in inspect.getsource(
        compat.BaseTrainer.__init__
    )
    with compat.deterministic_algorithms(True):
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic


def test_trainer_puts_the_model_in_channels_last_on_cuda_unless_told_not_to():
    """The GPU benchmark's rows with channels_last and deterministic mode are what ``device=0`` training uses."""
    from ultralytics.utils import DEFAULT_CFG_DICT

    assert DEFAULT_CFG_DICT["channels_last"] is None and DEFAULT_CFG_DICT["deterministic"] is True
    source = inspect.getsource(compat.BaseTrainer._setup_train)
    assert "self.args.channels_last is None and TORCH_1_11 and not WINDOWS" in source
    assert 'if channels_last and self.device.type == "cuda":' in source
    assert "self.model = self.model.to(memory_format=torch.channels_last)" in source


# ------------------------------------------------------------------------------------ datasets are never downloaded
def test_trainer_validator_and_exporter_check_datasets_through_their_module_globals():
    """no_dataset_downloads swaps check_det_dataset/check_cls_dataset where these modules look them up."""
    from ultralytics.data import utils

    for module in compat.DATASET_CHECK_MODULES:
        source = inspect.getsource(module)
        assert module.check_det_dataset is utils.check_det_dataset, module.__name__
        assert module.check_cls_dataset is utils.check_cls_dataset, module.__name__
        assert "check_det_dataset(self.args.data" in source, module.__name__
    assert "autodownload" in inspect.signature(utils.check_det_dataset).parameters
    assert (compat.PACKAGED_DATASETS_DIR / "coco8.yaml").is_file()


def test_no_dataset_downloads_never_runs_a_download_script(tmp_path):
    import contextlib

    from ultralytics.data import utils
    from ultralytics.engine import validator

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.yaml"
    evil.write_text(
        f"path: {tmp_path / 'missing'}\ntrain: images/train\nval: images/val\nnames: {{0: box}}\n"
        f"download: open({str(marker)!r}, 'w').close()\n"
    )
    with compat.no_dataset_downloads():
        with pytest.raises(FileNotFoundError, match="images not found"):
            validator.check_det_dataset(str(evil))
        with compat.no_dataset_downloads(), pytest.raises(FileNotFoundError, match="URL or archive"):
            validator.check_det_dataset("https://example.com/data.zip")
        with pytest.raises(FileNotFoundError, match="must be a local folder"):
            validator.check_cls_dataset("imagenette160")
    assert not marker.exists()
    assert validator.check_det_dataset is utils.check_det_dataset  # restored, also after nesting
    with contextlib.suppress(Exception):
        utils.check_det_dataset(str(evil))  # the pinned behaviour: autodownload=True runs the script
    assert marker.exists()


# ------------------------------------------------------------------------------- sliced prediction and its metrics
def test_detection_results_is_one_ultralytics_result_for_a_picture():
    import numpy as np

    picture = np.zeros((30, 50, 3), np.uint8)
    result = compat.detection_results(picture, "p.png", {0: "tree"}, np.array([[1, 2, 11, 22, 0.5, 0]]))
    assert result.orig_shape == (30, 50) and result.path == "p.png" and result.names == {0: "tree"}
    assert result.boxes.xyxy.tolist() == [[1, 2, 11, 22]] and result.boxes.conf.tolist() == [0.5]
    assert result.boxes.xywhn.numpy() == pytest.approx(np.array([[6 / 50, 12 / 30, 10 / 50, 20 / 30]]))


def test_model_stride_and_predict_save_dir(tmp_path):
    from ultralytics import YOLO

    assert compat.model_stride(YOLO("yolov8n-pplcnet.yaml")) == 32
    assert compat.model_stride(type("Exported", (), {"model": "model.onnx"})()) == 32
    save_dir = compat.predict_save_dir({"project": str(tmp_path), "name": "sliced"})
    assert save_dir == tmp_path / "sliced" and not save_dir.exists()  # not created until something is written
    save_dir.mkdir()
    assert compat.predict_save_dir({"project": str(tmp_path), "name": "sliced"}).parent == tmp_path


def test_model_predict_reads_argv_and_predict_in_python_avoids_it(monkeypatch, tmp_path):
    import numpy as np
    from ultralytics import YOLO
    from ultralytics.engine import model as model_module

    model, picture = YOLO("yolov8n-pplcnet.yaml"), np.zeros((64, 64, 3), np.uint8)
    monkeypatch.setattr(model_module, "ARGV", ["/bin/lcnet-yolo", "predict"])
    assert model.predict(picture, imgsz=64, save=False, verbose=False, project=str(tmp_path)) is None  # `yolo` CLI
    results = compat.predict_in_python(model, [picture, picture], imgsz=64, verbose=False)
    assert len(results) == 2 and results[0].orig_shape == (64, 64)
    assert model_module.ARGV == ["/bin/lcnet-yolo", "predict"]


def test_validator_matching_and_ap_per_class_score_a_perfect_and_a_missed_box():
    import numpy as np

    targets = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    predictions = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    iou = compat.box_iou(targets, predictions)
    assert iou.tolist() == [[1.0, 0.0], [0.0, 0.0]]
    correct = compat.match_detections(torch.tensor([0, 0]), torch.tensor([0, 0]), iou).numpy()
    assert correct.shape == (2, 10) and correct[0].all() and not correct[1].any()
    ap = compat.ap_per_class(correct, np.array([0.9, 0.8]), np.array([0, 0]), np.array([0, 0]))[5]
    assert ap.shape == (1, 10) and ap[0, 0] == pytest.approx(0.5, abs=0.01)  # recall 0.5 at precision 1


# ------------------------------------------------------------------ the trust boundary for .pt files (safe_load)
def test_load_checkpoint_and_strip_optimizer_read_through_the_names_checkpoint_reader_replaces(tmp_path):
    from ultralytics.utils import torch_utils

    seen = []

    def read_checkpoint(weight):
        seen.append(("checkpoint", str(weight)))
        return {"model": tasks.DetectionModel("yolov8n.yaml", verbose=False), "train_args": {}}, str(weight)

    def read_file(f, *args, **kwargs):
        seen.append(("file", str(f)))
        return {}

    with compat.checkpoint_reader(read_checkpoint, read_file):
        model, _ = tasks.load_checkpoint(tmp_path / "x.pt")
        assert torch_utils.strip_optimizer(tmp_path / "y.pt") == {}  # an unreadable file: skipped with a warning
    assert seen == [("checkpoint", str(tmp_path / "x.pt")), ("file", str(tmp_path / "y.pt"))]
    assert type(model).__name__ == "DetectionModel"
    assert tasks.torch_safe_load is compat.torch_safe_load  # put back


def test_the_classes_a_checkpoint_may_name_are_where_the_allow_list_looks():
    from ultralytics.nn.distill_model import DistillationModel
    from ultralytics.nn.modules.head import Detect

    for name in ("DetectionModel", "ClassificationModel", "SegmentationModel", "PoseModel", "OBBModel"):
        assert issubclass(compat.task_model(name), nn.Module)
    assert compat.ultralytics_layer("ultralytics.nn.modules.head", "Detect") is Detect
    assert compat.ultralytics_layer("ultralytics.nn.modules.block", "TorchVision") is not None  # refused by name
    assert compat.ultralytics_layer("ultralytics.nn.tasks", "DetectionModel") is None
    # why DistillationModel is refused: its constructor loads the teacher through load_checkpoint
    assert "load_checkpoint(teacher_model)" in inspect.getsource(DistillationModel.__init__)
    assert compat.IterableSimpleNamespace(a=1).a == 1


def test_a_resumed_trainer_writes_to_args_save_dir_when_set():
    from types import SimpleNamespace

    args = SimpleNamespace(save_dir="/somewhere/run", project=None, name=None, task="detect", mode="train")
    assert compat.get_save_dir(args) == Path("/somewhere/run")
    allowed = inspect.getsource(compat.BaseTrainer.check_resume)
    assert '"save_dir"' in allowed and '"distill_model"' in allowed  # overrides a resume keeps from the caller


def test_not_ultralytics_cli_gives_results_to_predict_and_track_inside_a_command_named_yolo(monkeypatch, tmp_path):
    import numpy as np
    from ultralytics.engine import model as model_module

    source = inspect.getsource(model_module.Model.predict)
    assert 'ARGV[0].endswith("yolo")' in source and "predict_cli" in source  # the check we step around (8.4.190)
    assert "self.predict(" in inspect.getsource(model_module.Model.track)  # track goes through the same check
    model, picture = YOLO("yolov8n-pplcnet.yaml"), np.zeros((64, 64, 3), np.uint8)
    monkeypatch.setattr(model_module, "ARGV", ["/venv/bin/lcnet-yolo", "predict"])
    with compat.not_ultralytics_cli():
        assert model_module.ARGV == [compat.NEUTRAL_ARGV0]
        results = list(model.predict(picture, imgsz=64, save=False, stream=True, verbose=False, project=str(tmp_path)))
    assert len(results) == 1 and results[0].orig_shape == (64, 64)
    assert model_module.ARGV == ["/venv/bin/lcnet-yolo", "predict"]  # restored
