"""``python -m lcnet_yolo.benchmark``: the same as ``lcnet-yolo benchmark``."""

import sys

from lcnet_yolo.benchmark.cli import main

sys.exit(main(sys.argv[1:]))
