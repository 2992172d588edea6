"""Every place lcnet-yolo relies on Ultralytics beyond ``YOLO(...)`` and its documented arguments, in one package.

lcnet-yolo is pinned to ``ultralytics==8.4.190`` (:data:`ULTRALYTICS_VERSION`); ``tests/test_compat.py`` checks each
entry below against that release, so the next Ultralytics release is checked here and nowhere else. Outside this
package our code imports only ``from ultralytics import YOLO`` (and ``ultralytics.__version__``); a test enforces it.

=========================================  ======================================================================
What we rely on                            Why
=========================================  ======================================================================
``tasks`` globals (:func:`add_layers`)     ``parse_model`` finds a YAML module name in ``ultralytics.nn.tasks``'
                                           globals; our layers are added there. :func:`layer_named` looks a name
                                           up where ``parse_model`` does (the model-YAML allow-list).
``tasks.check_yaml`` (:func:`hook_check_yaml`)
                                           model YAMLs are found through it; a packaged YAML name resolves to our
                                           ``cfg/models`` folder.
``tasks.SAFE_LOAD``, ``torch_safe_load``   restricted (``weights_only=True``) loading of ``.pt`` files
(:func:`safe_load_mode`)
``yaml_model_load``                        reads a model YAML as Ultralytics does (scale letter from the name)
``Conv``, ``Classify``                     ``BaseModel.fuse`` folds BN into instances of ``Conv`` that have a
                                           ``bn``; ``initialize_weights`` sets eps 1e-3 on modules whose type *is*
                                           ``nn.BatchNorm2d``. Our conv units subclass ``Conv``, our backbone's
                                           norms are a named subclass (``lcnet_yolo.nn.layers``). ``Classify`` is
                                           the base of our classifier head (Ultralytics resizes ``.linear``).
trainer methods (:data:`TRAINER_HOOKS`)    our trainers override these ``BaseTrainer`` methods and read
                                           ``accumulate``, ``train_loader``, ``batch_size``, ``last``/``best``,
                                           ``csv``, ``start_epoch``
``patches._image_open`` (:func:`plain_image_open`)
                                           PIL's ``open`` without Ultralytics' patch, which pip-installs a HEIF
                                           plugin on the first file PIL cannot read
``LOGGER`` (:func:`logger_disabled`, :func:`quiet`)
                                           silencing Ultralytics' messages around helpers that print
the trainer's dataset message (:func:`dataset_error_cause`)
                                           the trainer wraps any dataset problem in ``RuntimeError("Dataset 'x'
                                           error ❌ <cause>")``; the CLI reports the cause in one line
``ARGV`` of ``engine.model``               ``Model.predict`` takes a program named ``...yolo`` for its own CLI
(:func:`not_ultralytics_cli`)              and returns None; predict/track run under a neutral ``ARGV[0]``
``cfg`` helpers, ``LetterBox``,            argument parsing and checking as the ``yolo`` command does, the
``data.utils``, ``torch_utils``            predictor's letterbox, dataset paths and formats, FLOPs counts
``nn.modules`` (:func:`is_ultralytics_layer`)
                                           model YAMLs from files may name Ultralytics' layers, not its models
:class:`FusableConv`, :class:`ClassifyHead`
                                           our layers subclass ``Conv``/``Classify`` without their ``__init__``
ONNX node names (:func:`detect_decoding_nodes`)
                                           Detect's decoding stays float in int8 models; found by module path
export files (:func:`write_export_metadata`, :func:`read_export_metadata`)
                                           ``metadata.yaml`` written as the exporter writes it; metadata of any
                                           export read as AutoBackend reads it
export tables (:func:`export_format_names`, :func:`export_suffixes`, :func:`export_format_aliases`)
                                           formats, path endings and ``format=`` aliases of the exporter
``results.csv`` (:data:`RESULTS_CSV_COLUMNS`)
                                           the columns of a training log that hold validation mAP
loss batch (:func:`detection_batch`, :func:`detection_loss`)
                                           training throughput runs the detection loss on a made-up batch
trainer (:func:`validate_on_epochs`, :func:`save_checkpoints_through`)
                                           ``args.val`` read after ``on_train_epoch_end``; checkpoints written by
                                           ``last``/``best``'s ``write_bytes``
dataset checks of trainer, validator,      :func:`no_dataset_downloads`: no dataset is downloaded, unpacked or
exporter (``check_det_dataset``)           its ``download:`` script run, whatever names it (URLs and archives:
                                           :func:`_refuse_remote_dataset`)
``Results``, ``get_save_dir``, metrics    sliced prediction: one result per picture (:func:`detection_results`),
                                           :func:`model_stride`, :func:`predict_save_dir`, windows predicted by
                                           :func:`predict_in_python` (``Model.predict``'s ``ARGV`` test); its
                                           benchmark matches and scores as ``val`` does
                                           (:func:`match_detections`, :func:`box_iou`, :func:`ap_per_class`)
``tasks.torch_safe_load``,                 where Ultralytics reads a ``.pt`` on its own (``load_checkpoint``) and
``torch_utils.torch_load``                 re-reads its weights after training (``strip_optimizer``):
(:func:`checkpoint_reader`)                ours is put in their place during our runs (the trust boundary)
``tasks`` model classes, ``nn.modules``    what a checkpoint's pickle may name (:func:`task_model`,
(:func:`ultralytics_layer`)                :func:`ultralytics_layer`), ``IterableSimpleNamespace``,
                                           ``attempt_download_asset`` (official asset names the user gives)
=========================================  ======================================================================

The package's modules, by concern: :mod:`.core` (version, layers, YAML hook, restricted loading, logging),
:mod:`.export` (export formats and metadata, ONNX node names), :mod:`.training` (loss batch, validation epochs,
checkpoint writes, DDP launch, deterministic mode), :mod:`.predict` (results, stride, ``ARGV``, matching and AP
metrics) and :mod:`.trust` (datasets never downloaded, the checkpoint reader and what a checkpoint may name).
Every public name of theirs is importable from here.
"""

from __future__ import annotations

from lcnet_yolo.plugin.compat import core, export, predict, training, trust
from lcnet_yolo.plugin.compat.core import *  # noqa: F403  (each module's __all__ is what it exports)
from lcnet_yolo.plugin.compat.export import *  # noqa: F403
from lcnet_yolo.plugin.compat.predict import *  # noqa: F403
from lcnet_yolo.plugin.compat.training import *  # noqa: F403
from lcnet_yolo.plugin.compat.trust import *  # noqa: F403

# Every public name of the modules, once: each module's ``__all__`` is the list (tests/test_compat.py checks it).
__all__ = [*core.__all__, *export.__all__, *predict.__all__, *training.__all__, *trust.__all__]
