"""One batch of changes to the index, and the upkeep every change needs.

Writes and removals reach Chroma through `Store`; what must follow them (the generation stamp
that tells other processes their keyword index is stale, the repair of what an interrupted run
left, this process's own keyword index) happens here, in one place, whoever made the change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from assistant.index.files import FileRecord, FileUpdate, GenerationRecord
    from assistant.index.keyword import KeywordIndex
    from assistant.schema import Chunk


class EditableStore(Protocol):
    """What an edit uses of `Store`: its public write methods, in the order their docstrings give,
    and its keyword index."""

    keyword: KeywordIndex

    def generation_record(self) -> GenerationRecord: ...
    def bump_generation(self, *, clean: bool) -> str: ...
    def write_files(self, updates: list[FileUpdate]) -> list[str]: ...
    def remove_files(self, sources: list[str], records: dict[str, FileRecord] | None = None) -> list[str]: ...
    def files(self) -> dict[str, FileRecord]: ...
    def orphans(self, records: dict[str, FileRecord]) -> list[str]: ...
    def delete_chunks(self, ids: list[str]) -> None: ...
    def follow(self) -> None: ...


class Edit:
    """One batch of changes to a `Store`, made through `Store.edit()`.

    The first change bumps the generation stamp, so that a crash from then on leaves every keyword
    index stale (and rebuilt on its next use). On close, chunks no record lists are deleted (what
    an interrupted run leaves), the stamp is bumped again, and this process's keyword index takes
    the changes: incrementally when it was in step before, rebuilt from the store otherwise.
    `Store.edit()` opens and closes it under the store's lock; it uses the store's public write
    methods, in the order their docstrings give.
    """

    def __init__(self, store: EditableStore):
        self.store = store
        record = store.generation_record()
        self.in_sync = record.value is not None and store.keyword.generation == record.value
        self.after_clean = record.clean  # the edit before closed: no chunk lacks a record
        self.changed = False
        self.added: list[Chunk] = []
        self.removed: list[str] = []

    def write(self, updates: list[FileUpdate]) -> None:
        """Store files' new chunks and records (see `Store.write_files`)."""
        if updates:
            self._stamp()
            self.removed += self.store.write_files(updates)
            added = [c for u in updates for c in u.new]
            if self.in_sync:  # tokenised now, on the writer's time (see `Indexer._write`), not at close
                self.store.keyword.update([c.id for c in added], [c.text for c in added], [])
            self.added += added

    def remove(self, sources: list[str], records: dict[str, FileRecord] | None = None) -> list[str]:
        """Forget files; returns the ids of the chunks that went with them."""
        if not sources:
            return []
        self._stamp()
        removed = self.store.remove_files(sources, records)
        self.removed += removed
        return removed

    def close(self) -> None:
        store = self.store
        check = (self.changed or not self.in_sync) and not self.after_clean
        orphans = store.orphans(store.files()) if check else []
        if orphans:
            store.delete_chunks(orphans)
            self.removed += orphans
            self.changed = True
        if not (self.changed or not self.in_sync):
            return
        generation = store.bump_generation(clean=True)
        if self.in_sync:
            store.keyword.update([], [], self.removed)  # the added chunks' tokens went in with each write
            store.keyword.commit(generation)
        else:
            store.follow()

    def _stamp(self) -> None:
        if not self.changed:
            self.store.bump_generation(clean=False)
            self.changed = True
