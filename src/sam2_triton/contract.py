"""The tensor contract: every tensor name, dtype and shape, declared once.

The ONNX exporter takes its ``input_names``/``output_names`` from here, the repository builder
renders every ``config.pbtxt`` from here, and the Python-backend models read their tensors by these
names, so the three cannot drift apart.

Shapes use -1 for a dynamic axis. For models with ``max_batch_size > 0`` the leading batch axis is
*not* part of ``dims`` (Triton's convention); the ONNX files do carry it as their first axis.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# SAM 2 geometry (fixed by the architecture, see sam2/configs/sam2.1/*.yaml).
IMAGE_SIZE = 1024
LOW_RES_MASK_SIZE = 256
NUM_MASK_TOKENS = 4  # token 0: single-mask output, tokens 1..3: multimask outputs
EMBED_DIM = 256
EMBED_SIZE = 64  # IMAGE_SIZE / 16

# Files of an export folder (exports/<model>/), written by sam2_triton.export, read by the
# repository builder.
ENCODER_FILE = "image_encoder.onnx"
DECODER_FILE = "mask_decoder.onnx"
EXPORT_METADATA_FILE = "export.json"
# ... and the video tracker's (``sam2-triton export --video``): SAM2Base's no_mem_embed,
# no_obj_ptr and mask_downsample (a 4 x 4 convolution's weights) are the constants.
TRACKING_DECODER_FILE = "tracking_decoder.onnx"
MEMORY_ATTENTION_FILE = "memory_attention.onnx"
MEMORY_ENCODER_FILE = "memory_encoder.onnx"
TRACKER_CONSTANTS_FILE = "tracker_constants.npz"
VIDEO_EXPORT_FILES = (
    TRACKING_DECODER_FILE,
    MEMORY_ATTENTION_FILE,
    MEMORY_ENCODER_FILE,
    TRACKER_CONSTANTS_FILE,
)
# ... and SAM 3's (export/sam3_export.py): its four graphs and CLIP's byte-pair vocabulary
# (concepts.tokens reads it), copied beside them; sam3_concepts needs CONCEPT_FILES of them.
SAM3_FILES = {
    "vision": "sam3_vision.onnx",
    "text": "sam3_text.onnx",
    "detector": "sam3_detector.onnx",
    "interactive": "sam3_interactive_decoder.onnx",
}
VOCABULARY_FILE = "bpe_simple_vocab_16e6.txt.gz"
CONCEPT_FILES = (SAM3_FILES["vision"], SAM3_FILES["text"], SAM3_FILES["detector"], VOCABULARY_FILE)

# Triton model names (the public API: clients in any language rely on these).
PREPROCESS = "sam2_preprocess"
IMAGE_ENCODER = "sam2_image_encoder"
MASK_DECODER = "sam2_mask_decoder"
POSTPROCESS = "sam2_postprocess"
SEGMENT = "sam2_segment"
SESSION = "sam2_session"
AUTOMATIC = "sam2_automatic"
VIDEO = "sam2_video"
VIDEO_STREAM = "sam2_video_stream"
# ... both stateless: the sessions live in this internal model (one instance, a batch axis, so
# that propagations of different videos arriving together are tracked together)
VIDEO_SESSIONS = "sam2_video_sessions"
# ... and the tracker's graphs as models of their own (GPU target; sam2_video calls them by BLS)
TRACKING_DECODER = "sam2_tracking_decoder"
MEMORY_ATTENTION = "sam2_memory_attention"
MEMORY_ENCODER = "sam2_memory_encoder"

# Mask encodings a request can ask for (input ``output_format``); "raw" is the default.
# png/rle/polygons replace the raw masks (polygons: each mask's outer and hole contours, COCO
# polygon lists simplified to ``polygon_tolerance`` pixels); cutout/cutout_cropped add one RGBA
# PNG per mask (the image with alpha = mask, cropped to the mask's box for cutout_cropped) to the
# raw masks; "logits" sends no masks, only low_res_logits, unclamped: what the server
# thresholds, so that a client upsampling them with ``image.masks.masks_from_logits`` gets the
# server's masks exactly.
OUTPUT_FORMATS = ("raw", "png", "rle", "polygons", "cutout", "cutout_cropped", "logits")
ENCODED_ONLY_FORMATS = ("png", "rle", "polygons")
DEFAULT_POLYGON_TOLERANCE = 0.25  # pixels: half the way to a boundary pixel's centre
NO_RAW_MASK_FORMATS = ("png", "rle", "polygons", "logits")  # masks travels as [0, H, W]

#: Full-size masks one response may carry (B sets x K masks x H x W bytes, 5 per pixel with a
#: cut-out's RGBA PNG beside it): beyond it the client is told to ask for png/rle or a
#: mask_size instead of a response of gigabytes. The remote predictor splits its requests by it.
MAX_RAW_MASK_BYTES = 1 << 30

#: Request limits every target shares: a decompression-bomb cap (~8000 x 8000) and points per
#: prompt set (the decoder's token attention grows with their square).
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
DEFAULT_MAX_POINTS = 64


def content_id(data: bytes) -> str:
    """The id of an image: sha256 of its encoded bytes (same file, same id, on any instance,
    client and server alike: a balancer hashing on it keeps an image on one replica)."""
    return hashlib.sha256(data).hexdigest()


def is_valid_id(key: str) -> bool:
    return len(key) == 64 and all(ch in "0123456789abcdef" for ch in key)


# How the embedded target runs the ONNX files: fp32 on ONNX Runtime, bf16 on OpenVINO.
CPU_PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Tensor:
    """One named tensor of a model's interface."""

    name: str
    dtype: str  # Triton data type without the TYPE_ prefix: FP32, INT32, UINT8, BOOL, STRING
    dims: tuple[int, ...]
    optional: bool = False


