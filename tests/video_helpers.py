"""A synthetic video of moving shapes, Meta's SAM2VideoPredictor on the test weights, and the
one script of calls that VideoSession (in-process) and SAM2RemoteVideoPredictor (through a real
server) both replay against the reference's answers, which are computed once per test run
(conftest's ``video_reference``): the reference's memory attention costs seconds a frame."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

HEIGHT, WIDTH = 120, 160
AGREEMENT = 0.999  # of mask pixels, per frame and object, against the reference

#: The script's video: 8 frames, the fewest in which a frame (7) attends to a full memory bank
#: (its prompted frame and the 6 frames before it).
SCRIPT_FRAMES = 8
# (call, kwargs) in order, each answer compared with the reference's: clicks and a box on
# frame 0, a refining click, propagation, a correction (a background click) on a tracked frame,
# an object added mid-video and tracked on, reverse propagation through the corrected frame,
# remove_object (the frames it had prompts on are answered again), tracking on without it,
# clear_all_prompts_in_frame, reset_state and a new object.
SCRIPT = [
    ("add_new_points_or_box", {"frame_idx": 0, "obj_id": 1, "points": [[35.0, 55.0]],
                               "labels": [1]}),
    ("add_new_points_or_box", {"frame_idx": 0, "obj_id": 2, "box": [92, 3, 128, 38]}),
    ("add_new_points_or_box", {"frame_idx": 0, "obj_id": 1, "points": [[45.0, 50.0]],
                               "labels": [1], "clear_old_points": False}),
    ("propagate_in_video", {}),
    ("add_new_points_or_box", {"frame_idx": 5, "obj_id": 1, "points": [[60.0, 80.0]],
                               "labels": [0], "clear_old_points": False}),
    ("add_new_points_or_box", {"frame_idx": 6, "obj_id": 3, "points": [[110.0, 90.0]],
                               "labels": [1]}),
    ("propagate_in_video", {"start_frame_idx": 6}),
    ("propagate_in_video", {"start_frame_idx": 6, "max_frame_num_to_track": 2,
                            "reverse": True}),
    ("remove_object", {"obj_id": 1}),
    ("propagate_in_video", {"start_frame_idx": 0, "max_frame_num_to_track": 1}),
    ("clear_all_prompts_in_frame", {"frame_idx": 0, "obj_id": 2}),
    ("reset_state", {}),
    ("add_new_points_or_box", {"frame_idx": 3, "obj_id": 5, "points": [[50.0, 55.0]],
                               "labels": [1]}),
]  # fmt: skip
#: The frames each step answers (the tests check them besides the masks).
SCRIPT_FRAMES_ANSWERED = [
    [0], [0], [0], list(range(SCRIPT_FRAMES)), [5], [6], [6, 7], [6, 5, 4], [0, 5],
    [0, 1], [0], [], [3],
]  # fmt: skip


def run_script(predictor, state, script=SCRIPT, after=None) -> list:
    """The answers of ``script`` on ``predictor`` (Meta's, ours in-process with ``state`` None,
    or the remote one): [(frame, obj_ids, logits)] per step: a call's one frame, every frame
    propagated, or remove_object's updated frames. ``after(step)`` runs after each step."""
    import torch

    answers = []
    with torch.inference_mode():
        for step, (call, kwargs) in enumerate(script):
            args = () if state is None else (state,)
            result = getattr(predictor, call)(*args, **kwargs)
            # ids are copied: the reference returns its state's list, which later calls change
            if call == "propagate_in_video":
                answers.append([(f, list(ids), m) for f, ids, m in result])
            elif call == "remove_object":
                ids, updated = result
                answers.append([(f, list(ids), m) for f, m in updated])
            elif call == "reset_state":
                answers.append([])
            else:
                answers.append([(result[0], list(result[1]), result[2])])
            if after is not None:
                after(step)
    return answers


def script_agreement(ours: list, theirs: list) -> float:
    """The worst agreement of two runs of (a prefix of) the script, whose frames and object ids
    must be the same at every step."""
    worst = 1.0
    for step, (mine, reference) in enumerate(zip(ours, theirs, strict=True)):
        assert [(f, ids) for f, ids, _ in mine] == [(f, ids) for f, ids, _ in reference], step
        for (_, _, m), (_, _, r) in zip(mine, reference, strict=True):
            assert tuple(m.shape) == tuple(r.shape), step
            worst = min(worst, *agreement(m, r))
    return worst


