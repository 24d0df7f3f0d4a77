"""The assistant's hybrid search as a LangChain retriever, to drop into a user's own chain.

`Assistant.as_retriever()` returns it: `retriever.invoke("question")` gives `langchain_core`
`Document`s whose `page_content` is the passage and whose metadata says where it is (source,
start, end, page) and how relevant it is (score, 0..1; higher is better).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict


class AssistantRetriever(BaseRetriever):
    """Hybrid (dense + BM25) search over the assistant's index; builds it from the seeds when empty.

    Args:
        assistant: The `Assistant` whose index is searched.
        k: Passages per query (None: the assistant's `k` setting).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    assistant: Any
    k: int | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        query = self.assistant.check(query)
        self.assistant.ensure_index()
        return [
            Document(
                page_content=p.chunk.text,
                metadata={
                    "source": p.chunk.source,
                    "start": p.chunk.start,
                    "end": p.chunk.end,
                    "page": p.chunk.page,
                    "score": p.score,
                },
            )
            for p in self.assistant.retrieve(query, self.k)
        ]
