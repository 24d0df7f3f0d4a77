"""Finding passages for a question: dense and keyword search fused, and the LangChain retriever."""
