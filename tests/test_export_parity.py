"""The exported ONNX pair reproduces SAM 2.1's own image predictor on the same weights.

The tests' model (tiny at reduced depth, ``tests/reduced_model.py``) with seeded random weights is
exported once per session with the default settings (conftest's ``tiny_export``, shared with the
end-to-end tests); tiny at its full depth is exported and checked here once. The ground truth
is sam2 itself, loaded from the checkpoint the export saved: the encoder must equal
``SAM2ImagePredictor.set_image``'s ``_features`` and the decoder all four mask tokens of
``MaskDecoder.predict_masks`` fed by the predictor's own prompt encoding, for every prompt kind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("torchvision")  # SAM2ImagePredictor needs it

from sam2.sam2_image_predictor import SAM2ImagePredictor  # noqa: E402

from sam2_triton import contract  # noqa: E402
from sam2_triton.export import (  # noqa: E402
    DECODER_FILE,
    DEFAULT_EXPORTER,
    DEFAULT_OPSET,
    ENCODER_FILE,
    METADATA_FILE,
    build_sam2_model,
    export_onnx,
    verify_onnx,
)
from sam2_triton.export.onnx_export import (  # noqa: E402
    DECODER_OUTPUT_NAMES,
    ENCODER_OUTPUT_NAMES,
    create_session,
)
from sam2_triton.image.decoder_feeds import sam_layout  # noqa: E402
from tests.reduced_model import REDUCED, SEED, build_test_model  # noqa: E402

TOL = 1e-4
MASK = contract.LOW_RES_MASK_SIZE


@dataclass(frozen=True)
class ExportPaths:
    encoder_path: Path
    decoder_path: Path
    metadata_path: Path


# --- session fixtures: one build, one export, one reference predictor -------------------------


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export_parity")


@pytest.fixture(scope="session")
def model() -> torch.nn.Module:
    """The same random weights as ``tiny_export`` (seed 0), rebuilt in memory (~1 s)."""
    torch.set_num_threads(2)
    return build_test_model()


@pytest.fixture(scope="session")
def exported(tiny_export) -> ExportPaths:
    """conftest's session-wide export: ``export_onnx`` defaults, random weights, seed 0."""
    out = tiny_export.export_dir
    return ExportPaths(out / ENCODER_FILE, out / DECODER_FILE, out / METADATA_FILE)


@pytest.fixture(scope="session")
def sessions(exported: ExportPaths):
    return create_session(exported.encoder_path), create_session(exported.decoder_path)


@pytest.fixture(scope="session")
def reference_model(tiny_export) -> torch.nn.Module:
    """sam2's own builder reading the checkpoint that the random-weight build saved."""
    return tiny_export.build(mode="eval")


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    """Two real RGB photos of different sizes (square and 4:3), or image-like arrays."""
    try:
        from skimage import data
    except ImportError:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:480, 0:640]
        base = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=-1).astype(np.float64)
        noisy = base + rng.normal(0, 20, base.shape)
        return [np.clip(noisy, 0, 255).astype(np.uint8), np.ascontiguousarray(base[::-1, :400])]
    return [data.astronaut(), data.coffee()]


@pytest.fixture(scope="session")
def references(reference_model, photos) -> list[SAM2ImagePredictor]:
    """One reference predictor per photo, with ``set_image`` done."""
    predictors = []
    for photo in photos:
        predictor = SAM2ImagePredictor(reference_model)
        predictor.set_image(photo)
        predictors.append(predictor)
    return predictors


@pytest.fixture(scope="session")
def model_images(references, photos) -> np.ndarray:
    """The photos as normalised [2,3,1024,1024] model input, via sam2's own transforms."""
    batch = [references[0]._transforms(photo) for photo in photos]
    return torch.stack(batch).numpy()


@pytest.fixture(scope="session")
def onnx_features(sessions, model_images) -> dict[str, np.ndarray]:
    """Encoder outputs for both photos in ONE batch-2 run."""
    outputs = sessions[0].run(ENCODER_OUTPUT_NAMES, {"image": model_images})
    return dict(zip(ENCODER_OUTPUT_NAMES, outputs, strict=True))


def _reference_features(predictor: SAM2ImagePredictor) -> dict[str, np.ndarray]:
    feats = predictor._features
    return {
        "image_embed": feats["image_embed"].numpy(),
        "high_res_feats_0": feats["high_res_feats"][0].numpy(),
        "high_res_feats_1": feats["high_res_feats"][1].numpy(),
    }


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


# --- prompts: the predictor's own coordinate transform, then both paths -----------------------


