"""``sam2-triton batch``: masks for a folder of images (prompts file or automatic), resumable,
with a summary, an HTML report and timing plots."""

from sam2_triton.batch.runner import BatchOptions, BatchResult, find_images, run_batch

__all__ = ["BatchOptions", "BatchResult", "find_images", "run_batch"]
