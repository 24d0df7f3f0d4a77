"""Documents embedded in worker processes: the very vectors of in-process encoding, queued in order,
a dead worker said (not hung on) and replaced, and a long indexing run that uses them stores what
an in-process run stores while a write holds the GIL."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.embedding import Embedder
from assistant.errors import EmbeddingError
from assistant.index.indexing import Indexer
from assistant.index.store import Store
from assistant.schema import Document
from assistant.settings import Settings

TEXTS = [
    "Why might Russia not send S-400s?",
    "Glaciers carve valleys as they slowly move downhill under their own weight.",
    "hi",
    "  Ünïcödé café 東京 😀 ",
    "word " * 400,  # past the model's word pieces: truncated as the model does
    "",
] + [f"Passage {i}: the tide turns twice a day, pulled by the moon. " * (1 + i % 9) for i in range(40)]


@pytest.fixture()
def embedder():
    embedder = Embedder(threads=2)
    yield embedder
    embedder.stop_workers()


def _worker_pids() -> set[int]:
    """This process's children running the embedding workers."""
    me, found = str(os.getpid()), set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if stat[1] == me and b"assistant.embedding_workers" in command:
            found.add(int(pid))
    return found


def test_workers_give_the_vectors_of_in_process_encoding_in_order(embedder):
    pieces = embedder.word_pieces(TEXTS)
    here = embedder.encode(TEXTS, word_pieces=pieces)
    others = _worker_pids()  # other tests' embedders may have theirs
    assert embedder.start_workers() and embedder.workers_running and len(_worker_pids() - others) == 2
    jobs = [embedder.submit(TEXTS[i::3], word_pieces=pieces[i::3]) for i in range(3)]  # queued, then collected
    assert all(np.array_equal(job.result(timeout=120), here[i::3]) for i, job in enumerate(jobs))
    assert np.array_equal(embedder.encode(TEXTS), here)  # tokenised by the parent where no pieces are given
    assert embedder.encode([]).shape == (0, embedder.dimension)
    embedder.stop_workers()
    assert _worker_pids() <= others and not embedder.workers_running


def test_a_killed_worker_fails_the_job_with_a_clear_error_and_is_replaced(embedder):
    others = _worker_pids()
    assert embedder.start_workers()
    expected = embedder.encode(TEXTS)
    mine = _worker_pids() - others
    victim = min(mine)
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(EmbeddingError, match=r"embedding worker stopped .*killed by signal 9"):
        embedder.submit(TEXTS * 20).result(timeout=120)
    deadline = time.monotonic() + 30
    while _worker_pids() & mine and time.monotonic() < deadline:  # the other worker is stopped with it
        time.sleep(0.1)
    assert not _worker_pids() & mine and not embedder.workers_running
    assert np.array_equal(embedder.encode(TEXTS), expected)  # in this process until started again
    assert embedder.start_workers() and victim not in _worker_pids()
    assert np.array_equal(embedder.encode(TEXTS), expected)


def test_workers_keep_embedding_while_a_chroma_write_holds_the_gil(tmp_path, embedder):
    """Why they exist: Chroma's upsert holds the GIL for as long as it runs, and the workers' queued
    texts are embedded meanwhile (their CPU time grows during the write, not after it)."""
    import chromadb

    others = _worker_pids()
    assert embedder.start_workers()
    pids = _worker_pids() - others
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    collection = client.create_collection("held", embedding_function=None)
    rng = np.random.default_rng(0)
    rows = 3000
    vectors = rng.standard_normal((rows, 384)).astype(np.float32)
    documents = [" ".join(f"w{k}" for k in rng.integers(0, 5000, 150)) for _ in range(rows)]
    texts = TEXTS[6:]

    before = _cpu(pids)
    job = embedder.submit(texts)
    time.sleep(0.3)  # the parent's feeders hand the texts over (a few messages per worker)
    collection.add(ids=[str(i) for i in range(rows)], embeddings=vectors, documents=documents)
    during = _cpu(pids) - before  # read as soon as the write lets this thread run again
    job.result(timeout=120)
    total = _cpu(pids) - before
    print(f"worker CPU during the write {during:.2f} s of {total:.2f} s")
    assert total > 0.2 and during >= 0.6 * total, (during, total)


def _cpu(pids: set[int]) -> float:
    ticks = 0
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(stat[11]) + int(stat[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def test_a_long_run_in_workers_stores_what_an_in_process_run_stores(tmp_path, embedder):
    docs = [
        Document(f"notes/{n}.txt", f"Part {n}. " + "Glaciers carve valleys and grind rock into silt. " * 60)
        for n in range(12)
    ]
    stores = []
    for workers in (False, True):
        settings = Settings(index_dir=tmp_path / f"index-{workers}", progress=False)
        store = Store(settings)
        indexer = Indexer(store, embedder, settings)
        indexer.slice_passages, indexer.workers_from = 4, 0 if workers else 10**9
        used: list[bool] = []
        submit = embedder.submit

        def tracked(texts, _used=used, _submit=submit, **kwargs):
            _used.append(embedder.workers_running)
            return _submit(texts, **kwargs)

        embedder.submit = tracked
        report = indexer.index_documents(docs)
        del embedder.submit
        assert report.embedded == store.count() > 12
        ids = sorted(i for r in store.files().values() for i in r.chunk_ids)
        stores.append({i: v for i, (_, v) in store.get_with_vectors(ids).items()})
        assert used and set(used) == {workers}
        assert not embedder.workers_running  # the run that started them stopped them
    in_process, in_workers = stores
    assert in_process.keys() == in_workers.keys()
    assert all(np.array_equal(in_process[i], in_workers[i]) for i in in_process)


def test_runs_share_the_workers_and_the_last_to_end_stops_them(embedder):
    """Two runs at once (two indexes, one server) share one pool; it ends with the second, unless
    `start_workers` asked for it."""
    with embedder.workers() as first:
        assert first and embedder.workers_running
        with embedder.workers() as second:
            assert second
        assert embedder.workers_running  # the first run still needs them
        assert embedder.encode(TEXTS[:3]).shape == (3, embedder.dimension)
    assert not embedder.workers_running
    assert embedder.start_workers()
    with embedder.workers():
        pass
    assert embedder.workers_running  # asked for: kept until `stop_workers`
    embedder.stop_workers()
    assert not embedder.workers_running
