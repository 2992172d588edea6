"""``python -m lcnet_yolo.quantize``: int8 vs fp32 side by side (see :mod:`lcnet_yolo.quantize.cli`)."""

import sys

from lcnet_yolo.quantize.cli import main

sys.exit(main())
