"""Shards: several ingest processes share the active pairs, each polling a stable subset.

Shard I of N owns the pairs whose opportunity key hashes to I - 1 modulo N. The hash is CRC-32
of the key's UTF-8 bytes: the same in every process and on every run (Python's own `hash()` of a
string changes from process to process), so a pair stays with its shard across restarts, and
the N shards together own every pair exactly once. Pure: no Django, no I/O.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

MAX_SHARDS = 1024


class HasOpportunityKey(Protocol):
    @property
    def opportunity_key(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Shard:
    index: int  # 1 to count
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS or not 1 <= self.index <= self.count:
            raise ValueError(f"expected I/N with 1 <= I <= N <= {MAX_SHARDS}, got {self.index}/{self.count}")

    def owns(self, opportunity_key: str) -> bool:
        return zlib.crc32(opportunity_key.encode("utf-8")) % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


EVERY_PAIR = Shard(1, 1)


def parse_shard(text: str) -> Shard:
    """'I/N' (e.g. '2/3': the second of three shards) -> Shard; ValueError saying what is wrong."""
    index_text, slash, count_text = text.strip().partition("/")
    if not slash or not index_text.strip().isdigit() or not count_text.strip().isdigit():
        raise ValueError(f"expected I/N, e.g. 1/2 (the first of two shards), got {text!r}")
    return Shard(int(index_text), int(count_text))


def shard_pairs[P: HasOpportunityKey](pairs: Iterable[P], shard: Shard) -> list[P]:
    """The pairs this shard owns, in their given order."""
    return [pair for pair in pairs if shard.owns(pair.opportunity_key)]