def synthetic_video(folder: Path, frames: int = 8) -> list[np.ndarray]:
    """A textured background, a red square moving right and a blue disc moving down, as JPEG
    frames 0.jpg ... (the layout SAM2VideoPredictor reads); returns the decoded frames."""
    rng = np.random.default_rng(0)
    background = rng.integers(60, 120, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    decoded = []
    for t in range(frames):
        frame = background.copy()
        x = 20 + (6 * t) % 100
        frame[40:70, x : x + 30] = (220, 30, 30)
        frame[(yy - (20 + (5 * t) % 80)) ** 2 + (xx - 110) ** 2 < 15**2] = (30, 40, 230)
        path = folder / f"{t}.jpg"
        Image.fromarray(frame).save(path, quality=95)
        decoded.append(np.asarray(Image.open(path).convert("RGB")))
    return decoded


def reference_video_predictor(tiny_export):
    """SAM2VideoPredictor on the test weights, as it runs on a GPU:

    - it stores memories in bfloat16 and, on a CPU without autocast, its memory attention
      would then mix dtypes: it is handed float32 copies of the same (rounded) values, so its
      numbers are unchanged;
    - it fills small holes in its masks (fill_hole_area 8) with its CUDA extension, which a CPU
      lacks (it then skips the step): the extension's connected components are computed here
      by scikit-image instead.

    It keeps every frame's image features, where the reference keeps only the last frame's
    (``_get_image_feature``): the same numbers, computed once per frame and not once per call
    (the tests' runs revisit frames, and the encoder costs seconds a frame here)."""
    import sam2.utils.misc
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    sam2.utils.misc.get_connected_components = connected_components

    predictor = build_sam2_video_predictor(
        tiny_export.config, ckpt_path=str(tiny_export.checkpoint), device="cpu",
        hydra_overrides_extra=list(tiny_export.overrides),
    )  # fmt: skip
    attention = predictor.memory_attention.forward

    def float32_memories(curr, memory, curr_pos=None, memory_pos=None, num_obj_ptr_tokens=0):
        return attention(
            curr, memory.to(torch.float32), curr_pos, memory_pos.to(torch.float32),
            num_obj_ptr_tokens,
        )  # fmt: skip

    predictor.memory_attention.forward = float32_memories
    encode, encoded = predictor.forward_image, {}

    def encode_once(image):
        key = (tuple(image.shape), hashlib.sha256(image.numpy().tobytes()).hexdigest())
        if key not in encoded:
            encoded[key] = encode(image)
        return encoded[key]

    predictor.forward_image = encode_once
    return predictor


def agreement(ours, theirs) -> list[float]:
    """Per object, the fraction of pixels where both masks (logits > 0) agree."""
    ours = ours.numpy() if hasattr(ours, "numpy") else np.asarray(ours)
    theirs = theirs.numpy() if hasattr(theirs, "numpy") else np.asarray(theirs)
    assert ours.shape == theirs.shape
    return [float(((o > 0) == (t > 0)).mean()) for o, t in zip(ours, theirs, strict=True)]


def connected_components(mask):
    """sam2's CUDA kernel ``_C.get_connected_componnets`` on a CPU: for a binary [N, 1, H, W]
    mask, each foreground pixel's 8-connected component label and that component's area (0 on
    the background)."""
    import torch
    from skimage.measure import label

    planes = mask.cpu().numpy().astype(bool)
    labels = np.zeros(planes.shape, np.int32)
    areas = np.zeros(planes.shape, np.int32)
    for index in np.ndindex(planes.shape[:2]):
        labelled = label(planes[index], connectivity=2)
        sizes = np.bincount(labelled.ravel())
        sizes[0] = 0
        labels[index], areas[index] = labelled, sizes[labelled]
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)


class RecordingModels:
    """The in-process graphs batching as the GPU target's BLS models do (up to
    ``batch_objects`` objects of any video in one memory-attention call, frames encoded
    together), recording each call's size: ``attended`` objects, ``encoded`` frames."""

    def __init__(self, models, batch_objects: int) -> None:
        self._models, self.batch_objects = models, batch_objects
        self.attended: list[int] = []
        self.encoded: list[int] = []

    def __getattr__(self, name):
        return getattr(self._models, name)

    def attend(self, feeds):
        self.attended.append(len(feeds["vision_feat"]))
        return self._models.attend(feeds)

    def encode_many(self, images):
        self.encoded.append(len(images))
        return [self._models.encode(image) for image in images]


class EncodeOnce:
    """The tracker's graphs, each frame's image features computed once for the whole run: the
    in-process tests track the same synthetic frames many times, and the image encoder is most
    of a frame's cost here (about 1 s of 1.7). The features are the graph's own, read-only, so
    a session that wrote into them would fail."""

    def __init__(self, models) -> None:
        self._models = models
        self._encoded: dict[tuple, dict[str, np.ndarray]] = {}

    def __getattr__(self, name):
        return getattr(self._models, name)

    def encode(self, image: np.ndarray) -> dict[str, np.ndarray]:
        key = (image.shape, image.dtype.str, hashlib.sha256(image.tobytes()).hexdigest())
        if key not in self._encoded:
            features = self._models.encode(image)
            for value in features.values():
                value.setflags(write=False)
            self._encoded[key] = features
        return dict(self._encoded[key])
