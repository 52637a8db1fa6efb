"""Session affinity across replicas: every request about one image carries the image's id in one
header, so a balancer hashing on that header sends all of them to the replica that caches the
image's embedding (nginx ``hash $http_sam2_image_id`` in ``sam2-triton cluster``, ingress-nginx
``upstream-hash-by`` on Kubernetes).

The id is sam2_session's own ``image_id`` (sha256 of the encoded image bytes), so a client knows it
before its first request. Header names are lower case because gRPC metadata keys must be.
"""

from __future__ import annotations

from sam2_triton.contract import content_id

IMAGE_ID_HEADER = "sam2-image-id"
# nginx exposes a request header as $http_<name, lower case, '-' as '_'>, for HTTP/1 and HTTP/2.
NGINX_HEADER_VARIABLE = "$http_" + IMAGE_ID_HEADER.replace("-", "_")


def affinity_headers(image: bytes | None = None, image_id: str | None = None) -> dict[str, str]:
    """The header for a request about ``image`` (or the image with ``image_id``); {} for neither."""
    key = image_id if image_id is not None else (content_id(image) if image is not None else None)
    return {} if key is None else {IMAGE_ID_HEADER: key}
