"""The segmented keyword index: a change writes a small delta, yet ranks as a full rebuild does."""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import pytest

from assistant.embedding import Embedder
from assistant.index.indexing import Indexer
from assistant.index.keyword import KeywordIndex
from assistant.index.store import Store
from assistant.settings import Settings

WORDS = [
    *("glacier", "valley", "volcano", "magma", "crust", "coral", "reef", "comet", "orbit", "river", "delta"),
    *("harbour", "treaty", "budget", "senate", "election", "missile", "satellite", "vaccine", "protein"),
    *("enzyme", "galaxy", "nebula", "railway", "bridge"),
]
TOLERANCE = 0.03  # relative: a delta's scores use IDF that still counts deleted base rows until a merge


def corpus(n: int, seed: int, prefix: str) -> dict[str, str]:
    rng = random.Random(seed)
    return {f"{prefix}{i:04d}": " ".join(rng.choices(WORDS, k=rng.randint(5, 40))) for i in range(n)}


QUERIES = ["volcano magma", "treaty senate election", "comet orbit galaxy", "bridge", "protein enzyme vaccine"]


def test_a_change_writes_a_delta_that_ranks_as_a_full_rebuild(tmp_path: Path):
    texts = corpus(400, 1, "a")
    segmented = KeywordIndex(tmp_path / "segmented", min_base=0, merge_fraction=0.2)
    segmented.replace_all(list(texts), list(texts.values()), "g1")
    base = next((tmp_path / "segmented").glob("base-*")).name

    # One file changed: its 8 passages replaced by 9 new ones, one of them with a term nobody else has.
    gone = [f"a{i:04d}" for i in range(8)]
    added = corpus(9, 2, "b") | {"b-unique": "zeppelin harbour bridge"}
    segmented.update(list(added), list(added.values()), gone)
    segmented.commit("g2")
    after = {k: v for k, v in texts.items() if k not in gone} | added
    full = KeywordIndex(tmp_path / "full")
    full.replace_all(list(after), list(after.values()), "g2")

    saved = sorted(p.name for p in (tmp_path / "segmented").iterdir())
    assert base in saved and any(n.startswith("delta-") for n in saved) and any(n.startswith("deleted-") for n in saved)
    reopened = KeywordIndex(tmp_path / "segmented")  # a fresh process reads the same segments
    assert len(reopened) == len(full) == len(after) and reopened.generation == "g2"
    for query in QUERIES:
        got, want = dict(reopened.search(query, len(after))), dict(full.search(query, len(after)))
        assert got.keys() == want.keys() and not set(got) & set(gone)
        assert all(abs(got[i] - want[i]) <= TOLERANCE * want[i] for i in want)
    assert reopened.search("zeppelin", 3)[0][0] == full.search("zeppelin", 3)[0][0] == "b-unique"
    scoped = reopened.search("zeppelin bridge", 5, allowed={"b-unique", "a0001", "a0002"})
    assert scoped[0][0] == "b-unique" and {i for i, _ in scoped} <= {"b-unique", "a0001", "a0002"}


def test_the_delta_merges_into_the_base_and_is_then_exact(tmp_path: Path):
    texts = corpus(200, 3, "a")
    index = KeywordIndex(tmp_path / "kw", min_base=0, merge_fraction=0.1)
    index.replace_all(list(texts), list(texts.values()), "g1")
    expected = dict(texts)
    for step in range(3):  # 8 changed passages a step (8 new, 8 deleted): the second passes 10% and merges
        gone = [f"a{step * 8 + i:04d}" for i in range(8)]
        new = corpus(8, 10 + step, f"s{step}-")
        index.update(list(new), list(new.values()), gone)
        index.commit(f"g{step + 2}")
        expected = {k: v for k, v in expected.items() if k not in gone} | new
    names = sorted(p.name for p in (tmp_path / "kw").iterdir())
    assert len([n for n in names if n.startswith("base-")]) == 1 and any(n.startswith("delta-") for n in names)
    full = KeywordIndex(tmp_path / "full")
    full.replace_all(list(expected), list(expected.values()), "x")
    index.merge_fraction = 0.0  # the next commit merges: statistics exact again
    index.update([], [], ["a0100"])
    index.commit("last")
    full.update([], [], ["a0100"])
    full.commit("x2")
    assert [n for n in (tmp_path / "kw").iterdir() if n.name.startswith(("delta-", "deleted-"))] == []
    for query in QUERIES:
        got, want = index.search(query, 20), full.search(query, 20)
        assert [i for i, _ in got] == [i for i, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-6)


def test_a_reindexed_file_goes_to_the_delta_through_the_store(tmp_path: Path, monkeypatch):
    """Through the real indexer and Chroma: a changed file's re-index writes a delta, not a new base,
    and skips the orphan check (it runs only after an edit that did not close)."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(6):
        (folder / f"note{i}.txt").write_text(f"Note {i} about the harbour bridge and the railway budget number {i}.\n")
    settings = Settings(index_dir=tmp_path / "index", progress=False)
    store = Store(settings)
    indexer = Indexer(store, Embedder(), settings)
    indexer.index([folder])
    store.keyword.min_base, store.keyword.merge_fraction = 0, 10.0
    base = sorted(p.name for p in store.keyword.folder.glob("base-*"))
    (folder / "note3.txt").write_text("Note 3 now tells of a zeppelin over the harbour.\n")
    checks = []
    monkeypatch.setattr(store, "orphans", lambda records: checks.append(len(records)) or [])
    indexer.index([folder])
    assert checks == []
    assert sorted(p.name for p in store.keyword.folder.glob("base-*")) == base
    assert list(store.keyword.folder.glob("delta-*")) and list(store.keyword.folder.glob("deleted-*"))
    assert len(store.keyword) == store.count() == 6
    hit = store.keyword_search("zeppelin", 1)[0][0]
    source = store.get_with_vectors([hit])[hit][0].source
    assert source.endswith("note3.txt")
    assert [i for i, _ in store.keyword_search("harbour", 6, sources=[source])] == [hit]
    assert len(store.keyword_search("harbour", 6)) == 6


def test_a_commit_keeps_a_segment_another_process_just_wrote_and_drops_abandoned_ones(tmp_path: Path):
    """Two processes save into one folder (a server rebuilding while a CLI run commits): a save drops
    what the state it replaced named, never another process's fresh, not yet named segment (that
    process names it next), and unnamed entries over an hour old (a crashed run's)."""
    texts = corpus(60, 4, "a")
    index = KeywordIndex(tmp_path / "kw")
    index.replace_all(list(texts), list(texts.values()), "g1")
    first = next((tmp_path / "kw").glob("base-*"))
    shutil.copytree(first, tmp_path / "kw" / "base-another")
    shutil.copytree(first, tmp_path / "kw" / "base-crashed")
    old = time.time() - 2 * 3600
    os.utime(tmp_path / "kw" / "base-crashed", (old, old))
    index.update([], [], ["a0001"])
    index.commit("g2")
    names = {p.name for p in (tmp_path / "kw").iterdir()}
    assert "base-another" in names and "base-crashed" not in names and first.name not in names
    assert len(KeywordIndex(tmp_path / "kw")) == len(texts) - 1
