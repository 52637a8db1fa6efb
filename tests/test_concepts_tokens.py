"""SAM 3's phrases as tokens without torch (concepts/tokens.py) against sam3's own
SimpleTokenizer (CLIP's), and the phrases it refuses, naming them."""

from __future__ import annotations

import numpy as np
import pytest

from sam2_triton.concepts.tokens import CONTEXT_LENGTH, Tokenizer
from sam2_triton.errors import InvalidInputError
from tests.sam3_helpers import clip_vocabulary

PHRASES = [
    "a car", "Yellow  school BUS", "person's left hand", "don't-walk sign", "3 red apples",
    "café au lait", "naïve résumé", "&amp; ampersand &lt;tag&gt;", "émoji 🚗🚕", "北京 street",
    "x", "  padded   phrase  ", "mixed123numbers and-dashes_under", "<end_of_text> inside",
    " ".join(["word"] * 30),  # 30 tokens: the most that fit with the two marks
]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer(clip_vocabulary())


def test_phrases_become_the_tokens_sam3_gives_them(tokenizer):
    from sam3.model.tokenizer_ve import SimpleTokenizer

    theirs = SimpleTokenizer(bpe_path=str(clip_vocabulary()))(PHRASES, CONTEXT_LENGTH).numpy()
    ours = tokenizer(PHRASES)
    assert ours.dtype == np.int64 and ours.shape == (len(PHRASES), CONTEXT_LENGTH)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(
    ("phrases", "message"),
    [
        ([""], "text: is empty"),
        (["a car", "   "], r"text\[1\]: is empty"),
        (["word " * 31], "is 31 tokens; SAM 3 reads at most 30"),
        (["a" * 201], "is 201 characters; at most 200"),
        ([None], "text: is empty"),
    ],
)
def test_empty_and_over_long_phrases_are_refused_naming_them(tokenizer, phrases, message):
    with pytest.raises(InvalidInputError, match=message):
        tokenizer(phrases)
