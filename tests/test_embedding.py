"""The embedding model: the packaged sentence-transformers weights in bulk, and their ONNX export for
questions (same vectors, no torch import in a process that only answers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from assistant.embedding import Embedder

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


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    model = SentenceTransformer(str(Embedder().model_path), device="cpu")
    return model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Embedder:
    """An embedder whose torch model has been loaded once (in bfloat16), which writes the ONNX export
    from the float32 weights."""
    embedder = Embedder(cache_dir=tmp_path_factory.mktemp("cache"), precision="bfloat16")
    assert not embedder.onnx_path.exists()
    _ = embedder.model
    assert embedder.onnx_path.exists()
    return embedder


def test_bulk_vectors_are_the_packaged_sentence_transformers_model(reference):
    """Vectors are the packaged model's, normalised, in input order, long texts truncated like the model."""
    embedder = Embedder(precision="float32")
    ours = embedder.encode(TEXTS)
    assert ours.shape == reference.shape == (len(TEXTS), 384)
    assert np.abs(ours - reference).max() < 1e-5
    assert embedder.runtime is None  # no cache folder: questions use torch too
    assert np.abs(embedder.encode_query(TEXTS[0]) - reference[0]).max() < 1e-5


def test_question_vectors_from_the_onnx_export_match_torch(exported, reference):
    fresh = Embedder(cache_dir=exported.cache_dir)  # a new process: export on disk, torch not loaded
    ours = fresh.encode_queries(TEXTS)
    assert fresh.runtime is not None and fresh._model is None
    assert ours.dtype == np.float32 and ours.shape == reference.shape
    assert np.abs(ours - reference).max() < 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert np.abs(fresh.encode_query(TEXTS[1]) - reference[1]).max() < 1e-5
    assert fresh.encode_queries([]).shape == (0, 384)


def test_bfloat16_documents_stay_close_to_float32(exported, reference):
    """bfloat16 (the default where the CPU has it) trades exactness for speed, not meaning."""
    assert exported.bulk_precision == "bfloat16"
    ours = exported.encode(TEXTS)
    assert ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert (ours * reference).sum(axis=1).min() > 0.99
    assert np.abs(ours - reference).max() > 1e-5  # it really is another precision
    assert Embedder(precision="auto").bulk_precision in {"float32", "bfloat16"}
    with pytest.raises(ValueError, match="precision"):
        Embedder(precision="half")


def test_a_changed_model_gets_its_own_export(exported, tmp_path):
    """The export is named after the weights file, so replacing the model cannot reuse a stale export."""
    copy = tmp_path / "model"
    copy.mkdir()
    for f in exported.model_path.iterdir():
        if f.is_file():
            os.symlink(f, copy / f.name)
    (copy / "model.safetensors").unlink()
    (copy / "model.safetensors").write_bytes((exported.model_path / "model.safetensors").read_bytes()[:-1])
    other = Embedder(model_path=copy, cache_dir=exported.cache_dir)
    assert other.onnx_path != exported.onnx_path


def test_an_unusable_export_is_dropped_and_questions_fall_back_to_torch(exported, reference, tmp_path):
    broken = Embedder(cache_dir=tmp_path, precision="float32")
    broken.onnx_path.parent.mkdir(parents=True)
    broken.onnx_path.write_bytes(b"not a model")
    vector = broken.encode_query(TEXTS[0])
    assert np.abs(vector - reference[0]).max() < 1e-5
    assert broken.runtime is None
    # loading torch re-exported a usable file, which the next process picks up
    assert Embedder(cache_dir=tmp_path).runtime is not None


def test_answering_in_a_fresh_process_never_imports_torch(exported, seed_assistant):
    """The first `ask` of a process pays for onnxruntime, not for torch + transformers (seconds)."""
    code = (
        "import json, sys\n"
        "from assistant import Assistant\n"
        f"a = Assistant(index_dir={str(seed_assistant.settings.index_dir)!r}, cache_dir={str(exported.cache_dir)!r},"
        " progress=False)\n"
        "r = a.answer('Why might Russia not send S-400s?')\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'gradio') if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'cited': len(r.citations)}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"heavy": [], "cited": out["cited"]} and out["cited"] >= 1


def test_the_sentence_cache_serves_every_text_when_filled_past_its_size(exported):
    """`encode_cached` keeps `cache_size` vectors; a call that needs more than that (its own evictions)
    or several calls at once (each other's) still get every vector, equal to an uncached encoding."""
    import threading

    small = Embedder(cache_dir=exported.cache_dir, cache_size=8)
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


def test_the_grounding_check_works_past_the_cache_size(exported):
    """The check used to evict sentence vectors and then read one it had just evicted (a KeyError once
    its cache was full); it now shares the embedder's cache, whatever its size."""
    from assistant.grounding.grounder import Grounder
    from assistant.schema import Chunk, Passage

    small = Embedder(cache_dir=exported.cache_dir, cache_size=3)
    text = " ".join(f"The lighthouse of Brindlemoor was painted {c} in {1900 + i}." for i, c in enumerate("abcdefgh"))
    passages = [Passage(Chunk("c1", "a.txt", text, 0, len(text)), 0.9, dense=0.9)]
    grounder = Grounder(small)
    grounder.prepare(passages)
    grounding = grounder.ground("The lighthouse of Brindlemoor was painted in 1903 [1].", passages)
    assert grounding.claims and grounding.claims[0].supported
