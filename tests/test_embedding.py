"""The embedding model built without torch: the graph written from the packaged weights gives
sentence-transformers' vectors, builds are deterministic and cached, int8 documents stay close to
float32, and answering never imports torch."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.embedding import Embedder
from assistant.embedding_graph import build

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [
    "Why might Russia not send S-400s?",
    "Glaciers carve valleys as they slowly move downhill under their own weight.",
    "hi",
    "  Ünïcödé café 東京 😀 ",
    "word " * 400,  # past the model's 256 word pieces: truncated like the model does
    "",
    "a\n\nb\tc",
]
PASSAGES = [
    "The S-400 is a Russian surface-to-air missile system able to track aircraft hundreds of kilometres away.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in the chloroplasts of plants.",
    "The treaty was signed in Ashgabat after two days of talks between the presidents.",
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """sentence-transformers (torch, installed for tests only) on the same packaged weights."""
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(Embedder().model_path), device="cpu")
    return model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_the_graph_built_without_torch_gives_sentence_transformers_vectors(reference, cache):
    embedder = Embedder(cache_dir=cache, precision="float32")
    assert not embedder.onnx_path("float32").exists()
    ours = embedder.encode(TEXTS)
    assert embedder.onnx_path("float32").exists()  # built once into the cache
    assert ours.dtype == np.float32 and ours.shape == reference.shape == (len(TEXTS), 384)
    assert (ours * reference).sum(axis=1).min() >= 0.9999
    assert np.abs(ours - reference).max() < 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    questions = embedder.encode_queries(TEXTS)
    assert np.abs(questions - reference).max() < 1e-5
    assert np.abs(embedder.encode_query(TEXTS[1]) - reference[1]).max() < 1e-5
    assert embedder.encode_queries([]).shape == embedder.encode([]).shape == (0, 384)


def test_builds_are_deterministic(cache, tmp_path):
    """The same weights give the same bytes: a build can be checked, and never differs between machines."""
    model_path = Embedder().model_path
    first = build(model_path, "float32", tmp_path / "a.onnx")
    again = build(model_path, "float32", tmp_path / "b.onnx")
    assert _sha(first) == _sha(again)
    int8 = build(model_path, "int8", tmp_path / "c.onnx", float32=first)
    int8_again = build(model_path, "int8", tmp_path / "d.onnx")  # its own float32 build on the way
    assert _sha(int8) == _sha(int8_again) != _sha(first)
    assert int8.stat().st_size < 0.7 * first.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "b.onnx", "c.onnx", "d.onnx"]  # no leftovers


def test_int8_documents_stay_close_to_float32_and_do_not_depend_on_their_batch(cache):
    exact = Embedder(cache_dir=cache, precision="float32").encode(PASSAGES)
    int8 = Embedder(cache_dir=cache, precision="int8", batch_size=2)
    assert int8.variant == "int8"
    ours = int8.encode(PASSAGES)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert (ours * exact).sum(axis=1).min() > 0.98
    assert np.abs(ours - exact).max() > 1e-4  # it really is another build
    # Each text runs alone: its vector is the same whatever it is embedded with.
    alone = np.concatenate([int8.encode([p]) for p in PASSAGES])
    assert np.array_equal(alone, ours)
    # Questions stay float32 whatever the documents' variant.
    assert np.abs(int8.encode_queries(PASSAGES) - exact).max() < 1e-6
    assert Embedder(precision="auto").variant in {"float32", "int8", "int8-u8u8"}
    with pytest.raises(ValueError, match="precision"):
        Embedder(precision="bfloat16")


def test_a_changed_model_gets_its_own_build(cache, tmp_path):
    """Builds are named after the weights file and the variant, so a replaced model is rebuilt."""
    original = Embedder(cache_dir=cache)
    copy = tmp_path / "model"
    copy.mkdir()
    for f in original.model_path.iterdir():
        if f.is_file():
            os.symlink(f, copy / f.name)
    (copy / "model.safetensors").unlink()
    (copy / "model.safetensors").write_bytes((original.model_path / "model.safetensors").read_bytes()[:-1])
    other = Embedder(model_path=copy, cache_dir=cache)
    assert other.onnx_path() != original.onnx_path()
    assert original.onnx_path("int8") != original.onnx_path("float32")


def test_an_unusable_build_is_rebuilt(cache, tmp_path):
    broken = Embedder(cache_dir=tmp_path, precision="float32")
    broken.onnx_path().parent.mkdir(parents=True)
    broken.onnx_path().write_bytes(b"not a model")
    vector = broken.encode_query(PASSAGES[0])
    expected = Embedder(cache_dir=cache, precision="float32").encode_query(PASSAGES[0])
    assert np.array_equal(vector, expected)
    assert broken.onnx_path().stat().st_size > 1_000_000


def test_an_unwritable_cache_is_a_clear_error(tmp_path):
    from assistant.errors import EmbeddingError

    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    with pytest.raises(EmbeddingError, match="Cannot build the embedding model"):
        Embedder(cache_dir=blocked / "cache").encode_query("hello")


def test_an_index_built_with_another_variant_is_refused(tmp_path, cache):
    from assistant.errors import IndexMismatchError
    from assistant.pipeline import Assistant

    built = Assistant(index_dir=tmp_path / "index", cache_dir=cache, embed_precision="float32", progress=False)
    assert built.store.count() == 0 and built.store.stamp.embedding_variant == "float32"
    other = Assistant(index_dir=tmp_path / "index", cache_dir=cache, embed_precision="int8", progress=False)
    with pytest.raises(IndexMismatchError, match=r"float32.*int8.*rebuild"):
        other.store.count()


def test_an_int8_index_of_the_older_graph_is_refused(tmp_path, cache):
    """Graph 2 moved the int8 vectors (by rounding), so the stamp records the revision: an index
    embedded by graph 1's int8 build (stamped plain `int8`) is refused, not mixed with new vectors."""
    from assistant.errors import IndexMismatchError
    from assistant.index.store import Store
    from assistant.ingest.chunking import CHUNKER_VERSION
    from assistant.pipeline import Assistant
    from assistant.schema import IndexStamp

    current = Assistant(index_dir=tmp_path / "index", cache_dir=cache, embed_precision="int8", progress=False)
    assert current.embedder.variant == "int8" and current.embedder.recorded_variant == "int8/g2"
    s = current.settings
    older = IndexStamp(
        current.embedder.model_name, 384, CHUNKER_VERSION, s.chunk_tokens, s.chunk_overlap_tokens, "int8"
    )
    assert Store(s, stamp=older).count() == 0  # an index made by the previous release
    with pytest.raises(IndexMismatchError, match=r"int8\).*int8/g2.*rebuild"):
        current.store.count()
    # float32 moved by rounding only: its indexes stay valid.
    assert Embedder(precision="float32").recorded_variant == "float32"


