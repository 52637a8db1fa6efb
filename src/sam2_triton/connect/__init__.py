"""``sam2-triton connect``: the service as the SAM 2 backend of labelling tools (Label Studio's
ML backend, CVAT's serverless functions, X-AnyLabeling's remote server), one gateway speaking
each tool's own protocol and mapping it onto the served models (docs/integrations.md).

Layers: ``config`` (what the gateway offers); ``service`` (images checked and encoded once, a
click, segment-everything: the tools' common ground); one module per tool (``label_studio``,
``cvat``, ``anylabeling``: read its requests, answer in its encodings and error shapes, with
``brush`` for Label Studio's masks, ``runs`` and ``answers`` for reading sam2_session's RLE
and writing the tools' long number lists); ``app`` (the aiohttp routes).
"""
