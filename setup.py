"""Finds the packages: every package under src/ and the export step's (export/ installs as
sam2_triton.export, mapped in pyproject.toml). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(packages=[*find_packages("src", exclude=["sam2_triton.export*"]), "sam2_triton.export"])
