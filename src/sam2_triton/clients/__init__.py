"""Clients of the served models: tritonclient I/O, the image and video clients, drop-ins for
Meta's three predictors, session affinity.
"""
