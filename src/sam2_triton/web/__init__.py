"""What the two aiohttp gateways (``ui``, ``connect``) share: server-sent events."""
