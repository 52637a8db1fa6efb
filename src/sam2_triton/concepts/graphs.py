"""SAM 3's exported graphs as the service reads them: file names, tensor names and the sizes
fixed at export (issue 34). Torch-free: the export (export/sam3_*.py) writes to it and the
in-process and served paths read from it."""

from __future__ import annotations

# The export folder's files are the contract's (the repository builder places them).
from sam2_triton.contract import (  # noqa: F401 - re-exported
    CONCEPT_FILES,
    MAX_EXAMPLE_BOXES,
    SAM3_DETECTOR_INPUTS,
    SAM3_DETECTOR_OUTPUTS,
    SAM3_VISION_OUTPUTS,
    VOCABULARY_FILE,
)
from sam2_triton.contract import SAM3_FILES as FILES  # noqa: F401 - re-exported
from sam2_triton.contract import SAM3_IMAGE_SIZE as IMAGE_SIZE  # noqa: F401 - re-exported

#: The vision graph's outputs the detector reads: its feature pyramid [B, 256, S, S].
FEATURES = tuple(t.name for t in SAM3_VISION_OUTPUTS)
MAX_BOXES = MAX_EXAMPLE_BOXES
#: The detector's inputs, in order: FEATURES, the phrase's features [1, 32, 256] and padding
#: mask [1, 32], example boxes [1, MAX_BOXES, 4] (centre-size in [0, 1]), labels and padding.
DETECTOR_INPUTS = tuple(t.name for t in SAM3_DETECTOR_INPUTS)
#: [1, 200] logits, [1, 200, 4] boxes (centre-size in [0, 1]), [1, 1] presence logit,
#: [1, 200, 288, 288] mask logits.
DETECTOR_OUTPUTS = tuple(t.name for t in SAM3_DETECTOR_OUTPUTS)
