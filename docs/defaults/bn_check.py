"""Validate a checkpoint, then again after re-estimating BatchNorm running statistics (BENCHMARKS.md, "Defaults
that train"): on the training tiles through the last epochs' augmentation (mosaic closed), two passes, batch 4.

    python docs/defaults/bn_check.py runs/defaults/NAME/weights/last.pt [all|backbone|rest]

Prints, per re-estimated BatchNorm, the median of old running_var / re-estimated one, and mAP before/after.
"""

import sys

import torch
from ultralytics.cfg import get_cfg
from ultralytics.data import build_yolo_dataset
from ultralytics.data.utils import check_det_dataset

from lcnet_yolo.io.checkpoints import load_yolo
from lcnet_yolo.data import resolve_data

ckpt, part, imgsz = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "all"), 416
data = resolve_data("neon-trees")
args = dict(data=data, imgsz=imgsz, batch=4, workers=0, plots=False, verbose=False)
before = load_yolo(ckpt).val(**args).box
model = load_yolo(ckpt)
net = model.model.float()
backbone = {id(m) for b in net.modules() if type(b).__name__ == "PPLCNetBackbone" for m in b.modules()}
norms = [
    (name, m)
    for name, m in net.named_modules()
    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    and (part == "all" or (part == "backbone") == (id(m) in backbone))
]
old = {name: m.running_var.clone() for name, m in norms}
for _, m in norms:
    m.reset_running_stats()
    m.momentum = None  # cumulative average
info = check_det_dataset(data)
cfg = get_cfg(overrides=dict(imgsz=imgsz, mosaic=0.0, mixup=0.0, copy_paste=0.0))
dataset = build_yolo_dataset(cfg, info["train"], 4, info, mode="train", stride=32)
net.train()
with torch.no_grad():
    for _ in range(2):
        for i in range(0, len(dataset), 4):
            items = [dataset[j] for j in range(i, min(i + 4, len(dataset)))]
            net(torch.stack([item["img"] for item in items]).float() / 255)
net.eval()
for name, m in norms:
    print(f"{name:42s} running_var old/re-estimated, median over channels: {(old[name] / m.running_var).median():.3f}")
after = model.val(**args).box
print(
    f"RESULT {ckpt} {part}: mAP50-95 {before.map:.4f} -> {after.map:.4f}",
    f"(mAP50 {before.map50:.4f} -> {after.map50:.4f})",
)
