"""The assistant, read top to bottom: question → condense → retrieve → generate → finish → cited answer.

The chain is built from langchain-core runnables; the generator is one swappable step: by default
the trained span reader (`generation.reader`: the exact words, then their sentence), and an LLM
slots in without touching retrieval; any LLM failure falls back to the offline answer with a
warning instead of an error (`generation.FallbackGenerator`). An LLM's draft is checked
against the passages before it is finished (`generation.GroundedGenerator`): what no passage
supports is listed in `Answer.unsupported`, and an answer mostly unsupported counts as a failure. `answer()` invokes the
chain and `stream()` streams the very same chain.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant.embedding import Embedder
from assistant.errors import QuestionError, describe
from assistant.grounding.citations import build_answer
from assistant.schema import Answer, Draft, IndexReport, Passage, WarmUp
from assistant.settings import Settings

History = Sequence[tuple[str, str]] | Sequence[dict]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: not text, cannot be encoded


def _text(value: str) -> str:
    """A string safe to tokenize and encode: surrogate pairs joined, lone surrogates dropped."""
    if not _SURROGATE.search(value):
        return value
    return _SURROGATE.sub(" ", value.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass"))


__all__ = ["Assistant", "QuestionError", "answer"]


class part:
    """`cached_property` with a lock: each part is built once even when several threads ask at once
    (`functools.cached_property` has had no lock since Python 3.12). One re-entrant lock per assistant,
    since parts are built from parts; building is cheap (models load lazily), so sharing it costs nothing.
    """

    def __init__(self, build):
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, owner=None) -> Any:
        if obj is None:
            return self
        try:
            return obj.__dict__[self.name]
        except KeyError:
            pass
        with obj._parts:
            if self.name not in obj.__dict__:
                obj.__dict__[self.name] = self.build(obj)
            return obj.__dict__[self.name]


class Assistant:
    """Question answering over an indexed folder of documents, with cited passages.

    Args:
        settings: Full configuration; defaults to `Settings.from_env()`.
        generator: A generator name (`reader`, `extractive`, `openai`, `llamacpp`) or a `Generator`
            (see `assistant.generation`); an LLM is checked against the passages (`grounder`) and
            wrapped so that the offline answer (the reader's) stands in when it fails.
        **overrides: Any `Settings` field, e.g. `index_dir=...`, `k=...`, `chroma_url=...`.
    """

    def __init__(self, settings: Settings | None = None, *, generator=None, **overrides):
        if isinstance(generator, str):
            overrides["generator"] = generator
        self.settings = (settings or Settings.from_env()).with_(**overrides)
        self._generator = generator if generator is not None and not isinstance(generator, str) else None
        self._ready = threading.Lock()
        self._parts = threading.RLock()
        self._checked_empty = False
        self._records: tuple[str | None, dict] = (None, {})  # (index generation, parsed records)
        self._warming: threading.Thread | None = None
        self.warmed: WarmUp | None = None  # the report of the warm-up the first question started

    # -- parts, built on first use -------------------------------------------------------------
    @part
    def embedder(self) -> Embedder:
        return Embedder(
            batch_size=self.settings.batch_size,
            cache_dir=self.settings.cache_dir,
            precision=self.settings.embed_precision,
        )

    @part
    def store(self):
        from assistant.index.store import Store
        from assistant.ingest.chunking import CHUNKER_VERSION
        from assistant.schema import IndexStamp

        s, e = self.settings, self.embedder
        stamp = IndexStamp(
            e.model_name, e.dimension, CHUNKER_VERSION, s.chunk_tokens, s.chunk_overlap_tokens, e.recorded_variant
        )
        return Store(self.settings, stamp=stamp)

    @part
    def retriever(self):
        from assistant.retrieval.hybrid import Retriever

        s = self.settings
        return Retriever(self.store, self.embedder, k=s.k, candidates=s.candidates, dense_weight=s.dense_weight)

    @part
    def indexer(self):
        from assistant.index.indexing import Indexer

        return Indexer(self.store, self.embedder, self.settings)

    @part
    def thresholds(self):
        """The decline decision's thresholds, saved with the reader model (`generation/decline.py`)."""
        from assistant.generation.decline import Thresholds
        from assistant.reading.reader import DEFAULT_MODEL_DIR

        return Thresholds.load(self.settings.reader_dir or DEFAULT_MODEL_DIR)

    @part
    def extractive(self):
        from assistant.generation.extractive import ExtractiveGenerator

        return ExtractiveGenerator(self.embedder, thresholds=self.thresholds)

    @part
    def reader(self):
        """The default generator: the trained span reader, with the extractive generator's evidence."""
        from assistant.generation.reader import ReaderGenerator
        from assistant.reading import Reader

        return ReaderGenerator(Reader(self.settings.reader_dir), self.extractive, self.thresholds)

    @part
    def grounder(self):
        """Checks an LLM's answer against the passages (the extractive generator's needs no check)."""
        from assistant.grounding.grounder import Grounder

        return Grounder(self.embedder)

    @part
    def generator(self):
        from assistant.generation import create_generator, with_fallback

        offline = self.extractive if self.settings.generator == "extractive" else self.reader
        if self._generator is not None:
            return with_fallback(self._generator, offline, self.grounder)
        return create_generator(self.settings, fallback=offline, grounder=self.grounder)

    @part
    def chain(self):
        """question (+history) → standalone query → passages → draft → cited Answer, as LCEL runnables.

        `invoke` returns the `Answer`; `stream` yields the text as it is written, then the `Answer`.
        """
        from langchain_core.runnables import RunnableLambda, RunnablePassthrough

        from assistant.respond import Respond

        return (
            RunnablePassthrough.assign(query=RunnableLambda(lambda x: self.condense(x["question"], x["history"])))
            | RunnablePassthrough.assign(
                passages=RunnableLambda(lambda x: self.retrieve(x["query"], sources=x.get("sources")))
            )
            | Respond(lambda: self.generator, self.finish)
        )

    def with_generator(self, generator) -> Assistant:
        """The same index, model and locks, answering with another generator."""
        other = Assistant(self.settings, generator=generator)
        for part in ("embedder", "store", "retriever", "indexer", "thresholds", "extractive", "reader", "grounder"):
            setattr(other, part, getattr(self, part))
        other._ready = self._ready
        return other

    # -- indexing ------------------------------------------------------------------------------
    def index(self, paths: Sequence[str | Path] | None = None, *, progress=None) -> IndexReport:
        """Index files and folders (default: the seeds folder); unchanged files cost nothing.

        `progress`, if given, is called with an `IndexProgress` at each stage (pages read, passages embedded).
        """
        return self.indexer.index(list(paths) if paths else [self.settings.seeds_dir], progress=progress)

    def ensure_index(self) -> None:
        """Build the index from the seeds folder the first time it is used empty."""
        if self._checked_empty:  # one count per process, not one per question
            return
        with self._ready:
            if not self._checked_empty and self.store.count() == 0 and Path(self.settings.seeds_dir).is_dir():
                self.index([self.settings.seeds_dir])
            self._checked_empty = True

    def documents(self) -> dict[str, int]:
        """Indexed sources and their chunk counts."""
        return {s: len(r.chunk_ids) for s, r in sorted(self.store.files().items())}

    def records(self, sources: Sequence[str] | None = None):
        """The record of each indexed document (title, authors, date, outline, overview; see
        `ingest.records`), by source; only those of `sources` when given."""
        from assistant.ingest.records import DocumentRecord

        generation = self.store.generation()  # one small read; the records are read again only after a change
        seen, found = self._records
        if generation is None or generation != seen:
            found = {s: DocumentRecord.from_json(raw) for s, raw in self.store.records().items()}
            self._records = (generation, found)
        wanted = set(sources) if sources is not None else None
        return {s: r for s, r in sorted(found.items()) if r is not None and (wanted is None or s in wanted)}

    def resolve_sources(self, names: Sequence[str] | None) -> list[str] | None:
        """The indexed sources that `names` mean (a source, or the end of its path such as a file name).

        Raises `SourceError` for a name that matches no document, or several.
        """
        from assistant.documents import resolve_sources

        if not names:
            return None
        return resolve_sources(list(names), list(self.store.files()))

    @part
    def document_answerer(self):
        from assistant.generation.documents import DocumentAnswerer
        from assistant.terms import tokenize

        return DocumentAnswerer(tokenize, self.store.chunk_at)

    def remove(self, source: str) -> int:
        """Drop a document from the index; returns how many chunks went with it."""
        return self.indexer.remove(source)

    # -- asking --------------------------------------------------------------------------------
    def retrieve(self, query: str, k: int | None = None, sources: Sequence[str] | None = None) -> list[Passage]:
        """The best passages for a query; with `sources` (indexed source names), of those documents only."""
        return self.retriever.retrieve(query, k, sources=list(sources) if sources else None)

    def as_retriever(self, k: int | None = None):
        """This assistant's hybrid search as a LangChain `BaseRetriever` (see `assistant.retrieval.retriever`)."""
        from assistant.retrieval.retriever import AssistantRetriever

        return AssistantRetriever(assistant=self, k=k)

    def answer(self, question: str, history: History | None = None, sources: Sequence[str] | None = None) -> Answer:
        """Answer from the documents, citing the passages used; declines when they do not say.

        `sources` limits the answer to some documents (source names or file names, see `resolve_sources`).
        """
        question = self._begin(question)
        scope = self.resolve_sources(sources)
        pairs = _pairs(history)
        if (about := self.about_document(question, pairs, scope)) is not None:
            return about
        return self.chain.invoke({"question": question, "history": pairs, "sources": scope})

    def stream(
        self, question: str, history: History | None = None, sources: Sequence[str] | None = None
    ) -> Iterator[str | Answer]:
        """Yield the answer's text as it is produced, then the finished `Answer` as the last item."""
        question = self._begin(question)
        scope = self.resolve_sources(sources)
        pairs = _pairs(history)
        if (about := self.about_document(question, pairs, scope)) is not None:
            yield about.text
            yield about
            return
        yield from self.chain.stream({"question": question, "history": pairs, "sources": scope})

    def about_document(self, question: str, history: list[tuple[str, str]], sources: list[str] | None) -> Answer | None:
        """The answer to a question about a whole document (who wrote it, what it is about, ...) from its
        record, or None when the question is not one (see `generation.documents`)."""
        from assistant.generation.documents import classify

        if classify(question) is None:  # most questions: no record is read
            return None
        records = list(self.records(sources).values())
        reply = self.document_answerer.answer(question, records, history)
        if reply is None:
            return None
        return build_answer(reply.draft, reply.passages, generator="documents")

    def warm_up(self) -> WarmUp:
        """Load every heavy part now (the question encoder and its ONNX export, the reader, an LLM's
        client or local server) and say what failed, instead of the first question finding out.

        Each part's own `warm_up` raises what it cannot load; here each failure becomes one line
        (`WarmUp.failed`), so a server can print them and go on (a question then fails the same way).
        """
        loaded, failed = [], {}
        parts = {"embedding model": lambda: self.embedder, "generator": lambda: self.generator}
        for name, get in parts.items():
            try:
                get().warm_up()
                loaded.append(name)
            except Exception as exc:  # every part's failure is reported, none stops the others
                failed[name] = describe(exc)
        return WarmUp(tuple(loaded), failed)

    def _begin(self, question: str) -> str:
        question = self.check(question)
        self._warm_up_meanwhile()  # load the models while the index opens
        self.ensure_index()
        return question

    def _warm_up_meanwhile(self) -> None:
        """Start `warm_up` once, in the background; its report is kept in `warmed` (the question that
        needs a part that failed raises the same error itself)."""
        if self._warming is not None:
            return
        with self._ready:
            if self._warming is None:
                self._warming = threading.Thread(target=self._keep_warm_up, name="warm-up", daemon=True)
                self._warming.start()

    def _keep_warm_up(self) -> None:
        self.warmed = self.warm_up()

    def check(self, question: str) -> str:
        """Clean a question and refuse what cannot be answered, with a reason."""
        if not isinstance(question, str):
            raise QuestionError("The question must be text.")
        question = " ".join(_CONTROL.sub(" ", _text(question)).split())
        if not question:
            raise QuestionError("Please ask a question: the text was empty.")
        if len(question) > self.settings.max_question_chars:
            raise QuestionError(
                f"The question is too long ({len(question):,} characters; "
                f"the limit is {self.settings.max_question_chars:,})."
            )
        return question

    def condense(self, question: str, history: list[tuple[str, str]]) -> str:
        """A standalone query for a follow-up: the generator's rewrite (an LLM's, or the heuristic)."""
        return self.generator.condense(question, history)

    def finish(self, draft: Draft, passages: list[Passage], question: str = "") -> Answer:
        """The last step of every answer: the draft's `[n]` checked against the passages and renumbered,
        each cited passage quoted, its unsupported sentences (an LLM's, found by `GroundedGenerator`)
        located in the final text; declined when it does not say what the question asks (`unstated`)."""
        from assistant.generation import DECLINE_TEXT
        from assistant.generation.decline import unstated

        name = draft.generator or self.generator.name
        if unstated(question, draft, passages):
            draft = Draft(DECLINE_TEXT, abstained=True, generator=draft.generator, warning=draft.warning)
        return build_answer(draft, passages, generator=name, warning=draft.warning)


def _pairs(history: History | None) -> list[tuple[str, str]]:
    """Accept (user, assistant) pairs or chat messages ({"role", "content"}) and return pairs."""
    if not history:
        return []
    pairs: list[tuple[str, str]] = []
    pending: str | None = None
    for item in history:
        if isinstance(item, dict):
            role, content = item.get("role"), item.get("content")
            content = _text(content) if isinstance(content, str) else ""
            if role == "user":
                pending = content
            elif role == "assistant" and pending is not None:
                pairs.append((pending, content))
                pending = None
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pairs.append((_text(str(item[0] or "")), _text(str(item[1] or ""))))
    if pending is not None:
        pairs.append((pending, ""))
    return pairs


_default: Assistant | None = None
_default_lock = threading.Lock()


def default_assistant() -> Assistant:
    global _default
    with _default_lock:
        if _default is None:
            _default = Assistant()
        return _default


def answer(question: str, *, history: History | None = None) -> Answer:
    """Answer from the default index (ASSISTANT_INDEX_DIR, else `index/` in the project folder, wherever you
    run from), built from `seeds/` the first time it is empty."""
    return default_assistant().answer(question, history=history)