# --- ONNX image encoder: image [B,3,1024,1024] -> three feature maps -------------------------
# The maps are SAM's (``SAM2ImagePredictor._features``) laid out as the rows the decoder's matrix
# products read (``sam2_triton.export.decoder_graph.decoder_layout``;
# ``image.decoder_feeds.sam_layout`` turns them back into NCHW):
# - image_embed: [4096, 256], row y*64 + x of the 64x64 map (the transformer's image tokens);
# - high_res_feats_1: the 128x128x64 map as [4096, 256], row (i, j), column (a, b, c) for pixel
#   (2i + a, 2j + b);
# - high_res_feats_0: the 256x256x32 map as [16384, 128], row (i, j, a, b), column (a2, b2, c)
#   for pixel (4i + 2a + a2, 4j + 2b + b2).
PIXELS = EMBED_SIZE * EMBED_SIZE  # 4096 image tokens
ENCODER_INPUTS = (Tensor("image", "FP32", (3, IMAGE_SIZE, IMAGE_SIZE)),)
ENCODER_OUTPUTS = (
    Tensor("image_embed", "FP32", (PIXELS, EMBED_DIM)),
    Tensor("high_res_feats_0", "FP32", (4 * PIXELS, 4 * 32)),
    Tensor("high_res_feats_1", "FP32", (PIXELS, 4 * 64)),
)

# --- ONNX prompt/mask decoder: one image, N prompt sets (max_batch_size 0: full shapes) -------
# The image's features come once ([1, ...]) and are shared by the N prompt sets inside the graph.
# point_coords are in the 1024x1024 model frame; labels: 1 fg, 0 bg, 2/3 box corners, -1 padding.
# It returns all four mask tokens per prompt set; choosing single/multimask is postprocessing.
DECODER_FEATURES = tuple(Tensor(t.name, t.dtype, (1, *t.dims)) for t in ENCODER_OUTPUTS)
DECODER_INPUTS = (
    *DECODER_FEATURES,
    Tensor("point_coords", "FP32", (-1, -1, 2)),
    Tensor("point_labels", "INT32", (-1, -1)),
    Tensor("mask_input", "FP32", (-1, 1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE)),
    Tensor("has_mask_input", "FP32", (-1, 1)),
)
DECODER_OUTPUTS = (
    Tensor("low_res_masks", "FP32", (-1, NUM_MASK_TOKENS, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE)),
    Tensor("iou_predictions", "FP32", (-1, NUM_MASK_TOKENS)),
)

