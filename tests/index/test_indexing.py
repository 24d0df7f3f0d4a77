"""Incremental indexing on the embedded store: nothing re-embedded, edits and deletions applied,
bad files reported, offsets exact, chunks within the model's budget, one run at a time, crash safe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from assistant.embedding import Embedder
from assistant.index.indexing import IndexBusyError, Indexer
from assistant.index.store import Store
from assistant.ingest.loading import load_file, source_name
from assistant.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

TOPICS = [
    ("Glaciers", "Glaciers carve valleys as they slowly move downhill under their own weight."),
    ("Volcanoes", "Volcanoes erupt when pressure from molten rock beneath the crust is released."),
    ("Coral reefs", "Coral reefs are built by colonies of tiny animals that secrete calcium carbonate."),
    ("Comets", "Comets grow bright tails of gas and dust when their orbit brings them near the Sun."),
]


def article(title: str, fact: str, n: int = 0) -> str:
    body = " ".join(f"{fact} Observation {n}-{i} notes a further detail about {title.lower()}." for i in range(3))
    return f"{title}\n\n{body}\n\nA second paragraph about {title.lower()} number {n}: {fact}\n"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def make_indexer(index_dir: Path, embedder: Embedder) -> Indexer:
    settings = Settings(index_dir=index_dir, progress=False)
    return Indexer(Store(settings), embedder, settings)


def stored_chunks(store: Store):
    ids = [i for r in store.files().values() for i in r.chunk_ids]
    return {i: chunk for i, (chunk, _) in store.get_with_vectors(ids).items()}


def all_chunk_ids(store: Store) -> set[str]:
    chunks_col, _ = store._collections()
    return {i for ids, _ in store._scan(chunks_col, include=[]) for i in ids}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, embedder):
    folder = tmp_path_factory.mktemp("corpus")
    for title, fact in TOPICS:
        (folder / f"{title.lower().replace(' ', '_')}.txt").write_text(article(title, fact))
    indexer = make_indexer(tmp_path_factory.mktemp("index"), embedder)
    first = indexer.index([folder])
    return folder, indexer, first


def test_reindex_embeds_nothing(corpus):
    folder, indexer, first = corpus
    assert first.added == len(TOPICS) and first.embedded == first.chunks > 0
    again = indexer.index([folder])
    assert (again.embedded, again.added, again.updated, again.unchanged) == (0, 0, 0, len(TOPICS))
    assert again.chunks == first.chunks


def test_edited_file_replaces_its_chunks(corpus):
    folder, indexer, _ = corpus
    store = indexer.store
    path = folder / "comets.txt"
    old_ids = set(store.files()[source_name(path)].chunk_ids)
    path.write_text(path.read_text().replace("bright tails", "luminous zebra-striped tails"))
    report = indexer.index([folder])
    assert report.updated == 1 and report.unchanged == len(TOPICS) - 1 and report.embedded > 0
    new_ids = set(store.files()[source_name(path)].chunk_ids)
    everything = all_chunk_ids(store)
    assert old_ids - new_ids and not (old_ids - new_ids) & everything  # replaced chunks are gone
    assert new_ids <= everything
    assert everything == {i for r in store.files().values() for i in r.chunk_ids}
    hits = [i for i, _ in store.keyword.search("zebra striped", 5)]
    assert hits and hits[0] in new_ids
    assert not set(hits) & (old_ids - new_ids)


def test_deleted_file_is_removed(corpus):
    folder, indexer, _ = corpus
    store = indexer.store
    path = folder / "glaciers.txt"
    ids = set(store.files()[source_name(path)].chunk_ids)
    path.unlink()
    report = indexer.index([folder])
    assert report.removed == 1 and report.embedded == 0
    assert source_name(path) not in store.files()
    assert not ids & all_chunk_ids(store)
    assert not ids & {i for i, _ in store.keyword.search("glaciers carve valleys", 10)}
    assert report.chunks == store.count() == len(all_chunk_ids(store))


def test_hostile_folder_indexes_the_good_files(tmp_path, embedder):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.txt").write_text(article(*TOPICS[1]))
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n this is not really a pdf \x00\xff")
    (folder / "data.xyz").write_text("unknown format")
    indexer = make_indexer(tmp_path / "index", embedder)
    report = indexer.index([folder])
    assert report.added == 1 and report.chunks > 0
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(skipped) == {"binary.txt", "empty.txt", "broken.pdf", "data.xyz"}
    assert all(reason.strip() for reason in skipped.values())
    assert set(indexer.store.files()) == {source_name(folder / "good.txt")}


def _fixtures(folder: Path) -> list[Path]:
    import docx
    from reportlab.pdfgen import canvas

    text = "\n\n".join(article(t, f, n) for n, (t, f) in enumerate(TOPICS))
    long_sentence = " ".join(f"word{i}" for i in range(400)) + "."
    giant_word = "x" * 3000
    (folder / "notes.txt").write_text(text + "\n\n" + long_sentence + "\n\n" + giant_word + "\n")
    (folder / "readme.md").write_text("# Heading\n\n" + text.replace("Observation", "*Observation*"))
    paras = "".join(f"<p>{p}</p>\n" for p in text.split("\n\n"))
    (folder / "page.html").write_text(
        f"<html><head><title>T</title><script>var x=1;</script></head><body><h1>Page</h1>{paras}</body></html>"
    )
    pdf = canvas.Canvas(str(folder / "paper.pdf"))
    for title, fact in TOPICS:
        y = 720
        for line in textwrap.wrap(f"{title}. {fact} " * 4, 80):
            pdf.drawString(72, y, line)
            y -= 14
        pdf.showPage()
    pdf.save()
    document = docx.Document()
    for p in text.split("\n\n"):
        document.add_paragraph(p)
    document.save(str(folder / "report.docx"))
    return sorted(folder.iterdir())


def test_offsets_round_trip_and_chunks_fit_the_model(tmp_path, embedder):
    folder = tmp_path / "formats"
    folder.mkdir()
    files = _fixtures(folder)
    indexer = make_indexer(tmp_path / "index", embedder)
    report = indexer.index([folder])
    assert not report.skipped and report.added == len(files) == 5
    chunks = stored_chunks(indexer.store)
    by_source: dict[str, list] = {}
    for c in chunks.values():
        by_source.setdefault(c.source, []).append(c)
    for path in files:
        loaded = load_file(path)
        mine = by_source[source_name(path)]
        assert mine, path.name
        for c in mine:
            assert loaded.text[c.start : c.end] == c.text, (path.name, c.start, c.end)
        if path.suffix == ".pdf":
            assert {c.page for c in mine} <= {1, 2, 3, 4} and None not in {c.page for c in mine}
    counts = embedder.count_tokens([c.text for c in chunks.values()])
    assert max(counts) + 2 <= embedder.max_seq_length  # + [CLS] and [SEP]


def test_second_concurrent_run_fails_fast(tmp_path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(article(*TOPICS[0]))
    first = make_indexer(tmp_path / "index", embedder)
    second = make_indexer(tmp_path / "index", embedder)  # as another process would open it
    inside, release = threading.Event(), threading.Event()

    class Slow:
        def __getattr__(self, name):
            return getattr(embedder, name)

        def submit(self, texts, **kwargs):
            inside.set()
            release.wait(60)
            return embedder.submit(texts, **kwargs)

    first.embedder = Slow()
    result: dict = {}
    worker = threading.Thread(target=lambda: result.setdefault("report", first.index([folder], wait=False)))
    worker.start()
    try:
        assert inside.wait(60)
        with pytest.raises(IndexBusyError, match="Another indexing run"):
            second.index([folder], wait=False)
    finally:
        release.set()
        worker.join(60)
    assert result["report"].added == 1
    assert second.index([folder], wait=False).unchanged == 1  # free again once the first ends


# A run that stops right after storing a group's chunks, before recording the files: the worst spot.
_CRASHING_RUN = """
import sys, time
from assistant import cli
from assistant.index.indexing import Indexer
from assistant.index.store import Store
Indexer.group_chunks = 40
groups = 0
original = Store._upsert_records
def upsert_records(self, files_col, updates):
    global groups
    groups += 1
    if groups == 3:
        print("chunks stored", flush=True)
        time.sleep(120)
    return original(self, files_col, updates)
