import sys

from lcnet_yolo_runtime.cli import main

sys.exit(main())