# --- ONNX video tracker (export/tracker_graph.py; max_batch_size 0: full shapes) ------------
# Axes: objects tracked together, memory frames and object pointers a frame reads. The tracking
# decoder is the image decoder plus SAM 2's object pointer and object score; its image_embed is
# the frame's memory-conditioned features (one object's, or the image's own on a prompted frame).
MEMORY_DIM = 64
TRACKING_DECODER_INPUTS = DECODER_INPUTS
TRACKING_DECODER_OUTPUTS = (
    *DECODER_OUTPUTS,
    Tensor("obj_ptrs", "FP32", (-1, NUM_MASK_TOKENS, EMBED_DIM)),
    Tensor("object_score_logits", "FP32", (-1, 1)),
)
MEMORY_ATTENTION_INPUTS = (
    Tensor("vision_feat", "FP32", (-1, PIXELS, EMBED_DIM)),
    Tensor("memory", "FP32", (-1, -1, PIXELS, MEMORY_DIM)),
    Tensor("memory_tpos", "INT64", (-1, -1)),  # each object's own: videos share calls
    Tensor("obj_ptrs", "FP32", (-1, -1, EMBED_DIM)),
    Tensor("obj_ptr_tpos", "FP32", (-1, -1)),
)
MEMORY_ATTENTION_OUTPUTS = (Tensor("pix_feat_with_mem", "FP32", (-1, PIXELS, EMBED_DIM)),)
MEMORY_ENCODER_INPUTS = (
    Tensor("vision_feat", "FP32", (-1, PIXELS, EMBED_DIM)),
    Tensor("mask_logits", "FP32", (-1, 1, IMAGE_SIZE, IMAGE_SIZE)),
    Tensor("object_score_logits", "FP32", (-1, 1)),
    Tensor("binarize", "BOOL", (1,)),
)
MEMORY_ENCODER_OUTPUTS = (Tensor("maskmem_features", "FP32", (-1, PIXELS, MEMORY_DIM)),)

# --- sam2_segment: the public one-call model (max_batch_size 0: shapes are exact) -------------
SEGMENT_INPUTS = (
    Tensor("image", "UINT8", (-1,)),
    Tensor("point_coords", "FP32", (-1, 2), optional=True),
    Tensor("point_labels", "INT32", (-1,), optional=True),
    Tensor("box", "FP32", (4,), optional=True),
    Tensor("multimask_output", "BOOL", (1,), optional=True),
    # A previous response's low_res_logits entry, for refinement (SAM2ImagePredictor's mask_input).
    Tensor("mask_input", "FP32", (1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE), optional=True),
    Tensor("output_format", "STRING", (1,), optional=True),  # one of OUTPUT_FORMATS
    # (height, width) of the masks returned, default the image's: the full-size masks resized
    # nearest-neighbour (half-pixel centres, as PyTorch's "nearest-exact"), e.g. to a display.
    Tensor("mask_size", "INT32", (2,), optional=True),
    # output_format "polygons": how far (pixels) a simplified contour may stray from the traced
    # one (Douglas-Peucker); default polygons.DEFAULT_TOLERANCE, 0 keeps every contour point.
    Tensor("polygon_tolerance", "FP32", (1,), optional=True),
    # B prompt sets at once (SAM2ImagePredictor's batched prompts, e.g. several boxes), instead
    # of the four single-set inputs above: one decoder call shares the image's features. Sets
    # with fewer points pad theirs with label -1. Outputs then hold each set's K masks in turn.
    Tensor("point_coords_batch", "FP32", (-1, -1, 2), optional=True),
    Tensor("point_labels_batch", "INT32", (-1, -1), optional=True),
    Tensor("box_batch", "FP32", (-1, 4), optional=True),
    Tensor(
        "mask_input_batch", "FP32", (-1, 1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE), optional=True
    ),
)
SEGMENT_OUTPUTS = (
    # raw/cutout*: [K, H, W] 0/1; png/rle/logits: [0, H, W] (the masks travel in encoded_masks,
    # or are upsampled by the client); H, W are mask_size's when it is given. With B prompt
    # sets every output's first axis is B * K: set 0's K entries, then set 1's, ...
    Tensor("masks", "UINT8", (-1, -1, -1)),
    Tensor("iou_scores", "FP32", (-1,)),
    # clamped to +-32 as SAM2ImagePredictor returns them; unclamped for output_format "logits"
    Tensor("low_res_logits", "FP32", (-1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE)),
    # png: one PNG file per mask; rle: one JSON COCO RLE object per mask ({"size", "counts",
    # "bbox", "area"}); polygons: one JSON object per mask ({"size", "segmentation": [outer
    # polygons], "holes": [[the holes of each]], "bbox", "area"}); cutout*: one RGBA PNG per
    # mask; raw: [0].
    Tensor("encoded_masks", "STRING", (-1,)),
)

