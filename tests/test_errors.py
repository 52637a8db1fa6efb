"""Error kinds: each error class says what the client is told, and one table in
``triton_models.common`` turns every kind into a Triton error code and back."""

from __future__ import annotations

import sys

import pytest

from sam2_triton import errors
from sam2_triton.errors import CalleeError, ErrorKind, InvalidInputError, UnknownImageError
from sam2_triton.image import session
from tests import fake_pb_utils as pb

sys.modules.setdefault("triton_python_backend_utils", pb)

from sam2_triton.triton_models import common  # noqa: E402


def test_invalid_input_names_the_field_and_is_still_a_value_error():
    error = InvalidInputError("box", "is inverted")
    assert str(error) == "box: is inverted"
    assert (error.field, error.problem) == ("box", "is inverted")
    assert error.kind is ErrorKind.INVALID_INPUT
    assert isinstance(error, ValueError)


def test_each_error_has_its_kind():
    unknown = UnknownImageError("image_id", "is unknown")
    assert isinstance(unknown, InvalidInputError) and unknown.kind is ErrorKind.NOT_FOUND
    assert errors.RequestCancelled("stop").kind is ErrorKind.CANCELLED
    callee = CalleeError("sam2_mask_decoder", ErrorKind.UNAVAILABLE, "not ready")
    assert callee.kind is ErrorKind.UNAVAILABLE and str(callee) == "sam2_mask_decoder: not ready"


def test_the_old_import_places_still_work():
    assert errors.InvalidInputError is errors.InvalidInputError
    assert errors.RequestCancelled is errors.RequestCancelled
    assert session.UnknownImageError is errors.UnknownImageError


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_every_kind_maps_to_a_triton_code_and_back(kind):
    assert common.error_kind(common.triton_code(kind)) is kind


def test_the_mapping_is_the_agreed_one_and_unknown_codes_are_internal():
    assert {k.name: common.triton_code(k) for k in ErrorKind} == {
        "INVALID_INPUT": pb.TritonError.INVALID_ARG,
        "NOT_FOUND": pb.TritonError.NOT_FOUND,
        "CANCELLED": pb.TritonError.CANCELLED,
        "UNAVAILABLE": pb.TritonError.UNAVAILABLE,
        "INTERNAL": pb.TritonError.INTERNAL,
    }
    for code in (pb.TritonError.UNKNOWN, pb.TritonError.UNSUPPORTED, 12345):
        assert common.error_kind(code) is ErrorKind.INTERNAL


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInputError("box", "bad"), pb.TritonError.INVALID_ARG),
        (UnknownImageError("image_id", "gone"), pb.TritonError.NOT_FOUND),
        (errors.RequestCancelled("stop"), pb.TritonError.CANCELLED),
        (CalleeError("m", ErrorKind.UNAVAILABLE, "later"), pb.TritonError.UNAVAILABLE),
    ],
)
def test_a_service_error_becomes_the_response_of_its_kind(error, code):
    response = common.error_response(error, pb.Logger)
    assert response.error().code() == code and response.error().message() == str(error)
