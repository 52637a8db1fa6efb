"""VideoSession (the exported graphs + the tracker's numpy choices) against Meta's
SAM2VideoPredictor on the same random weights and the same JPEG frames of a synthetic video of
moving shapes: a mask prompt, and objects tracked together. The shared script (clicks, a box,
propagation both ways, a correction on a tracked frame, objects added and removed) is replayed
through a server running this session, in test_e2e_video (Meta's side of it costs minutes).
"""

from __future__ import annotations

import numpy as np
import pytest

from sam2_triton.video.session import VideoSession
from tests.video_helpers import (
    AGREEMENT,
    HEIGHT,
    WIDTH,
    RecordingModels,
    agreement,
)


@pytest.fixture(scope="module")
def models(tracker_models):
    return tracker_models


def _propagate(session, predictor, state, **kwargs) -> dict[int, list[float]]:
    import torch

    with torch.inference_mode():
        theirs = {f: (ids, m) for f, ids, m in predictor.propagate_in_video(state, **kwargs)}
    ours = {f: (ids, m) for f, ids, m in session.propagate_in_video(**kwargs)}
    assert list(ours) == list(theirs)
    agreements = {}
    for frame, (ids, masks) in ours.items():
        assert ids == theirs[frame][0]
        agreements[frame] = agreement(masks, theirs[frame][1])
    return agreements


def test_a_mask_prompt_then_tracking_matches_sam2_video_predictor(
    script_video, video_predictor, models
):
    import torch

    folder, frames = script_video
    reference = video_predictor
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[40:70, 32:62] = True  # the square on frame 2
    session = VideoSession(frames, models)
    with torch.inference_mode():
        state = reference.init_state(video_path=str(folder))
        theirs = reference.add_new_mask(state, frame_idx=2, obj_id=3, mask=mask)
    ours = session.add_new_mask(2, 3, mask)
    assert ours[1] == theirs[1] == [3]
    assert min(agreement(ours[2], theirs[2])) >= AGREEMENT
    tracked = _propagate(session, reference, state, max_frame_num_to_track=3)
    assert list(tracked) == [2, 3, 4, 5] and min(min(v) for v in tracked.values()) >= AGREEMENT


def test_objects_tracked_together_get_the_masks_they_get_one_by_one(script_video, models):
    """Objects reading as many memories and pointers share a memory-attention and
    memory-encoder call, each with its own temporal positions (an object prompted on another
    frame too, where its counts match); where they differ, it goes alone."""
    _, frames = script_video
    frames = frames[:4]
    batching = RecordingModels(models, batch_objects=2)
    results = []
    for graphs in (models, batching):
        session = VideoSession(frames, graphs)
        session.add_new_points_or_box(0, 1, points=[[35.0, 55.0]], labels=[1])
        session.add_new_points_or_box(0, 2, box=[92, 3, 128, 38])
        session.add_new_points_or_box(2, 3, points=[[60.0, 80.0]], labels=[1])
        results.append(list(session.propagate_in_video(start_frame_idx=0)))
    assert 2 in batching.attended and 1 in batching.attended, batching.attended
    for (frame, ids, one_by_one), (frame_b, ids_b, together) in zip(*results, strict=True):
        assert (frame, ids) == (frame_b, ids_b)
        np.testing.assert_allclose(together, one_by_one, atol=1e-2)
        assert min(agreement(together, one_by_one)) >= 0.999
