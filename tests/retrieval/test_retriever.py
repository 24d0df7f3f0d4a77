"""`Assistant.as_retriever()` in a user-style LCEL chain: retriever | format | chat model.

The retriever and index are real; only the chat model is LangChain's fake one (chain wiring).
"""

from __future__ import annotations

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnablePassthrough


def test_retriever_documents_are_the_hybrid_search_results(seed_assistant, seed_dir):
    retriever = seed_assistant.as_retriever(k=3)
    assert isinstance(retriever, BaseRetriever)
    question = "Why might Russia not send S-400s?"
    docs = retriever.invoke(question)
    passages = seed_assistant.retrieve(question, 3)
    assert len(docs) == 3 and [d.page_content for d in docs] == [p.chunk.text for p in passages]
    text = (seed_dir / "putin-pezeshkian-ashgabat-s400.txt").read_text(encoding="utf-8")
    for d in docs:
        assert isinstance(d, Document)
        assert set(d.metadata) == {"source", "start", "end", "page", "score"}
        assert text[d.metadata["start"] : d.metadata["end"]] == d.page_content
        assert d.metadata["source"].endswith("putin-pezeshkian-ashgabat-s400.txt") and 0 <= d.metadata["score"] <= 1
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    assert len(seed_assistant.as_retriever().invoke(question)) == seed_assistant.settings.k


def test_retriever_in_a_user_lcel_chain(seed_assistant):
    seen: list[str] = []

    def format_docs(docs: list[Document]) -> str:
        seen.extend(d.page_content for d in docs)
        return "\n\n".join(f"[{i}] {d.page_content}" for i, d in enumerate(docs, 1))

    prompt = ChatPromptTemplate.from_messages([("human", "Context:\n{context}\n\nQuestion: {question}")])
    model = FakeListChatModel(responses=["Because of Israel [1]."])
    chain = (
        {"context": seed_assistant.as_retriever(k=2) | format_docs, "question": RunnablePassthrough()}
        | prompt
        | model
        | StrOutputParser()
    )
    assert chain.invoke("Who said Russia wouldn't want to antagonise Israel?") == "Because of Israel [1]."
    assert len(seen) == 2 and any("Israel" in s for s in seen)


def test_retriever_refuses_an_empty_query(seed_assistant):
    import pytest

    from assistant.errors import QuestionError

    with pytest.raises(QuestionError):
        seed_assistant.as_retriever().invoke("   ")
