"""sam2-triton: Meta's SAM 2.1 served by NVIDIA Triton Inference Server."""

__version__ = "0.1.0"
