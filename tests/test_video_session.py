"""VideoSession (the exported graphs + tracking's numpy choices) against Meta's
SAM2VideoPredictor on the same random weights and the same JPEG frames of a synthetic video of
moving shapes: the prompted frame's masks, forward propagation, a second object with a box, a
correction click on a tracked frame, and reverse propagation.
"""

from __future__ import annotations

import numpy as np
import pytest

from sam2_triton.video.runtime import OnnxTrackerModels
from sam2_triton.video.session import VideoSession
from tests.video_helpers import (
    AGREEMENT,
    HEIGHT,
    WIDTH,
    RecordingModels,
    agreement,
    reference_video_predictor,
    synthetic_video,
)

FRAMES = 8


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    return folder, synthetic_video(folder, FRAMES)


@pytest.fixture(scope="module")
def reference(tiny_export):
    return reference_video_predictor(tiny_export)


@pytest.fixture(scope="module")
def models(tracker_export):
    return OnnxTrackerModels(tracker_export)


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


def test_clicks_box_correction_and_both_directions_match_sam2_video_predictor(
    video, reference, models
):
    import torch

    folder, frames = video
    session = VideoSession(frames, models)
    with torch.inference_mode():
        state = reference.init_state(video_path=str(folder))
        theirs = reference.add_new_points_or_box(
            state, frame_idx=0, obj_id=1, points=[[35.0, 55.0]], labels=[1]
        )
    ours = session.add_new_points_or_box(0, 1, points=[[35.0, 55.0]], labels=[1])
    assert ours[:2] == (theirs[0], theirs[1]) == (0, [1])
    assert min(agreement(ours[2], theirs[2])) >= AGREEMENT

    with torch.inference_mode():
        theirs = reference.add_new_points_or_box(state, 0, 2, box=[92, 3, 128, 38])
    ours = session.add_new_points_or_box(0, 2, box=[92, 3, 128, 38])
    assert ours[1] == theirs[1] == [1, 2]
    assert min(agreement(ours[2], theirs[2])) >= AGREEMENT

    forward = _propagate(session, reference, state)
    assert len(forward) == FRAMES
    assert min(min(v) for v in forward.values()) >= AGREEMENT, forward

    # a correction on a tracked frame: a background click fed with the frame's mask logits
    with torch.inference_mode():
        theirs = reference.add_new_points_or_box(
            state, 5, 1, points=[[60.0, 80.0]], labels=[0], clear_old_points=False
        )
    ours = session.add_new_points_or_box(5, 1, [[60.0, 80.0]], [0], clear_old_points=False)
    assert min(agreement(ours[2], theirs[2])) >= AGREEMENT

    backward = _propagate(
        session, reference, state, start_frame_idx=6, max_frame_num_to_track=3, reverse=True
    )
    assert list(backward) == [6, 5, 4, 3]
    assert min(min(v) for v in backward.values()) >= AGREEMENT, backward

    # removing an object leaves the other's masks; clearing its only prompt leaves nothing to track
    with torch.inference_mode():
        their_ids, their_updated = reference.remove_object(state, 1)
    ids, updated = session.remove_object(1)
    assert ids == their_ids == [2]
    assert [f for f, _ in updated] == [f for f, _ in their_updated] == [0, 5]
    for (_, ours_masks), (_, their_masks) in zip(updated, their_updated, strict=True):
        assert min(agreement(ours_masks, their_masks)) >= AGREEMENT
    again = _propagate(session, reference, state, start_frame_idx=0, max_frame_num_to_track=2)
    assert list(again) == [0, 1, 2] and min(min(v) for v in again.values()) >= AGREEMENT
    with torch.inference_mode():
        theirs = reference.clear_all_prompts_in_frame(state, 0, 2)
    ours = session.clear_all_prompts_in_frame(0, 2)
    assert min(agreement(ours[2], theirs[2])) >= AGREEMENT
    with pytest.raises(ValueError, match="object 2 has no prompt"):
        next(session.propagate_in_video())


def test_a_mask_prompt_then_tracking_matches_sam2_video_predictor(video, reference, models):
    import torch

    folder, frames = video
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


def test_objects_tracked_together_get_the_masks_they_get_one_by_one(video, models):
    """Objects reading as many memories and pointers share a memory-attention and
    memory-encoder call, each with its own temporal positions (an object prompted on another
    frame too, where its counts match); where they differ, it goes alone."""
    _, frames = video
    frames = frames[:5]
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
