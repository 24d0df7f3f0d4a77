"""The persistent index: Chroma (dense) and BM25 (keyword), kept consistent, and incremental indexing."""
