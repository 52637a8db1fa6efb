"""``sam2-triton ui``: a single-page app and the same-origin gateway it talks to.

Triton's HTTP endpoint sends no CORS headers and wants binary framing for image bytes, so the
browser never calls it: the gateway (``gateway.py``, aiohttp) serves the page and a small JSON
API, and calls the service through ``SegmentClient`` (``backend.py``). The page itself is plain
ES modules under ``static/`` (no build step). Design and API: docs/ui.md.
"""
