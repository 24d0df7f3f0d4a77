"""The trained extractive reader: answer spans in passages, or "no answer" (issue #12).

Only ``reader`` and ``windows`` are imported here (onnxruntime, tokenizers, numpy); training code
(``train``, ``data``) and torch are never imported by answering.
"""

from assistant.reading.reader import AnswerSpan, Reader, ReaderError, ReaderResult

__all__ = ["AnswerSpan", "Reader", "ReaderError", "ReaderResult"]