Store._upsert_records = upsert_records
sys.exit(cli.main(sys.argv[1:]))
"""


def test_killed_run_then_rerun_matches_a_clean_run(tmp_path, embedder):
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(240):
        title, fact = TOPICS[n % len(TOPICS)]
        (folder / f"doc{n:03}.txt").write_text(f"{title} {n}\n\n{fact} Item {n} of the collection.\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    crashed = tmp_path / "crashed"
    args = ["--index-dir", str(crashed), "index", str(folder), "--json"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_RUN, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "chunks stored", proc.stderr.read()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    partial = Store(Settings(index_dir=crashed))
    listed = {i for r in partial.files().values() for i in r.chunk_ids}
    assert 0 < len(listed) < partial.count()  # some files recorded, and orphans left behind
    del partial

    rerun = subprocess.run([sys.executable, "-m", "assistant", *args], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["chunks"] == 240

    clean = make_indexer(tmp_path / "clean", embedder)
    clean.index([folder])
    after = Store(Settings(index_dir=crashed))
    records = after.files()
    assert {s: r.chunk_ids for s, r in records.items()} == {s: r.chunk_ids for s, r in clean.store.files().items()}
    assert all_chunk_ids(after) == all_chunk_ids(clean.store) == {i for r in records.values() for i in r.chunk_ids}
    assert after.count() == clean.store.count() == 240
    after.sync_keyword(max_age_s=0)
    assert len(after.keyword) == 240


def test_keyword_scores_are_bm25s_scores(corpus):
    """The segmented keyword index scores as bm25s ("lucene" BM25) does over the same tokens."""
    import bm25s
    import numpy as np
    from bm25s.stopwords import STOPWORDS_EN

    from assistant.terms import STOPWORDS, tokenize

    assert frozenset(STOPWORDS_EN) == STOPWORDS
    store = corpus[1].store
    chunks = {
        i: t
        for page, texts in store._scan(store._collections()[0], ["documents"])
        for i, t in zip(page, texts, strict=True)
    }
    ids = sorted(chunks)
    reference = bm25s.BM25()
    reference.index([tokenize(chunks[i]) or ["\x00empty"] for i in ids], show_progress=False)
    for query in ("volcanoes erupt molten rock", "the coral reefs and comets", "observation details"):
        expected = reference.get_scores([reference.vocab_dict[t] for t in tokenize(query) if t in reference.vocab_dict])
        got = dict(store.keyword.search(query, len(ids)))
        assert np.allclose([got.get(i, 0.0) for i in ids], expected, atol=1e-5)
        best = {ids[i] for i in np.flatnonzero(expected == expected.max())}
        assert store.keyword.search(query, 1)[0][0] in best


def test_other_process_change_is_reloaded_not_rebuilt(corpus, monkeypatch):
    """A server process sees an indexing run's saved keyword index without re-tokenising everything."""
    folder, indexer, _ = corpus
    reader = Store(indexer.settings)  # as the `serve` process would hold it
    reader.sync_keyword(max_age_s=0)
    assert len(reader.keyword) == reader.count()
    (folder / "tides.txt").write_text("Tides\n\nTides rise and fall twice a day because of the Moon's gravity.\n")
    assert indexer.index([folder]).added == 1

    def rebuild(*args, **kwargs):
        raise AssertionError("rebuilt the keyword index from the store")

    monkeypatch.setattr(reader.keyword, "replace_all", rebuild)
    reader.sync_keyword(max_age_s=0)
    assert reader.keyword.generation == reader.generation()
    tides = set(reader.files()[source_name(folder / "tides.txt")].chunk_ids)
    assert reader.keyword.search("moon gravity tides", 1)[0][0] in tides


