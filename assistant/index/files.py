"""What the index keeps of each indexed file, and what an edit writes of one.

Typed records shared by `Store` (which reads and writes them), `Edit` (which passes them on) and
`Indexer` (which makes the updates): here, so none of them imports another for its types.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from assistant.schema import Chunk


@dataclass(frozen=True)
class FileRecord:
    """An indexed file: the hash it was indexed at and its chunks' ids, read as stored and parsed
    when first asked for (every run reads every record, 10,000 at a million passages, but needs
    the ids of the few files it changes)."""

    source: str
    content_hash: str
    chunk_ids_json: str = field(repr=False)

    @cached_property
    def chunk_ids(self) -> tuple[str, ...]:
        return tuple(json.loads(self.chunk_ids_json))


@dataclass(frozen=True)
class GenerationRecord:
    """The index's generation stamp, and whether the edit that set it closed: an edit that stopped
    half-way (a crash) may have left chunks no file record lists, which the next edit looks for."""

    value: str | None
    clean: bool


@dataclass(frozen=True)
class FileUpdate:
    """A file to (re)write: its full chunk id list, the chunks to store, and their vectors.

    `previous` is the chunk ids the file had (from its record); None means look them up. A
    `partial` update stores chunks ahead of the rest of the file's: its record, and the removal of
    the chunks it no longer has, come with its last (whole) update.
    """

    source: str
    content_hash: str
    chunk_ids: list[str]
    new: list[Chunk]
    vectors: np.ndarray
    previous: tuple[str, ...] | None = None
    record: str = ""  # the document's record as JSON (`ingest.records.DocumentRecord`), kept with the file
    partial: bool = False