def test_the_quantized_build_keeps_the_chosen_matmuls_in_float32(cache):
    """Only the weight MatMuls named in FLOAT_MATMULS stay float32; the fused SkipLayerNormalization
    (slow on CPU) is not written."""
    import onnx

    from assistant.embedding_graph import FLOAT_MATMULS

    embedder = Embedder(cache_dir=cache, precision="int8")
    _ = embedder.document_encoder
    graph = onnx.load(str(embedder.onnx_path("int8"))).graph
    ops = {n.op_type for n in graph.node}
    assert "SkipLayerNormalization" not in ops and {"QAttention", "MatMulInteger"} <= ops
    float_weights = sorted(n.input[1] for n in graph.node if n.op_type == "MatMul" and n.input[1].endswith("weight_t"))
    assert float_weights == sorted(f"{p}.weight_t" for p in FLOAT_MATMULS)
    quantized = [n for n in graph.node if n.op_type in ("QAttention", "MatMulInteger")]
    assert len(quantized) == 6 * 4 - len(FLOAT_MATMULS)


def test_answering_in_a_fresh_process_never_imports_torch(cache, seed_assistant):
    """Indexing and answering run on onnxruntime alone: torch is for training and tests."""
    code = (
        "import json, sys\n"
        "from assistant import Assistant\n"
        f"a = Assistant(index_dir={str(seed_assistant.settings.index_dir)!r}, cache_dir={str(cache)!r},"
        " progress=False)\n"
        "r = a.answer('Why might Russia not send S-400s?')\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'gradio') if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'cited': len(r.citations)}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"heavy": [], "cited": out["cited"]} and out["cited"] >= 1


def test_the_sentence_cache_serves_every_text_when_filled_past_its_size(cache):
    """`encode_cached` keeps `cache_size` vectors; a call that needs more than that (its own evictions)
    or several calls at once (each other's) still get every vector, equal to an uncached encoding."""
    import threading

    small = Embedder(cache_dir=cache, cache_size=8)
    texts = [f"The harbour of Pellmore was repaired in {1900 + i} by crew number {i}." for i in range(30)]
    expected = small.encode_queries(texts)
    got = small.encode_cached(texts)  # 30 texts through 8 places
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert sum(small.is_cached(t) for t in texts) == 8
    assert all(small.is_cached(t) for t in texts[-8:])  # the most recently used stay

    failures: list[BaseException] = []

    def ask(offset: int) -> None:
        try:
            for n in range(10):
                some = [texts[(offset + n + k) % len(texts)] for k in range(12)]
                rows = [texts.index(t) for t in some]
                np.testing.assert_allclose(small.encode_cached(some), expected[rows], atol=1e-5)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=ask, args=(i * 5,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, repr(failures[:3])
    assert sum(small.is_cached(t) for t in texts) == 8


def test_the_grounding_check_works_past_the_cache_size(cache):
    """The check used to evict sentence vectors and then read one it had just evicted (a KeyError once
    its cache was full); it now shares the embedder's cache, whatever its size."""
    from assistant.grounding.grounder import Grounder
    from assistant.schema import Chunk, Passage

    small = Embedder(cache_dir=cache, cache_size=3)
    text = " ".join(f"The lighthouse of Brindlemoor was painted {c} in {1900 + i}." for i, c in enumerate("abcdefgh"))
    passages = [Passage(Chunk("c1", "a.txt", text, 0, len(text)), 0.9, dense=0.9)]
    grounder = Grounder(small)
    grounder.prepare(passages)
    grounding = grounder.ground("The lighthouse of Brindlemoor was painted in 1903 [1].", passages)
    assert grounding.claims and grounding.claims[0].supported


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_passages_tokenised_once_get_the_same_word_pieces_and_vectors(cache, seed_dir):
    """The chunker's word pieces, handed to the encoder, stand for tokenising each passage again:
    same ids, bit-identical vectors; where something other than whitespace lies between its
    sentences (a rule of stars), a passage has none and is tokenised as before."""
    from assistant.ingest.chunking import Chunker
    from assistant.schema import Document

    embedder = Embedder(cache_dir=cache, precision="int8")
    assert embedder.joins_word_pieces
    once = Chunker(embedder.count_tokens, 48, 12, limit=embedder.max_seq_length, word_pieces=embedder.word_pieces)
    plain = Chunker(embedder.count_tokens, 48, 12, limit=embedder.max_seq_length)
    crafted = (
        "Café naïve résumé in Zürich.\tThe 東京 office opened in 1999 (see Fig. 3).\n"
        "It grew fast.\r\nCosts rose by 12.5%; profits didn't.\n\n"
        "A first point.\n\n***\n\nA second point after a rule.\n\n"
        + "A very long sentence about rivers and their deltas, "
        + "and the sediment they carry " * 12
        + ".\n\nStart. "
        + "Qz7" * 32  # a giant word, cut at characters
        + " end."
    )
    docs = [Document(str(p), p.read_text(encoding="utf-8")) for p in seed_dir.iterdir()]
    docs.append(Document("crafted.txt", crafted))
    passages = [p for d in docs for p in once.cut(d)]
    assert [p.chunk for p in passages] == [c for d in docs for c in plain.split(d)]
    known = [p for p in passages if p.word_pieces is not None]
    assert 0 < len(known) < len(passages)
    for p in known:
        assert p.word_pieces == embedder.word_pieces([p.chunk.text])[0]
    unknown = [p.chunk.text for p in passages if p.word_pieces is None]
    assert len(unknown) == 1 and "point.\n\n***\n\nA second point" in unknown[0]
    texts = [p.chunk.text for p in passages]
    given = embedder.encode(texts, word_pieces=[p.word_pieces for p in passages])
    assert np.array_equal(given, embedder.encode(texts))