# --- sam2_session: encode once, click many (Python backend, BLS) -----------------------------
# A request with `image` encodes it (unless cached) and returns its content id; a request with
# `image_id` and prompts runs the decoder alone. Without prompts nothing is decoded (K = 0).
SESSION_INPUTS = (
    Tensor("image", "UINT8", (-1,), optional=True),
    Tensor("image_id", "STRING", (1,), optional=True),
    *SEGMENT_INPUTS[1:],
)
SESSION_OUTPUTS = (*SEGMENT_OUTPUTS, Tensor("image_id", "STRING", (1,)))

# --- sam2_automatic: segment everything (Python backend, BLS) ---------------------------------
# Every parameter of SAM2AutomaticMaskGenerator this service supports is an optional [1] input
# (defaults: sam2_triton.image.automatic.AutomaticParams); the result is one JSON document:
# {"image": {"height", "width"}, "annotations": [SA-1B records]}.
AUTOMATIC_PARAMETERS = (
    Tensor("points_per_side", "INT32", (1,), optional=True),
    Tensor("points_per_batch", "INT32", (1,), optional=True),
    Tensor("pred_iou_thresh", "FP32", (1,), optional=True),
    Tensor("stability_score_thresh", "FP32", (1,), optional=True),
    Tensor("stability_score_offset", "FP32", (1,), optional=True),
    Tensor("mask_threshold", "FP32", (1,), optional=True),
    Tensor("box_nms_thresh", "FP32", (1,), optional=True),
    Tensor("crop_n_layers", "INT32", (1,), optional=True),
    Tensor("crop_nms_thresh", "FP32", (1,), optional=True),
    # FP64: the crops are int(ratio * side), and float32(512 / 1500) * 1500 falls below 512
    Tensor("crop_overlap_ratio", "FP64", (1,), optional=True),
    Tensor("crop_n_points_downscale_factor", "INT32", (1,), optional=True),
    Tensor("min_mask_region_area", "INT32", (1,), optional=True),
    Tensor("multimask_output", "BOOL", (1,), optional=True),
)
# How the annotations' masks are written: "rle" (default, SA-1B) or "polygons" (COCO polygon
# lists in "segmentation", the holes of each in "holes"), polygon_tolerance as for sam2_segment.
AUTOMATIC_OUTPUT_OPTIONS = (
    Tensor("segmentation_format", "STRING", (1,), optional=True),
    Tensor("polygon_tolerance", "FP32", (1,), optional=True),
)
AUTOMATIC_INPUTS = (
    Tensor("image", "UINT8", (-1,)),
    *AUTOMATIC_PARAMETERS,
    *AUTOMATIC_OUTPUT_OPTIONS,
)
AUTOMATIC_OUTPUTS = (Tensor("annotations", "STRING", (1,)),)

