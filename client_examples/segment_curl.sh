#!/usr/bin/env bash
# sam2_segment with nothing but bash and curl (KServe v2 HTTP API, binary tensor extension).
#
#     client_examples/segment_curl.sh IMAGE X Y [URL] [OUT]
#     client_examples/segment_curl.sh photo.jpg 300 200 http://127.0.0.1:8000 response.json
#
# The body is a JSON header followed by the image file's raw bytes: the header's length goes in
# the Inference-Header-Content-Length header and the image input says how many bytes follow
# ("binary_data_size"). The point is plain JSON data. We ask for output_format "rle", so the
# answer is small JSON: iou_scores as numbers and encoded_masks as one COCO RLE JSON string per
# mask ({"size": [H, W], "counts": ..., "bbox": ..., "area": ...}). The whole response is written
# to OUT (default response.json) and the IoU scores are printed. Needs bash and curl >= 7.76.
# The sam2-image-id header (sha256 of the file) lets a balancer in front of several replicas
# (sam2-triton cluster, the Kubernetes Ingress) send all requests about this image to one.
set -euo pipefail
export LC_ALL=C # ${#header} must count bytes

if [[ $# -lt 3 ]]; then
    sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
image=$1 x=$2 y=$3
url=${4:-http://127.0.0.1:8000}
out=${5:-response.json}

size=$(wc -c <"$image")
image_id=$(sha256sum "$image" | cut -c1-64)
size=${size//[[:space:]]/}
header=$(
    cat <<EOF
{"inputs": [
  {"name": "image", "datatype": "UINT8", "shape": [$size], "parameters": {"binary_data_size": $size}},
  {"name": "point_coords", "datatype": "FP32", "shape": [1, 2], "data": [$x, $y]},
  {"name": "point_labels", "datatype": "INT32", "shape": [1], "data": [1]},
  {"name": "multimask_output", "datatype": "BOOL", "shape": [1], "data": [true]},
  {"name": "output_format", "datatype": "BYTES", "shape": [1], "data": ["rle"]}
 ],
 "outputs": [
  {"name": "iou_scores", "parameters": {"binary_data": false}},
  {"name": "encoded_masks", "parameters": {"binary_data": false}}
 ]}
EOF
)

{ printf '%s' "$header"; cat "$image"; } | curl --silent --show-error --fail-with-body \
    --request POST "$url/v2/models/sam2_segment/infer" \
    --header "Content-Type: application/octet-stream" \
    --header "Inference-Header-Content-Length: ${#header}" \
    --header "sam2-image-id: $image_id" \
    --data-binary @- --output "$out" || {
    echo "request failed; server said: $(cat "$out" 2>/dev/null)" >&2
    exit 1
}

# Triton answers {"model_name": ..., "outputs": [{"name": "iou_scores", ..., "data": [...]}, ...]}
scores=$(grep -o '"name":"iou_scores"[^]]*][^]]*]' "$out" | sed 's/.*"data":\[\(.*\)\]/\1/')
echo "iou_scores [$scores]"
echo "RLE masks (outputs[].encoded_masks in the KServe response) -> $out"
