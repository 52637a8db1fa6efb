"""``python -m sam2_triton.cli``: the same as the ``sam2-triton`` script."""

import sys

from sam2_triton.cli import main

sys.exit(main())
