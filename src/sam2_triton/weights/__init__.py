"""The four SAM 2.1 sizes and their official checkpoints: download, sha256, loading."""
