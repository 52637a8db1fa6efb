"""Video tracking: frames, each object's tracked state, the tracker's steps, sessions, the
service and its operations, the frame scheduler.

Builds on image (transforms, masks, encodings); the clients build on it.
"""