# --- sam2_video: track objects through a video (Python backend; sam2_triton.video.service) ----
# One request per operation (video.request.OPERATIONS) on a session the server keeps; masks of
# F frames x N objects come as low_res_logits (output_format "logits", default: the client
# upsamples them to the video's size as the server would), one RLE per frame and object, or raw.
# sam2_video_stream (decoupled, gRPC) takes the same inputs for "propagate" and streams one
# response per frame.
VIDEO_INPUTS = (
    Tensor("operation", "STRING", (1,)),
    Tensor("session_id", "STRING", (1,), optional=True),
    Tensor("video", "UINT8", (-1,), optional=True),  # start: a video file (MP4, WebM, ...)
    Tensor("frames", "STRING", (-1,), optional=True),  # start/add_frames: encoded frames
    Tensor("num_frames", "INT32", (1,), optional=True),  # start: the length of a stream to come
    Tensor("frame_idx", "INT32", (1,), optional=True),
    Tensor("obj_id", "INT32", (1,), optional=True),
    Tensor("point_coords", "FP32", (-1, 2), optional=True),
    Tensor("point_labels", "INT32", (-1,), optional=True),
    Tensor("box", "FP32", (4,), optional=True),
    Tensor("clear_old_points", "BOOL", (1,), optional=True),
    Tensor("normalize_coords", "BOOL", (1,), optional=True),  # false: coords in [0, 1]
    Tensor("mask", "BOOL", (-1, -1), optional=True),  # add_mask
    Tensor("start_frame_idx", "INT32", (1,), optional=True),
    Tensor("max_frame_num_to_track", "INT32", (1,), optional=True),
    Tensor("reverse", "BOOL", (1,), optional=True),
    Tensor("max_frames", "INT32", (1,), optional=True),  # propagate: frames in this answer
    Tensor("resume", "BOOL", (1,), optional=True),  # propagate: the next page of one under way
    Tensor("output_format", "STRING", (1,), optional=True),  # logits | rle | raw
)
VIDEO_OUTPUTS = (
    Tensor("session_id", "STRING", (1,)),
    Tensor("num_frames", "INT32", (1,)),
    Tensor("video_size", "INT32", (2,)),  # (height, width)
    Tensor("frame_indices", "INT32", (-1,)),  # the F frames answered
    Tensor("obj_ids", "INT32", (-1,)),  # the session's N objects, in order
    Tensor("low_res_logits", "FP32", (-1, -1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE)),  # [F, N]
    Tensor("masks", "UINT8", (-1, -1, -1, -1)),  # raw: [F, N, H, W]
    Tensor("encoded_masks", "STRING", (-1,)),  # rle: F x N JSON records, frame by frame
    Tensor("next_frame_idx", "INT32", (1,)),  # propagate: where the next page starts, or -1
    Tensor("frames_left", "INT32", (1,)),  # ... and how many frames it has left
)

# --- sam3_concepts: SAM 3's concept prompts (Python backend; sam2_triton.concepts.service) -----
# Every instance of each phrase (and/or like the example boxes) in an image: an image's backbone
# features are cached by its content id as sam2_session's embeddings are, a phrase's text features
# once per server. Each phrase is its own question (Sam3Processor.set_text_prompt), the example
# boxes added to each (add_geometric_prompt); boxes without a phrase ask for what they show
# (sam3's "visual" prompt). Outputs hold the K instances of phrase 0, then phrase 1, ...
CONCEPTS = "sam3_concepts"
CONCEPT_OUTPUT_FORMATS = ("raw", "png", "rle", "polygons")
CONCEPTS_INPUTS = (
    Tensor("image", "UINT8", (-1,), optional=True),
    Tensor("image_id", "STRING", (1,), optional=True),
    Tensor("text", "STRING", (-1,), optional=True),  # phrases, each asked on its own
    Tensor("boxes", "FP32", (-1, 4), optional=True),  # example boxes, x0 y0 x1 y1 in pixels
    Tensor("box_labels", "INT32", (-1,), optional=True),  # 1 positive (default), 0 negative
    Tensor("confidence_threshold", "FP32", (1,), optional=True),  # default 0.5, Sam3Processor's
    Tensor("output_format", "STRING", (1,), optional=True),  # one of CONCEPT_OUTPUT_FORMATS
    Tensor("polygon_tolerance", "FP32", (1,), optional=True),
)
CONCEPTS_OUTPUTS = (
    Tensor("masks", "UINT8", (-1, -1, -1)),  # raw: [K, H, W] 0/1; else [0, H, W]
    Tensor("scores", "FP32", (-1,)),  # sigmoid(logit) * sigmoid(presence)
    Tensor("boxes", "FP32", (-1, 4)),  # x0 y0 x1 y1 in pixels
    Tensor("phrase_index", "INT32", (-1,)),  # which phrase of ``text`` found it (0 without)
    Tensor("encoded_masks", "STRING", (-1,)),  # png / rle / polygons as for sam2_segment
    Tensor("image_id", "STRING", (1,)),
)

