"""``sam2-triton connect``: the service as the SAM 2 backend of labelling tools (Label Studio's
ML backend, CVAT's serverless functions, X-AnyLabeling's remote server), one gateway speaking
each tool's own protocol and mapping it onto the served models (docs/integrations.md).

Layers: ``config`` (what the gateway offers), ``images`` and ``service`` (encode once, click,
segment everything: the tools' common ground), one module per tool (``label_studio``, ``cvat``,
``anylabeling``: parse its requests, answer in its encodings and error shapes), ``app`` (the
aiohttp routes).
"""
