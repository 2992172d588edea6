"""``python -m lcnet_yolo.formats``: the same as ``lcnet-yolo formats``."""

import sys

from lcnet_yolo.formats.matrix import main

sys.exit(main())