# --- SAM 3's graphs as models of their own (GPU target: the onnxruntime backend, reached by
# sam3_concepts through BLS; on the embedded target they run inside it). Sizes fixed at export.
SAM3_VISION, SAM3_TEXT, SAM3_DETECTOR = "sam3_vision", "sam3_text", "sam3_detector"
SAM3_IMAGE_SIZE = 1008  # 72 x 72 patches of 14 pixels
SAM3_TOKENS = 32  # a phrase's tokens, padded
MAX_EXAMPLE_BOXES = 16  # the detector's example-box slots (a trace fixes sam3's box count)
SAM3_VISION_INPUTS = (Tensor("image", "FP32", (3, SAM3_IMAGE_SIZE, SAM3_IMAGE_SIZE)),)
#: The detector's feature pyramid [256, S, S]; the graph's other outputs (the interactive
#: model's features) are not served.
SAM3_VISION_OUTPUTS = tuple(Tensor(f"fpn_{s}", "FP32", (EMBED_DIM, s, s)) for s in (288, 144, 72))
SAM3_TEXT_INPUTS = (Tensor("tokens", "INT64", (SAM3_TOKENS,)),)
SAM3_TEXT_OUTPUTS = (Tensor("text_features", "FP32", (SAM3_TOKENS, EMBED_DIM)),)
SAM3_DETECTOR_INPUTS = (  # one image and one question a run (no batch axis)
    *(Tensor(t.name, t.dtype, (1, *t.dims)) for t in SAM3_VISION_OUTPUTS),
    Tensor("text_features", "FP32", (1, SAM3_TOKENS, EMBED_DIM)),
    Tensor("text_mask", "BOOL", (1, SAM3_TOKENS)),  # True: padding
    Tensor("boxes", "FP32", (1, MAX_EXAMPLE_BOXES, 4)),  # centre-size in [0, 1]
    Tensor("box_labels", "INT64", (1, MAX_EXAMPLE_BOXES)),  # 1 positive, 0 negative
    Tensor("box_mask", "BOOL", (1, MAX_EXAMPLE_BOXES)),  # True: an empty slot
)
SAM3_DETECTOR_OUTPUTS = (
    Tensor("pred_logits", "FP32", (1, 200)),  # 200 queries
    Tensor("pred_boxes", "FP32", (1, 200, 4)),  # centre-size in [0, 1]
    Tensor("presence_logit", "FP32", (1, 1)),
    Tensor("pred_masks", "FP32", (1, 200, 288, 288)),  # mask logits
)

# --- tensors between the steps of sam2_segment (ensemble wiring; not part of the public API) --
PREPROCESS_OUTPUTS = (
    Tensor("image_1024", "FP32", (1, 3, IMAGE_SIZE, IMAGE_SIZE)),
    Tensor("point_coords_1024", "FP32", (-1, -1, 2)),  # B prompt sets
    Tensor("point_labels_1024", "INT32", (-1, -1)),
    Tensor("mask_input_1024", "FP32", (-1, 1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE)),
    Tensor("has_mask_input", "FP32", (-1, 1)),
    Tensor("orig_size", "INT32", (2,)),
    Tensor("multimask", "BOOL", (1,)),
    Tensor("mask_format", "STRING", (1,)),
    Tensor("cutout_rgb", "UINT8", (-1, -1, 3)),  # the decoded image for cutouts, else [0, 0, 3]
    Tensor("mask_hw", "INT32", (2,)),  # the masks' (height, width): orig_size unless asked
    Tensor("polygon_epsilon", "FP32", (1,)),  # the request's polygon_tolerance
)
POSTPROCESS_INPUTS = (
    Tensor("low_res_masks", "FP32", (-1, NUM_MASK_TOKENS, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE)),
    Tensor("iou_predictions", "FP32", (-1, NUM_MASK_TOKENS)),
    Tensor("orig_size", "INT32", (2,)),
    Tensor("multimask", "BOOL", (1,)),
    Tensor("mask_format", "STRING", (1,)),
    Tensor("cutout_rgb", "UINT8", (-1, -1, 3)),
    Tensor("mask_hw", "INT32", (2,)),
    Tensor("polygon_epsilon", "FP32", (1,)),
)
