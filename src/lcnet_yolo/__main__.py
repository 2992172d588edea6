"""``python -m lcnet_yolo`` is the ``lcnet-yolo`` command."""

import sys

from lcnet_yolo.cli import main

sys.exit(main())
