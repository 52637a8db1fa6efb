"""``sam2-triton batch --shard I/N``: the images one of N cooperating runs takes.

An image belongs to shard ``sha256(its relative path) mod N``. So every image of the folder is in
exactly one shard; the assignment is the same in every process, on every machine and whatever
order the filesystem lists the folder in (no listing order, no ``PYTHONHASHSEED``); and adding or
removing images never moves the other images to another shard, so a rerun of each shard after the
folder grew still finds its own finished results. The price of hashing: shards are only about
equal in size (binomially, so a few hundred images each are within a few percent).

The rule is part of what is on disk: changing it would make shards redo each other's images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

USAGE = "expected I/N, shard I of N with 0 <= I < N (e.g. 0/4)"


def shard_of(name: str, count: int) -> int:
    """The shard (0..count-1) of the image with relative posix path ``name``."""
    # surrogateescape: names that are not valid UTF-8 on disk hash as their original bytes.
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"{USAGE}; N must be at least 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"{USAGE}; I must be 0..{self.count - 1}, got {self.index}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` -> Shard; ValueError saying what is wrong otherwise."""
        index, sep, count = text.strip().partition("/")
        try:
            if not sep:
                raise ValueError
            return cls(int(index), int(count))
        except ValueError as error:
            detail = str(error)  # __post_init__'s says which number is out of range
            message = detail if detail.startswith(USAGE) else f"{USAGE}, got {text!r}"
            raise ValueError(message) from None

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def suffix(self) -> str:
        """What this shard's own files (summary, report, lock) add to their names."""
        return f".shard-{self.index}-of-{self.count}"

    def owns(self, name: str) -> bool:
        return shard_of(name, self.count) == self.index

    def select(self, names: Iterable[str]) -> list[str]:
        """The names of this shard, in the order given."""
        return [name for name in names if self.owns(name)]
