"""The trained extractive reader, with the model shipped in assistant/reading/model (no fakes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.generation.decline import Thresholds
from assistant.reading import Reader, ReaderError
from assistant.reading.reader import DEFAULT_MODEL_DIR, trim, units
from assistant.reading.windows import load_tokenizer, make_windows

ROOT = Path(__file__).resolve().parents[2]
ARTICLE = ROOT / "seeds" / "putin-pezeshkian-ashgabat-s400.txt"
UNRELATED = (
    "Photosynthesis is the process by which green plants use sunlight to make sugars from carbon dioxide and "
    "water. It takes place mainly in the leaves, inside chloroplasts, and releases oxygen as a by-product."
)


@pytest.fixture(scope="module")
def reader() -> Reader:
    r = Reader()
    r.warm_up()
    return r


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    blocks = [b.strip() for b in ARTICLE.read_text(encoding="utf-8").split("\n\n")]
    return [b for b in blocks if len(b.split()) > 3]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        pytest.param(
            "Who said Russia wouldn't want to antagonise Israel?",
            "Stephen Hall",
            # Known miss of the shipped model: "Stephen Hall" is its best span over all paragraphs, but with
            # probability 0.44, under the model's own threshold (0.593), so it does not count as an answer.
            marks=pytest.mark.xfail(strict=True, reason="shipped reader is not sure enough of the right span"),
        ),
        ("Where are Putin and Pezeshkian meeting?", "Ashgabat"),
        ("When will Putin meet Pezeshkian?", "Friday"),
    ],
)
def test_answers_on_the_bundled_article(reader, paragraphs, question, expected):
    result = reader.read(question, paragraphs)
    assert result.best is not None
    assert expected in result.best.text and len(result.best.text) < 4 * len(expected), result.best
    assert result.answer_probability >= Thresholds.load(DEFAULT_MODEL_DIR).short_at


def test_spans_are_exact_substrings_of_their_passage(reader, paragraphs):
    questions = ["Who is Yury Ushakov?", "What has Iran supplied to Russia?", "What did Ettelaat demand?"]
    for question in questions:
        result = reader.read(question, paragraphs)
        assert len(result.spans) == len(paragraphs)
        for span in result.spans:
            assert span.text
            assert paragraphs[span.passage_index][span.start : span.end] == span.text
            assert 0.0 <= span.probability <= 1.0
        assert result.best == max(result.spans, key=lambda s: s.probability)


def test_an_answer_in_the_second_window_of_a_long_passage_is_found(reader):
    filler = " ".join(
        f"In {year}, the town council of Brindlemoor debated repairs to the old harbour wall and the library roof."
        for year in range(1900, 1912)
    )
    passage = filler + " The lighthouse keeper of Brindlemoor was Agatha Moorcombe, who lived there alone."
    tok = load_tokenizer(DEFAULT_MODEL_DIR / "tokenizer.json", reader.max_length, reader.stride)
    windows = make_windows(tok, "Who was the lighthouse keeper of Brindlemoor?", [passage])
    assert len(windows) == 2
    assert windows[0].context_range[1] < passage.index("Agatha") < windows[1].context_range[1]
    result = reader.read("Who was the lighthouse keeper of Brindlemoor?", [passage])
    assert result.best.text == "Agatha Moorcombe"
    assert result.best.start == passage.index("Agatha Moorcombe")


def test_an_unrelated_passage_gets_a_low_answer_probability(reader, paragraphs):
    question = "Where are Putin and Pezeshkian meeting?"
    right = reader.read(question, [p for p in paragraphs if "Ashgabat on Friday" in p])
    wrong = reader.read(question, [UNRELATED])
    assert wrong.answer_probability < right.answer_probability
    assert wrong.answer_probability < Thresholds.load(DEFAULT_MODEL_DIR).short_at <= right.answer_probability


def test_blank_and_empty_inputs(reader):
    assert reader.read("   ", [UNRELATED]).best is None
    assert reader.read("What do plants make?", []).best is None
    result = reader.read("What do plants make from carbon dioxide and water?", ["", UNRELATED])
    assert [s.passage_index for s in result.spans] == [1]


@pytest.fixture
def model_copy(tmp_path) -> Path:
    for f in DEFAULT_MODEL_DIR.iterdir():
        (tmp_path / f.name).symlink_to(f)
    return tmp_path


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json", "config.json"])
def test_a_missing_model_file_is_one_clear_error(model_copy, name):
    (model_copy / name).unlink()
    with pytest.raises(ReaderError, match=f"missing: .*{name}"):
        Reader(model_copy).read("Who?", [UNRELATED])


@pytest.mark.parametrize("name", ["model.onnx", "tokenizer.json", "config.json"])
def test_a_corrupt_model_file_is_one_clear_error(model_copy, name):
    (model_copy / name).unlink()
    (model_copy / name).write_bytes(b"\x00not a model\xff" * 10)
    with pytest.raises(ReaderError, match=f"corrupt or unreadable: .*{name}"):
        Reader(model_copy).warm_up()


def test_reading_does_not_import_torch():
    code = (
        "import sys\n"
        "from assistant.reading import Reader\n"
        "r = Reader()\n"
        "r.read('What do plants release?', ['Plants release oxygen.'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_model_ships_as_package_data():
    import tomllib

    shipped = {f.name for f in DEFAULT_MODEL_DIR.iterdir()}
    assert {"model.onnx", "tokenizer.json", "config.json", "MODEL_CARD.md"} <= shipped
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = data["assistant.reading"]
    for f in DEFAULT_MODEL_DIR.iterdir():
        assert any(f.match(p.split("/")[-1]) for p in patterns), f


def test_units_are_paragraphs_with_short_ones_joined_to_the_next():
    head = "Putin meets Pezeshkian today"
    body = " ".join(f"word{i}" for i in range(25))
    tail = "Short closing line."
    text = f"{head}\n\n{body}\n\n{body}\n\n{tail}\n"
    got = [text[lo:hi] for lo, hi in units(text)]
    assert got == [f"{head}\n\n{body}", f"{body}\n\n{tail}"]
    assert units("one line without blank lines") == [(0, 28)]
    assert units("   ") == []


def test_spans_of_a_later_paragraph_keep_passage_offsets(reader):
    filler = " ".join(["The weather was mild and the markets were calm that week."] * 3)
    text = f"{filler}\n\n{filler}\n\nThe harbour of Pellmore was built by Agatha Brindle in 1847."
    span = reader.read("Who built the harbour of Pellmore?", [text]).best
    assert span is not None and text[span.start : span.end] == span.text and "Agatha Brindle" in span.text


@pytest.mark.parametrize(
    ("text", "span", "expected"),
    [
        ("called “categories” in", "categories”", "categories"),  # a closing quote taken along
        ("(1990", "(1990", "1990"),
        ("Paris, ", "Paris, ", "Paris"),
        ('"Ode', '"Ode', "Ode"),
        ("“The Raven”", "“The Raven”", "“The Raven”"),  # paired: kept
        ("O’Neill", "O’Neill", "O’Neill"),
        ("”", "”", ""),
    ],
)
def test_trim_drops_unpaired_quotes_brackets_and_trailing_commas(text, span, expected):
    lo = text.index(span)
    start, end = trim(text, lo, lo + len(span))
    assert text[start:end] == expected
