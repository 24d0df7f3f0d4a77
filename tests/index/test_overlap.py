"""Indexing writes one group while it embeds the next, and the result is the same as one at a time."""

from __future__ import annotations

import threading

import numpy as np

from assistant.embedding import Embedder
from assistant.index.indexing import Indexer
from assistant.index.store import Store
from assistant.schema import Document
from assistant.settings import Settings

TOPICS = ["glaciers", "volcanoes", "tides", "comets", "deserts", "coral reefs"]


def test_a_group_is_written_while_the_next_is_embedded(tmp_path):
    """The writer holds each group's write until the model has started on the next group: were writes
    not overlapped with embedding, that would never happen and the write would report it."""
    settings = Settings(index_dir=tmp_path / "index", progress=False)
    embedder = Embedder()
    store = Store(settings)
    indexer = Indexer(store, embedder, settings)
    indexer.group_chunks = 1  # one document per group
    docs = [
        Document(source=f"notes/{t}.txt", text=f"Notes on {t}. " + f"{t.capitalize()} are studied. " * 5)
        for t in TOPICS
    ]

    started = threading.Condition()
    encodes, writes, overlapped, threads = [0], [0], [], set()
    model = embedder.document_encoder  # what runs the texts (each group here is one batch of it)
    encode, write_files = model.encode, store.write_files

    def tracked_encode(texts, word_pieces=None):
        with started:
            encodes[0] += 1
            started.notify_all()
        return encode(texts, word_pieces)

    def tracked_write(updates):
        threads.add(threading.current_thread().name)
        writes[0] += 1
        nth, last = writes[0], updates[0].source == docs[-1].source
        with started:  # the next group's embedding has begun while this group is being written
            overlapped.append(last or started.wait_for(lambda: encodes[0] > nth, timeout=120))
        return write_files(updates)

    model.encode, store.write_files = tracked_encode, tracked_write
    report = indexer.index_documents(docs)
    assert report.added == len(TOPICS) and report.embedded == store.count() > 0
    assert len(overlapped) == len(TOPICS) and all(overlapped)
    assert threads and all(name.startswith("index-write") for name in threads)

    # Same content as a plain run with no overlap: every chunk stored with its vector and keywords.
    stored = store.get_with_vectors([i for r in store.files().values() for i in r.chunk_ids])
    vectors = np.stack([v for _, v in stored.values()])
    expected = embedder.encode([c.text for c, _ in stored.values()])
    assert np.allclose(vectors, expected, atol=1e-6)
    assert [i for i, _ in store.keyword.search("volcanoes studied", 1)] == [
        i for i, (c, _) in stored.items() if c.source == "notes/volcanoes.txt"
    ][:1]


def test_groups_start_and_end_small_and_every_document_gets_its_record(tmp_path):
    """Small groups at the start (the model starts early) and at the end (the last write, which no
    embedding overlaps, is short); records of loaded documents are built as they are cut, the same
    as building them directly."""
    from assistant.ingest.records import RecordBuilder

    settings = Settings(index_dir=tmp_path / "index", progress=False)
    store = Store(settings)
    indexer = Indexer(store, Embedder(), settings)
    indexer.group_chunks, indexer.first_group_chunks = 8, 2
    docs = [
        Document(source=f"notes/{n}-{t}.txt", text=f"Notes on {t}, part {n}. {t.capitalize()} are studied here.")
        for n in range(5)
        for t in TOPICS
    ]
    sizes, write_files = [], store.write_files

    def tracked_write(updates):
        sizes.append(len(updates))
        return write_files(updates)

    store.write_files = tracked_write
    report = indexer.index_documents(docs)
    assert report.added == len(docs) == sum(sizes) and store.count() == report.embedded
    assert sizes[0] <= 2 and sizes[-1] <= 2 and max(sizes) == 8
    top = sizes.index(max(sizes))
    assert sizes[: top + 1] == sorted(sizes[: top + 1]) and sizes[top:] == sorted(sizes[top:], reverse=True)
    builder = RecordBuilder()
    assert store.records() == {d.source: builder.build(d).to_json() for d in docs}


def test_a_long_file_is_stored_a_slice_at_a_time_and_a_crash_midway_leaves_no_trace(tmp_path):
    """A long file's first passages are written while its last are embedded; its record (and the
    removal of chunks it no longer has) comes with the last slice, so a run that fails midway
    leaves only unlisted chunks, which the next run removes."""
    import pytest

    settings = Settings(index_dir=tmp_path / "index", progress=False)
    store = Store(settings)
    embedder = Embedder()
    indexer = Indexer(store, embedder, settings)
    indexer.slice_passages = 4
    paragraph = "Glaciers carve valleys as they move, grinding rock into fine silt over many centuries. " * 9
    text = "\n\n".join(f"Part {n}. {paragraph}" for n in range(14))
    model = embedder.document_encoder
    writes, write_files, encode = [], store.write_files, model.encode

    def tracked_write(updates):
        writes.append([(u.source, len(u.new), u.partial, bool(u.record)) for u in updates])
        return write_files(updates)

    calls = [0]

    def failing_encode(texts, word_pieces=None):
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("the model failed midway")
        return encode(texts, word_pieces)

    store.write_files, model.encode = tracked_write, failing_encode
    with pytest.raises(RuntimeError, match="midway"):
        indexer.index_documents([Document("glaciers.txt", text)])
    assert writes and all(partial and not record for w in writes for _, _, partial, record in w)
    assert store.count() > 0 and "glaciers.txt" not in store.files()  # stored ahead, listed by no record

    model.encode, writes[:] = encode, []
    report = indexer.index_documents([Document("glaciers.txt", text)])
    assert report.embedded == report.chunks == store.count() > 3 * indexer.slice_passages
    assert len(writes) > 3 and [w[0][2:] for w in writes] == [(True, False)] * (len(writes) - 1) + [(False, True)]
    listed = store.files()["glaciers.txt"].chunk_ids
    assert len(store.get_with_vectors(list(listed))) == len(listed) == store.count()

    changed = text.replace("Part 13.", "Last part.")
    report = indexer.index_documents([Document("glaciers.txt", changed)])
    ids = store.files()["glaciers.txt"].chunk_ids
    assert report.updated == 1 and store.count() == len(ids) and store.orphans(store.files()) == []


def test_progress_is_told_in_the_callers_context(tmp_path):
    """Embedding runs on its own thread, but tells progress in the caller's context: a web
    framework finds its request's progress bar through a context variable."""
    import contextvars

    request = contextvars.ContextVar("request", default=None)
    seen = []

    def progress(p):
        seen.append((p.stage, request.get()))

    folder = tmp_path / "docs"
    folder.mkdir()
    for t in TOPICS[:3]:
        (folder / f"{t}.txt").write_text(f"Notes on {t}. " + f"{t.capitalize()} are studied. " * 5)
    settings = Settings(index_dir=tmp_path / "index", progress=False)
    indexer = Indexer(Store(settings), Embedder(), settings)
    request.set("upload-1")
    assert indexer.index([folder], progress=progress).added == 3
    stages = {stage for stage, _ in seen}
    assert {"cutting passages", "embedding passages", "saving"} <= stages
    assert all(value == "upload-1" for _, value in seen)
