"""SAM 3's exported graphs as the service reads them: file names, tensor names and the sizes
fixed at export (issue 34). Torch-free: the export (export/sam3_*.py) writes to it and the
in-process and served paths read from it."""

from __future__ import annotations

# The export folder's files are the contract's (the repository builder places them).
from sam2_triton.contract import CONCEPT_FILES, VOCABULARY_FILE  # noqa: F401 - re-exported
from sam2_triton.contract import SAM3_FILES as FILES  # noqa: F401 - re-exported

IMAGE_SIZE = 1008  # the vision graph's input side: 72 x 72 patches of 14 pixels
#: The vision graph's outputs the detector reads: its feature pyramid [B, 256, S, S].
FEATURES = ("fpn_288", "fpn_144", "fpn_72")
MAX_BOXES = 16  # the detector's example-box slots (fixed: a trace fixes sam3's box count)
#: The detector's inputs, in order: FEATURES, the phrase's features [1, 32, 256] and padding
#: mask [1, 32], example boxes [1, MAX_BOXES, 4] (centre-size in [0, 1]), labels and padding.
DETECTOR_INPUTS = (*FEATURES, "text_features", "text_mask", "boxes", "box_labels", "box_mask")
#: [1, 200] logits, [1, 200, 4] boxes (centre-size in [0, 1]), [1, 1] presence logit,
#: [1, 200, 288, 288] mask logits.
DETECTOR_OUTPUTS = ("pred_logits", "pred_boxes", "presence_logit", "pred_masks")
