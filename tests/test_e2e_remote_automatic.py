"""SAM2RemoteAutomaticMaskGenerator against Meta's SAM2AutomaticMaskGenerator on the same
weights: the same keyword arguments give the same records (keys, value types, output modes),
masks matched with IoU >= 0.99, scores within 1e-3; min_mask_region_area cleans masks as the
reference does (OpenCV's connected components)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from pycocotools import mask as mask_utils

from sam2_triton.clients.automatic_mask_generator import SAM2RemoteAutomaticMaskGenerator
from tests.helpers import PARAMS, match_annotations

pytestmark = pytest.mark.e2e


def _rgb() -> np.ndarray:
    return np.ascontiguousarray(skimage.data.coffee()[::2, ::2])  # 300 x 200


def _remote(triton, protocol: str, **kwargs) -> SAM2RemoteAutomaticMaskGenerator:
    url = triton.http_url if protocol == "http" else triton.grpc_url
    return SAM2RemoteAutomaticMaskGenerator(url, protocol=protocol, **kwargs)


def _coco(record: dict) -> dict:
    """Any output_mode's segmentation -> a compressed RLE with str counts, for comparing."""
    segmentation = record["segmentation"]
    if isinstance(segmentation, np.ndarray):
        rle = mask_utils.encode(np.asfortranarray(segmentation.astype(np.uint8)))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, *segmentation["size"])
    else:
        return record
    return {**record, "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}}


def _assert_same(got: list[dict], want: list[dict]) -> None:
    assert len(want) > 3
    ours, theirs = [_coco(g) for g in got], [_coco(w) for w in want]
    assert min(match_annotations(ours, theirs)) >= 0.99
    encoded = [[dict(r["segmentation"], counts=r["segmentation"]["counts"].encode())
                for r in side] for side in (theirs, ours)]  # fmt: skip
    ious = np.atleast_2d(mask_utils.iou(*encoded, [0] * len(ours)))  # [want, got]
    points = np.array([w["point_coords"][0] for w in want])
    for k, record in enumerate(got):
        # its twin: the reference's mask from the same grid point that overlaps it most
        same_point = np.flatnonzero(np.all(np.isclose(points, record["point_coords"][0]), axis=1))
        assert same_point.size, f"no reference mask from point {record['point_coords']}"
        twin = want[same_point[np.argmax(ious[same_point, k])]]
        assert record.keys() == twin.keys()
        for key, value in record.items():
            assert type(value) is type(twin[key]), key
            if key in ("bbox", "crop_box", "point_coords"):
                assert [type(v) for v in value] == [type(v) for v in twin[key]], key
        seg, twin_seg = record["segmentation"], twin["segmentation"]
        if isinstance(seg, np.ndarray):
            assert (seg.dtype, seg.shape) == (twin_seg.dtype, twin_seg.shape)
        else:
            assert {n: type(v) for n, v in seg.items()} == {n: type(v) for n, v in twin_seg.items()}
        assert record["bbox"] == pytest.approx(twin["bbox"], abs=1)  # a pixel at IoU 0.99
        assert record["crop_box"] == twin["crop_box"]
        assert record["predicted_iou"] == pytest.approx(twin["predicted_iou"], abs=1e-3)
        assert record["stability_score"] == pytest.approx(twin["stability_score"], abs=1e-3)


@pytest.mark.parametrize(
    ("protocol", "output_mode"),
    [("grpc", "binary_mask"), ("http", "uncompressed_rle"), ("grpc", "coco_rle")],
)
def test_generate_gives_what_sam2_automatic_mask_generator_gives(
    triton, automatic_reference, protocol, output_mode
):
    reference = automatic_reference.generator(output_mode=output_mode, **PARAMS)
    with _remote(triton, protocol, output_mode=output_mode, **PARAMS) as remote:
        got = remote.generate(_rgb())
    _assert_same(got, reference.generate(_rgb()))


def test_crop_layers_cut_the_crops_the_reference_cuts(triton, automatic_reference):
    """One crop layer (4 more encoder runs, the edge filter, the cross-crop NMS), asked of
    sam2_automatic over HTTP directly and through the drop-in, both against one reference run.
    crop_overlap_ratio travels as FP64: at a 375-pixel side, float32(512 / 1500) would cut its
    crops a pixel short of the reference's (int(ratio * side) = 127, not 128)."""
    import io

    from PIL import Image

    from tests.test_e2e_automatic import assert_matches_reference, automatic

    rgb = np.asarray(Image.fromarray(skimage.data.coffee()).resize((500, 375)))
    params = {**PARAMS, "points_per_side": 4, "crop_n_layers": 1,
              "crop_n_points_downscale_factor": 2}  # fmt: skip
    want = automatic_reference.generator(output_mode="coco_rle", **params).generate(rgb)
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, "PNG")
    assert_matches_reference(automatic(triton, "http", png.getvalue(), **params), want, 375, 500)
    with _remote(triton, "http", output_mode="coco_rle", **params) as remote:
        got = remote.generate(rgb)
    assert {tuple(r["crop_box"]) for r in got} == {tuple(r["crop_box"]) for r in want}
    _assert_same(got, want)


def test_min_mask_region_area_cleans_masks_as_sam2s_postprocess_small_regions(
    triton, automatic_reference
):
    """sam2 1.1.0's generator documents min_mask_region_area but never calls its own
    postprocess_small_regions (it only hands the area to its CUDA-only low-res filling, skipped
    on a CPU): the reference here is its generator with that step called, as documented."""
    params = {**PARAMS, "output_mode": "coco_rle"}
    with _remote(triton, "grpc", **params, min_mask_region_area=400) as remote:
        got = remote.generate(_rgb())
    with _remote(triton, "grpc", **params) as remote:
        raw = remote.generate(_rgb())
    reference = automatic_reference.generator(**params)
    generate_masks = reference._generate_masks
    reference._generate_masks = lambda image: reference.postprocess_small_regions(
        generate_masks(image), 400, max(PARAMS["box_nms_thresh"], 0.7)
    )
    _assert_same(got, reference.generate(_rgb()))
    # random weights give ragged masks: the cleaning changed them
    assert {r["segmentation"]["counts"] for r in got} != {r["segmentation"]["counts"] for r in raw}


def test_what_is_not_served_is_refused_saying_so(triton):
    with pytest.raises(NotImplementedError, match="point_grids"):
        _remote(triton, "grpc", points_per_side=None, point_grids=[np.zeros((4, 2))])
    with pytest.raises(NotImplementedError, match="use_m2m"):
        _remote(triton, "grpc", use_m2m=True)
    with pytest.raises(ValueError, match="Unknown output_mode polygons"):
        _remote(triton, "grpc", output_mode="polygons")
    with pytest.raises(ValueError, match="points_per_side"):
        _remote(triton, "grpc", points_per_side=0)
    with _remote(triton, "http") as remote:
        with pytest.raises(ValueError, match="RGB uint8"):
            remote.generate(np.zeros((4, 4), np.uint8))
        with pytest.raises(ValueError, match="got float64"):
            remote.generate(np.zeros((4, 4, 3)))
