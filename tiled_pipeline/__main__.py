"""``python -m tiled_pipeline`` is the ``tiled-pipeline`` command."""

import sys

from tiled_pipeline.cli import main

sys.exit(main())
