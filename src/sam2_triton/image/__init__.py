"""Images: SAM 2's transforms, the typed request of each image model, prompts, the decoder's feeds,
masks and their encodings, segment, sessions and their embedding cache, segment-everything.

Depends only on the contract, the model families and the errors; video and the clients build
on it.
"""