def _prompt(
    predictor: SAM2ImagePredictor,
    points: list[tuple[float, float]] | None = None,
    labels: list[int] | None = None,
    box: tuple[float, float, float, float] | None = None,
    mask_input: np.ndarray | None = None,
) -> dict:
    """Prompts in original-image pixels -> the predictor's tensors and the decoder's feeds."""
    mask_input, coords, point_labels, boxes = predictor._prep_prompts(
        np.array(points, dtype=np.float32) if points else None,
        np.array(labels, dtype=np.int32) if labels else None,
        np.array(box, dtype=np.float32) if box is not None else None,
        mask_input,
        normalize_coords=True,
    )
    all_coords, all_labels = [], []
    if boxes is not None:  # the predictor puts the box corners (labels 2, 3) before the clicks
        all_coords.append(boxes.reshape(-1, 2, 2))
        all_labels.append(torch.tensor([[2, 3]], dtype=torch.int32))
    if coords is not None:
        all_coords.append(coords)
        all_labels.append(point_labels.to(torch.int32))
    feeds = {
        "point_coords": torch.cat(all_coords, dim=1).numpy().astype(np.float32),
        "point_labels": torch.cat(all_labels, dim=1).numpy().astype(np.int32),
        "mask_input": np.zeros((1, 1, MASK, MASK), np.float32),
        "has_mask_input": np.zeros((1, 1), np.float32),
    }
    if mask_input is not None:
        feeds["mask_input"] = mask_input.numpy().astype(np.float32)
        feeds["has_mask_input"] = np.ones((1, 1), np.float32)
    torch_args = {"point_coords": coords, "point_labels": point_labels, "boxes": boxes}
    return {"feeds": feeds, "torch": torch_args, "mask_input": mask_input}


