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
from functools import cached_property
from pathlib import Path

from assistant.embedding import Embedder
from assistant.errors import QuestionError
from assistant.grounding.citations import build_answer
from assistant.schema import Answer, Draft, IndexReport, Passage
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
        self._checked_empty = False

    # -- parts, built on first use -------------------------------------------------------------
    @cached_property
    def embedder(self) -> Embedder:
        return Embedder(
            batch_size=self.settings.batch_size,
            cache_dir=self.settings.cache_dir,
            precision=self.settings.embed_precision,
        )

    @cached_property
    def store(self):
        from assistant.index.store import Store
        from assistant.ingest.chunking import CHUNKER_VERSION
        from assistant.schema import IndexStamp

        stamp = IndexStamp(self.embedder.model_name, self.embedder.dimension, CHUNKER_VERSION)
        return Store(self.settings, stamp=stamp)

    @cached_property
    def retriever(self):
        from assistant.retrieval.hybrid import Retriever

        s = self.settings
        return Retriever(self.store, self.embedder, k=s.k, candidates=s.candidates, dense_weight=s.dense_weight)

    @cached_property
    def indexer(self):
        from assistant.index.indexing import Indexer

        return Indexer(self.store, self.embedder, self.settings)

    @cached_property
    def extractive(self):
        from assistant.generation.extractive import ExtractiveGenerator

        return ExtractiveGenerator(self.embedder)

    @cached_property
    def reader(self):
        """The default generator: the trained span reader, with the extractive generator's evidence."""
        from assistant.generation.reader import ReaderGenerator
        from assistant.reading import Reader

        return ReaderGenerator(Reader(self.settings.reader_dir), self.extractive)

    @cached_property
    def grounder(self):
        """Checks an LLM's answer against the passages (the extractive generator's needs no check)."""
        from assistant.grounding.grounder import Grounder

        return Grounder(self.embedder)

    @cached_property
    def generator(self):
        from assistant.generation import create_generator, with_fallback

        offline = self.extractive if self.settings.generator == "extractive" else self.reader
        if self._generator is not None:
            return with_fallback(self._generator, offline, self.grounder)
        return create_generator(self.settings, fallback=offline, grounder=self.grounder)

    @cached_property
    def chain(self):
        """question (+history) → standalone query → passages → draft → cited Answer, as LCEL runnables.

        `invoke` returns the `Answer`; `stream` yields the text as it is written, then the `Answer`.
        """
        from langchain_core.runnables import RunnableLambda, RunnablePassthrough

        from assistant.respond import Respond

        return (
            RunnablePassthrough.assign(query=RunnableLambda(lambda x: self.condense(x["question"], x["history"])))
            | RunnablePassthrough.assign(passages=RunnableLambda(lambda x: self.retrieve(x["query"])))
            | Respond(lambda: self.generator, self.finish)
        )

    def with_generator(self, generator) -> Assistant:
        """The same index, model and locks, answering with another generator."""
        other = Assistant(self.settings, generator=generator)
        for part in ("embedder", "store", "retriever", "indexer", "extractive", "reader", "grounder"):
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

    def remove(self, source: str) -> int:
        """Drop a document from the index; returns how many chunks went with it."""
        return self.indexer.remove(source)

    # -- asking --------------------------------------------------------------------------------
    def retrieve(self, query: str, k: int | None = None) -> list[Passage]:
        return self.retriever.retrieve(query, k)

    def as_retriever(self, k: int | None = None):
        """This assistant's hybrid search as a LangChain `BaseRetriever` (see `assistant.retrieval.retriever`)."""
        from assistant.retrieval.retriever import AssistantRetriever

        return AssistantRetriever(assistant=self, k=k)

    def answer(self, question: str, history: History | None = None) -> Answer:
        """Answer from the documents, citing the passages used; declines when they do not say."""
        question = self._begin(question)
        return self.chain.invoke({"question": question, "history": _pairs(history)})

    def stream(self, question: str, history: History | None = None) -> Iterator[str | Answer]:
        """Yield the answer's text as it is produced, then the finished `Answer` as the last item."""
        question = self._begin(question)
        yield from self.chain.stream({"question": question, "history": _pairs(history)})

    def _begin(self, question: str) -> str:
        question = self.check(question)
        self.embedder.preload()  # load the question encoder (and the reader) while the index opens
        self.generator.preload()
        self.ensure_index()
        return question

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

    def finish(self, draft: Draft, passages: list[Passage]) -> Answer:
        """The last step of every answer: the draft's `[n]` checked against the passages and renumbered,
        each cited passage quoted, its unsupported sentences (an LLM's, found by `GroundedGenerator`)
        located in the final text."""
        name = draft.generator or self.generator.name
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
