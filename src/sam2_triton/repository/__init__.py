"""The Triton model repository: serving options, the plan of what runs where (image and video
models), config rendering and writing.

Depends only on the contract and the model families: configs render without torch, an export
or any feature's code.
"""