@torch.no_grad()
def _reference_all_tokens(
    predictor: SAM2ImagePredictor, feeds: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """All four mask tokens from sam2's prompt encoder + ``predict_masks`` (no token choice)."""
    sam = predictor.model
    points = (torch.from_numpy(feeds["point_coords"]), torch.from_numpy(feeds["point_labels"]))
    masks = torch.from_numpy(feeds["mask_input"]) if feeds["has_mask_input"][0, 0] else None
    sparse, dense = sam.sam_prompt_encoder(points=points, boxes=None, masks=masks)
    low_res, iou, _, _ = sam.sam_mask_decoder.predict_masks(
        image_embeddings=predictor._features["image_embed"],
        image_pe=sam.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        repeat_image=False,
        high_res_features=list(predictor._features["high_res_feats"]),
    )
    return low_res.numpy(), iou.numpy()


def _run_decoder(session, features: dict[str, np.ndarray], feeds: dict[str, np.ndarray]):
    low_res, iou = session.run(DECODER_OUTPUT_NAMES, {**features, **feeds})
    return low_res, iou


def _row(features: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    return {name: value[i : i + 1] for name, value in features.items()}


# --- encoder ---------------------------------------------------------------------------------


def test_encoder_matches_set_image_features(onnx_features, references) -> None:
    """The encoder's outputs are ``_features`` in the decoder's row layout: laid back out as
    NCHW maps they equal the predictor's."""
    as_sam = sam_layout(onnx_features)
    for i, predictor in enumerate(references):
        expected = _reference_features(predictor)
        for name in ENCODER_OUTPUT_NAMES:
            got = as_sam[name][i : i + 1]
            assert _max_abs(got, expected[name]) < TOL, f"{name} image {i}"
    # Random weights must give features that actually differ between photos.
    assert _max_abs(onnx_features["image_embed"][0], onnx_features["image_embed"][1]) > 1e-2


def test_full_depth_tiny_exports_and_the_clis_check_reports_parity(
    model_images, full_depth_export: Path
):
    """What users export: tiny at its full depth (Hiera stages [1, 2, 7, 2], three global
    blocks; the other tests run the reduced model; conftest's ``make_full_depth_export``),
    checked by the CLI's check: ORT against the PyTorch wrappers, encoder batch 2, decoder 2
    and 3 prompt sets of 1 and 5 points on each image."""
    full = build_sam2_model("tiny", random_weights=True, seed=SEED)
    assert len(full.image_encoder.trunk.blocks) == 12
    assert json.loads((full_depth_export / METADATA_FILE).read_text())["seed"] == SEED
    encoder, decoder = full_depth_export / ENCODER_FILE, full_depth_export / DECODER_FILE
    report = verify_onnx(full, encoder, decoder, images=model_images)
    assert set(report.encoder) == set(ENCODER_OUTPUT_NAMES)
    assert set(report.decoder) == set(DECODER_OUTPUT_NAMES)
    assert report.cases == [
        "encoder B=2",
        *(f"decoder image {i} {sets}" for i in (0, 1) for sets in ("N=2 P=1", "N=3 P=5")),
    ]
    assert report.max_abs < TOL, report.format()


# --- decoder: each prompt kind against sam2's reference ----------------------------------------


PROMPTS = {
    "one_point": {"points": [(220.0, 180.0)], "labels": [1]},
    "points_pos_neg": {
        "points": [(220.0, 180.0), (300.0, 400.0), (100.0, 60.0), (260.0, 120.0)],
        "labels": [1, 0, 1, 0],
    },
    "box": {"box": (120.0, 40.0, 380.0, 300.0)},
    "box_and_points": {
        "box": (120.0, 40.0, 380.0, 300.0),
        "points": [(250.0, 150.0)],
        "labels": [0],
    },
}


@pytest.mark.parametrize("kind", list(PROMPTS))
def test_decoder_all_tokens_match_reference(kind, sessions, onnx_features, references) -> None:
    predictor = references[0]
    prompt = _prompt(predictor, **PROMPTS[kind])
    low_res, iou = _run_decoder(sessions[1], _row(onnx_features, 0), prompt["feeds"])
    ref_low_res, ref_iou = _reference_all_tokens(predictor, prompt["feeds"])
    assert low_res.shape == (1, contract.NUM_MASK_TOKENS, MASK, MASK)
    assert iou.shape == (1, contract.NUM_MASK_TOKENS)
    assert _max_abs(low_res, ref_low_res) < TOL
    assert _max_abs(iou, ref_iou) < TOL

    # The predictor's multimask answer is tokens 1..3, unclamped at these magnitudes.
    _, multi_iou, multi_low_res = predictor._predict(
        **prompt["torch"], multimask_output=True, return_logits=True
    )
    assert _max_abs(low_res[:, 1:], multi_low_res.numpy()) < TOL
    assert _max_abs(iou[:, 1:], multi_iou.numpy()) < TOL


def test_decoder_mask_input_matches_reference(sessions, onnx_features, references) -> None:
    """A previous low-res answer fed back with has_mask_input=1 (SAM's refinement loop)."""
    predictor = references[0]
    _, _, previous = predictor._predict(
        **_prompt(predictor, **PROMPTS["one_point"])["torch"], multimask_output=True
    )
    mask_input = previous[:, :1].numpy() * 8.0  # scaled: random-weight logits are tiny
    prompt = _prompt(
        predictor, points=[(220.0, 180.0), (300.0, 300.0)], labels=[1, 0], mask_input=mask_input[0]
    )
    assert prompt["feeds"]["has_mask_input"][0, 0] == 1.0
    low_res, iou = _run_decoder(sessions[1], _row(onnx_features, 0), prompt["feeds"])
    ref_low_res, ref_iou = _reference_all_tokens(predictor, prompt["feeds"])
    assert _max_abs(low_res, ref_low_res) < TOL
    assert _max_abs(iou, ref_iou) < TOL

    without = dict(prompt["feeds"], has_mask_input=np.zeros((1, 1), np.float32))
    low_res_without, _ = _run_decoder(sessions[1], _row(onnx_features, 0), without)
    assert _max_abs(low_res, low_res_without) > 1e-3, "mask_input had no effect"

    _, multi_iou, multi_low_res = predictor._predict(
        **prompt["torch"], mask_input=prompt["mask_input"], multimask_output=True
    )
    assert _max_abs(low_res[:, 1:], multi_low_res.numpy()) < TOL
    assert _max_abs(iou[:, 1:], multi_iou.numpy()) < TOL


def test_prompt_sets_on_one_image_equal_each_set_alone(sessions, onnx_features, references):
    """N prompt sets in one call share the image's features in the graph; each row equals the
    reference for its set alone (two kinds with the same P: row 0 padded with label -1)."""
    predictor = references[0]
    row0 = _prompt(predictor, points=[(220.0, 180.0), (100.0, 60.0)], labels=[1, 0])["feeds"]
    row0["point_coords"] = np.concatenate(
        [row0["point_coords"], np.zeros((1, 1, 2), np.float32)], 1
    )
    row0["point_labels"] = np.concatenate([row0["point_labels"], [[-1]]], 1).astype(np.int32)
    row1 = _prompt(predictor, box=(50.0, 60.0, 300.0, 350.0), points=[(200.0, 200.0)], labels=[1])
    row1 = row1["feeds"]
    feeds = {name: np.concatenate([row0[name], row1[name]]) for name in row0}
    low_res, iou = _run_decoder(sessions[1], _row(onnx_features, 0), feeds)
    assert low_res.shape[0] == 2 and iou.shape[0] == 2
    for i, row in enumerate((row0, row1)):
        ref_low_res, ref_iou = _reference_all_tokens(predictor, row)
        assert _max_abs(low_res[i : i + 1], ref_low_res) < TOL, f"row {i}"
        assert _max_abs(iou[i : i + 1], ref_iou) < TOL, f"row {i}"


def test_batched_boxes_match_the_predictors_batched_prompts(sessions, onnx_features, references):
    """Meta's predictor answers several boxes at once (``predict(box=[N, 4])``, the image's
    features repeated per box): our decoder gives the same for the same N rows in one call."""
    predictor = references[0]
    boxes = np.array([[120, 40, 380, 300], [10, 10, 200, 150], [250, 200, 500, 420]], np.float32)
    _, _, _, unnorm_boxes = predictor._prep_prompts(None, None, boxes, None, normalize_coords=True)
    coords = unnorm_boxes.reshape(-1, 2, 2).numpy().astype(np.float32)
    feeds = {
        "point_coords": coords,
        "point_labels": np.tile(np.array([[2, 3]], np.int32), (len(boxes), 1)),
        "mask_input": np.zeros((len(boxes), 1, MASK, MASK), np.float32),
        "has_mask_input": np.zeros((len(boxes), 1), np.float32),
    }
    low_res, iou = _run_decoder(sessions[1], _row(onnx_features, 0), feeds)
    _, want_iou, want_low_res = predictor._predict(
        None, None, boxes=unnorm_boxes, multimask_output=True, return_logits=True
    )
    assert want_low_res.shape == (len(boxes), 3, MASK, MASK)
    assert _max_abs(low_res[:, 1:], want_low_res.numpy()) < TOL
    assert _max_abs(iou[:, 1:], want_iou.numpy()) < TOL


# --- the files themselves -----------------------------------------------------------------------


def test_onnx_interface_follows_contract(exported) -> None:
    """The encoder has a dynamic batch axis before the contract's dims; the decoder (no batch
    axis) has exactly the contract's dims, every -1 dynamic."""
    expected = {
        exported.encoder_path: (contract.ENCODER_INPUTS, contract.ENCODER_OUTPUTS, True),
        exported.decoder_path: (contract.DECODER_INPUTS, contract.DECODER_OUTPUTS, False),
    }
    elem = {"FP32": onnx.TensorProto.FLOAT, "INT32": onnx.TensorProto.INT32}
    for path, (inputs, outputs, batched) in expected.items():
        graph = onnx.load(str(path), load_external_data=False).graph
        for declared, actual in ((inputs, graph.input), (outputs, graph.output)):
            assert [t.name for t in declared] == [v.name for v in actual], path.name
            for t, v in zip(declared, actual, strict=True):
                dims = list(v.type.tensor_type.shape.dim)
                assert v.type.tensor_type.elem_type == elem[t.dtype], t.name
                if batched:
                    assert dims[0].dim_param and not dims[0].dim_value, f"{t.name}: static batch"
                    dims = dims[1:]
                assert len(dims) == len(t.dims), t.name
                for want, got in zip(t.dims, dims, strict=True):
                    if want == -1:
                        assert not got.dim_value, f"{t.name}: static dynamic axis"
                    else:
                        assert got.dim_value == want, t.name


def test_export_metadata(exported) -> None:
    meta = json.loads(exported.metadata_path.read_text())
    assert meta["variant"] == "tiny" and meta["weights"] == "random" and meta["seed"] == SEED
    assert meta["config_overrides"] == list(REDUCED)  # a reduced export says so
    assert meta["exporter"] == DEFAULT_EXPORTER and meta["opset"] == DEFAULT_OPSET
    assert meta["files"] == {"encoder": "image_encoder.onnx", "decoder": "mask_decoder.onnx"}
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["export_seconds"]["total"] > 0


def test_torchscript_with_ort_optimizer_is_refused(model, workdir: Path) -> None:
    """That combination gives wrong decoder masks (see docs/export.md); it must not be made."""
    with pytest.raises(ValueError, match="dynamo"):
        export_onnx(model, workdir / "never", exporter="torchscript", optimize=True)
    assert not (workdir / "never").exists()
