"""Triton Python-backend models; each repository model.py re-exports one of these."""
