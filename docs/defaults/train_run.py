"""One neon-trees run of BENCHMARKS.md, "Defaults that train"; appends a JSON row to runs/defaults/results.jsonl.

    python docs/defaults/train_run.py TAG MODEL SEED ours|plain [key=value ...] [scaled_init=1] [bn_momentum=0.1]

``ours`` trains with lcnet_yolo.LCNetDetectionTrainer (its defaults apply), ``plain`` with Ultralytics'
DetectionTrainer. Budget as in the issue: 30 epochs, imgsz 416, batch 4; metrics of best.pt on the val split.
"""

import json
import sys
import time
from pathlib import Path

from ultralytics import YOLO
from ultralytics.cfg import parse_key_value_pair
from ultralytics.models.yolo.detect import DetectionTrainer

import lcnet_yolo
from lcnet_yolo.data import resolve_data

sys.path.insert(0, str(Path(__file__).parent))
from variants import trainer_with_variants

tag, model_name, seed, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
extra = dict(parse_key_value_pair(a) for a in sys.argv[5:])
scaled_init, bn_momentum = bool(extra.pop("scaled_init", False)), extra.pop("bn_momentum", None)
out = Path("runs/defaults")
args = dict(
    data=resolve_data("neon-trees"),
    epochs=30,
    imgsz=416,
    batch=4,
    seed=seed,
    deterministic=True,
    workers=0,
    plots=False,
    project=str(out.resolve()),
    name=f"{tag}-{model_name}-s{seed}",
    **extra,
)
base = lcnet_yolo.LCNetDetectionTrainer if kind == "ours" else DetectionTrainer
trainer = trainer_with_variants(base, scaled_init, bn_momentum) if scaled_init or bn_momentum else base
start = time.time()
model = YOLO(lcnet_yolo.resolve_model(model_name))
model.train(trainer=trainer, **args)
t = model.trainer
row = dict(
    tag=tag,
    model=model_name,
    seed=seed,
    trainer=kind,
    extra=extra,
    scaled_init=scaled_init,
    bn_momentum=bn_momentum,
    optimizer=str(t.args.optimizer),
    lr0=t.args.lr0,
    nbs=t.args.nbs,
    accumulate=t.accumulate,
    map50=float(t.metrics["metrics/mAP50(B)"]),
    map=float(t.metrics["metrics/mAP50-95(B)"]),
    minutes=round((time.time() - start) / 60, 2),
)
print("ROW", json.dumps(row))
with open(out / "results.jsonl", "a") as f:
    f.write(json.dumps(row) + "\n")
