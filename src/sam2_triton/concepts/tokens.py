"""A phrase to SAM 3's text tokens, without torch: CLIP's byte-pair encoding as sam3's
``SimpleTokenizer`` does it (sam3/model/tokenizer_ve.py, itself OpenAI CLIP's), with its
``clean="lower"`` (ftfy, HTML entities, whitespace, lower case), 32 tokens with start and end
marks, zero-padded. Where sam3 cuts a phrase longer than that silently, this refuses it, naming
the phrase: a cut phrase finds something else.

The vocabulary is CLIP's ``bpe_simple_vocab_16e6.txt.gz`` (not in sam3's wheel; open_clip ships
it, and the export copies it beside the graphs).
"""

from __future__ import annotations

import gzip
import html
from functools import lru_cache
from pathlib import Path

import numpy as np

from sam2_triton.concepts.graphs import VOCABULARY_FILE
from sam2_triton.errors import InvalidInputError

CONTEXT_LENGTH = 32
MAX_PHRASE_CHARS = 200  # far more than 30 tokens take; refused before any work
_MERGES = 49152 - 256 - 2  # the merges CLIP uses from the file
SPECIAL = ("<start_of_text>", "<end_of_text>")


@lru_cache
def _byte_symbols() -> dict[int, str]:
    """CLIP's reversible byte -> printable character table."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    symbols, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            symbols.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, symbols), strict=True))


class Tokenizer:
    """Phrases -> int64 [N, 32] token rows (0: padding), as SAM 3's text encoder takes them."""

    def __init__(self, vocabulary: Path) -> None:
        import regex

        lines = gzip.decompress(Path(vocabulary).read_bytes()).decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : _MERGES + 1]]
        symbols = list(_byte_symbols().values())
        words = [*symbols, *(s + "</w>" for s in symbols), *("".join(m) for m in merges), *SPECIAL]
        self.ids = {word: k for k, word in enumerate(words)}
        self.ranks = {merge: k for k, merge in enumerate(merges)}
        self.start, self.end = self.ids[SPECIAL[0]], self.ids[SPECIAL[1]]
        self._cache: dict[str, list[str]] = {t: [t] for t in SPECIAL}  # as CLIP's
        self._pattern = regex.compile(
            "|".join(SPECIAL) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )
        self._spaces = regex.compile(r"\s+")

    def encode(self, phrase: str) -> list[int]:
        """The phrase's tokens, without the start and end marks."""
        import ftfy

        text = html.unescape(html.unescape(ftfy.fix_text(phrase))).strip()
        text = self._spaces.sub(" ", text).strip().lower()
        table = _byte_symbols()
        out: list[int] = []
        for piece in self._pattern.findall(text):
            word = "".join(table[b] for b in piece.encode("utf-8"))
            out.extend(self.ids[part] for part in self._merge(word))
        return out

    def __call__(self, phrases: list[str], name: str = "text") -> np.ndarray:
        rows = np.zeros((len(phrases), CONTEXT_LENGTH), np.int64)
        for k, phrase in enumerate(phrases):
            where = f"{name}[{k}]" if len(phrases) > 1 else name
            if not isinstance(phrase, str) or not phrase.strip():
                raise InvalidInputError(where, "is empty; give a noun phrase such as 'a car'")
            if len(phrase) > MAX_PHRASE_CHARS:
                raise InvalidInputError(where, f"is {len(phrase)} characters; at most "
                                               f"{MAX_PHRASE_CHARS}")  # fmt: skip
            tokens = [self.start, *self.encode(phrase), self.end]
            if len(tokens) > CONTEXT_LENGTH:
                problem = f"{phrase[:40]!r} is {len(tokens) - 2} tokens; SAM 3 reads at most"
                raise InvalidInputError(where, f"{problem} {CONTEXT_LENGTH - 2}")
            rows[k, : len(tokens)] = tokens
        return rows

    def _merge(self, token: str) -> list[str]:
        """CLIP's ``bpe``: the lowest-ranked adjacent pair merged until none is in the table."""
        if token in self._cache:
            return self._cache[token]
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(a, b) for a, b in zip(word, word[1:], strict=False)}
            best = min(pairs, key=lambda pair: self.ranks.get(pair, float("inf")))
            if best not in self.ranks:
                break
            merged, k = [], 0
            while k < len(word):
                if k < len(word) - 1 and (word[k], word[k + 1]) == best:
                    merged.append(word[k] + word[k + 1])
                    k += 2
                else:
                    merged.append(word[k])
                    k += 1
            word = merged
        self._cache[token] = word
        return word


def clip_vocabulary() -> Path:
    """CLIP's BPE vocabulary (``bpe_simple_vocab_16e6.txt.gz``) as open_clip ships it: sam3's
    tokenizer needs it and sam3's wheel lacks it."""
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("CLIP's vocabulary comes with open_clip: install open-clip-torch")
    return Path(spec.submodule_search_locations[0]) / VOCABULARY_FILE