def test_indexing_a_folder_that_holds_the_index(tmp_path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(article(*TOPICS[0]))
    indexer = make_indexer(folder / "index", embedder)
    first = indexer.index([folder])
    assert first.added == 1 and not first.skipped, first.skipped
    (folder / "index" / "uploads").mkdir()
    (folder / "index" / "uploads" / "b.txt").write_text(article(*TOPICS[1]))
    second = indexer.index([folder])
    assert (second.added, second.unchanged, second.removed) == (1, 1, 0) and not second.skipped
    assert set(indexer.store.files()) == {source_name(folder / "a.txt"), source_name(folder / "index/uploads/b.txt")}


def test_index_records_what_built_it_and_refuses_another_model_or_chunker(tmp_path, embedder):
    from assistant.errors import IndexMismatchError
    from assistant.ingest.chunking import CHUNKER_VERSION
    from assistant.pipeline import Assistant
    from assistant.schema import IndexStamp

    built = Assistant(index_dir=tmp_path / "index", progress=False)
    built.embedder = embedder
    assert built.store.count() == 0  # opening a new index stamps it
    variant = embedder.recorded_variant
    ours = IndexStamp("sentence-transformers/all-MiniLM-L6-v2", 384, CHUNKER_VERSION, embedding_variant=variant)
    assert built.store.stamp == ours
    settings = built.settings
    assert Store(settings, stamp=ours).count() == 0
    another_model = IndexStamp("BAAI/bge-base-en-v1.5", 768, CHUNKER_VERSION)
    another_chunker = IndexStamp(
        ours.embedding_model, ours.dimension, CHUNKER_VERSION + "-next", embedding_variant=embedder.variant
    )
    another_size = IndexStamp(
        ours.embedding_model, ours.dimension, CHUNKER_VERSION, chunk_tokens=120, embedding_variant=embedder.variant
    )
    another_overlap = IndexStamp(
        ours.embedding_model, ours.dimension, CHUNKER_VERSION, chunk_overlap=0, embedding_variant=embedder.variant
    )
    another_variant = IndexStamp(ours.embedding_model, ours.dimension, CHUNKER_VERSION, embedding_variant="int8-u8u8")
    for other in (another_model, another_chunker, another_size, another_overlap, another_variant):
        with pytest.raises(IndexMismatchError) as err:
            Store(settings, stamp=other).count()
        message = str(err.value)
        assert "rebuild" in message and "--index-dir" in message and str(settings.index_dir) in message
        assert other.describe() in message and ours.describe() in message

    # Through the CLI: one line, exit code 1, no traceback.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    foreign = tmp_path / "foreign"
    Store(Settings(index_dir=foreign), stamp=IndexStamp("BAAI/bge-base-en-v1.5", 768, CHUNKER_VERSION)).count()
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "--index-dir", str(foreign), "ask", "Why?"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "bge-base" in done.stderr and "rebuild" in done.stderr


def test_index_from_before_stamps_is_stamped_when_first_opened(corpus, tmp_path):
    """An index built before indexes recorded their model keeps working, and is stamped from then on."""
    from assistant.errors import IndexMismatchError
    from assistant.ingest.chunking import CHUNKER_VERSION
    from assistant.schema import IndexStamp

    folder, indexer, _ = corpus
    settings = Settings(index_dir=tmp_path / "old", progress=False)
    old = Indexer(Store(settings), indexer.embedder, settings)  # no stamp: as the previous release wrote it
    assert old.index([folder]).added == len(TOPICS)
    stamp = IndexStamp(
        indexer.embedder.model_name, indexer.embedder.dimension, CHUNKER_VERSION, embedding_variant="float32"
    )
    reopened = Indexer(Store(settings, stamp=stamp), indexer.embedder, settings)
    assert reopened.index([folder]).unchanged == len(TOPICS)  # nothing rebuilt
    with pytest.raises(IndexMismatchError):
        Store(settings, stamp=IndexStamp(stamp.embedding_model, stamp.dimension, "0")).count()


def test_index_from_before_stamps_is_checked_before_it_is_stamped(tmp_path):
    """An unstamped index whose vectors another model made (another length) is refused, not stamped."""
    import numpy as np

    from assistant.errors import IndexMismatchError
    from assistant.index.files import FileUpdate
    from assistant.schema import Chunk, IndexStamp

    settings = Settings(index_dir=tmp_path / "old", progress=False)
    chunk = Chunk("c1", "a.txt", "Glaciers carve valleys.", 0, 23)
    with Store(settings).edit() as edit:  # no stamp: as the release before stamps wrote it
        edit.write([FileUpdate("a.txt", "h", ["c1"], [chunk], np.ones((1, 8), dtype=np.float32), previous=())])
    ours = IndexStamp("sentence-transformers/all-MiniLM-L6-v2", 384, "1")
    with pytest.raises(IndexMismatchError, match="8 dimensions"):
        Store(settings, stamp=ours).count()
    with pytest.raises(IndexMismatchError):  # and it was not stamped on the way
        Store(settings, stamp=ours).count()
    assert Store(settings, stamp=IndexStamp("an older model", 8, "1")).count() == 1  # checked, then stamped
    with pytest.raises(IndexMismatchError, match="an older model"):
        Store(settings, stamp=IndexStamp("another model", 8, "1")).count()


def test_a_query_during_an_edit_never_leaves_old_keywords_under_a_new_stamp(tmp_path, embedder):
    """Queries catch up with the store while another thread edits it: the keyword index ends in step
    with the store (same chunks, same generation), however their steps fall."""
    import threading

    from assistant.pipeline import Assistant

    a = Assistant(index_dir=tmp_path / "index", progress=False)
    a.embedder = embedder
    docs = tmp_path / "docs"
    docs.mkdir()
    stop = threading.Event()
    failures: list[BaseException] = []

    def ask() -> None:
        try:
            while not stop.is_set():
                a.store.sync_keyword(max_age_s=0)
                a.store.keyword_search("glacier valley", 5)
                a.store.count()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for n in range(6):
            (docs / f"d{n}.txt").write_text(f"Glacier {n} carves a valley number {n} in the north.\n")
            a.index([docs])
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not failures, repr(failures[:3])
    store = a.store
    store.sync_keyword(max_age_s=0)
    assert store.keyword.generation == store.generation()
    assert len(store.keyword) == store.count() == 6
