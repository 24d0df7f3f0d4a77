import itertools

from assistant.embedding import Embedder
from assistant.ingest.chunking import Chunker, chunk_id, sentences
from assistant.schema import Document

_embedder = Embedder()


def _chunker(max_tokens=200, overlap=40):
    return Chunker(_embedder.count_tokens, max_tokens, overlap, limit=_embedder.max_seq_length)


def test_offsets_round_trip_and_budget_on_seed(seed_dir):
    for path in seed_dir.iterdir():
        text = path.read_text(encoding="utf-8")
        chunks = _chunker().split(Document(str(path), text))
        assert chunks
        for c in chunks:
            assert text[c.start : c.end] == c.text
            assert _embedder.count_tokens([c.text])[0] + 2 <= _embedder.max_seq_length


def test_junk_before_first_sentence_is_in_no_chunk(seed_dir):
    path = next(seed_dir.iterdir())
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().startswith("×")
    chunks = _chunker().split(Document(str(path), text))
    assert all("×" not in c.text for c in chunks)
    assert chunks[0].text.startswith("Amid Israel-Iran conflict")


def test_long_paragraph_is_cut_at_sentences_with_overlap():
    sentence = "The river carries sediment from the mountains to the delta every spring season. "
    text = "Title\n\n" + sentence * 40
    chunks = _chunker(max_tokens=64, overlap=20).split(Document("long.txt", text))
    assert len(chunks) > 3
    assert chunks[0].text.startswith("Title")  # a heading stays with its text
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.end  # overlap
        assert text[b.start : b.end].startswith("The river")
    for c in chunks:
        assert _embedder.count_tokens([c.text])[0] <= 64


def test_giant_token_without_spaces_still_fits():
    text = "Start. " + "x" * 5000 + " end."
    chunks = _chunker(max_tokens=100).split(Document("giant.txt", text))
    assert all(_embedder.count_tokens([c.text])[0] <= 100 for c in chunks)
    assert all(text[c.start : c.end] == c.text for c in chunks)


def test_chunk_ids_are_deterministic_and_content_based():
    text = "One sentence here. Another sentence there.\n\nA second paragraph."
    a = _chunker().split(Document("a.txt", text))
    b = _chunker().split(Document("a.txt", text))
    assert [c.id for c in a] == [c.id for c in b]
    assert a[0].id == chunk_id("a.txt", a[0].start, a[0].end, a[0].text)
    assert _chunker().split(Document("b.txt", text))[0].id != a[0].id


def test_sentence_splitter_keeps_abbreviations_together():
    text = "Dr. Smith met Mr. Jones in the U.S. capital. They talked. Then they left!"
    spans = [text[s.start : s.end] for s in sentences(text)]
    assert spans[0] == "Dr. Smith met Mr. Jones in the U.S. capital."
    assert spans[1:] == ["They talked.", "Then they left!"]


def _said(text: str, start: int = 0, end: int | None = None) -> list[str]:
    spans = sentences(text, start, end)
    for s in spans:  # exact offsets, trimmed
        assert text[s.start : s.end] == text[s.start : s.end].strip() and s.start >= start
    return [text[s.start : s.end] for s in spans]


def test_wrapped_lines_are_one_sentence_but_titles_and_items_are_not():
    text = (
        "Annual Report 2024\n"
        "The committee met in Geneva on 3 May and agreed that the budget for\n"
        "the coming year would rise by four percent. Members from Norway and\n"
        "Switzerland asked for a review of travel costs before the vote.\n"
        "- travel costs\n"
        "- staff costs\n"
        "\n"
        "Next Steps\n"
        "A review follows in June."
    )
    assert _said(text) == [
        "Annual Report 2024",
        "The committee met in Geneva on 3 May and agreed that the budget for\n"
        "the coming year would rise by four percent.",
        "Members from Norway and\nSwitzerland asked for a review of travel costs before the vote.",
        "- travel costs",
        "- staff costs",
        "Next Steps",
        "A review follows in June.",
    ]


def test_one_paragraph_per_line_keeps_lines_apart():
    long = "This line is a whole paragraph of a page converted to text, as html and markdown give it, " * 2
    text = f"{long} without a final stop\n{long}."
    assert _said(text) == [f"{long} without a final stop", f"{long}."]


def test_segmenter_slips_are_repaired():
    assert _said("It is yes or no. Feel free to ask.") == ["It is yes or no.", "Feel free to ask."]
    assert _said("1. When done, stop. 2. Then go home.") == ["1. When done, stop.", "2. Then go home."]
    assert _said("Approx. 20% of them agreed. Eq. 3 holds.") == ["Approx. 20% of them agreed.", "Eq. 3 holds."]
    assert _said("It ended.)  Then he left.") == ["It ended.)", "Then he left."]
    assert _said("Lee et al. (2019) trained a model, e.g. BERT. It worked.") == [
        "Lee et al. (2019) trained a model, e.g. BERT.",
        "It worked.",
    ]


def test_sentences_of_a_range_have_offsets_into_the_whole_text():
    text = "Préface — “Quoted.” 😀 Emoji line here. Second one!\n\nOther paragraph."
    start = text.index("😀")
    assert _said(text, start, text.index("\n")) == ["😀 Emoji line here.", "Second one!"]
