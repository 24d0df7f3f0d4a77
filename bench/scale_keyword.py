"""Build a `bench/scale.py` index's keyword index from the generator's own texts, not a store scan.

Made when the store scan read documents in offset pages (~45 minutes at 875k passages); the store
now reads them by id (280 s at 1M, `bench/scale.py` times it). This stays to build the keyword index
apart from Chroma, for comparing the two (docs/scale.md).

    python bench/scale_keyword.py DIR/index
"""

from __future__ import annotations

import json
import resource
import sys
import time

from _common import DATA
from scale import PER_FILE


def main() -> int:
    from assistant import Assistant
    from assistant.ingest.chunking import chunk_id
    from assistant.ingest.loading import iter_files, load_file

    start = time.perf_counter()
    a = Assistant(index_dir=sys.argv[1], progress=False)
    count, generation = a.store.count(), a.store.generation()
    open_s = time.perf_counter() - start
    base = [c.text for p in iter_files([DATA / "squad-v2-dev" / "docs"]) for c in a.indexer.chunker.split(load_file(p))]
    ids, texts = [], []
    for f in range(count // PER_FILE):
        source, at = f"synthetic/{f:06d}.txt", 0
        for i in range(PER_FILE):
            text = f"{base[(f * PER_FILE + i) % len(base)]} (copy {f}.{i})"
            ids.append(chunk_id(source, at, at + len(text), text))
            texts.append(text)
            at += len(text) + 1
    start = time.perf_counter()
    a.store.keyword.replace_all(ids, texts, generation)
    print(
        json.dumps(
            {
                "count": count,
                "chroma_open_count_s": round(open_s, 1),
                "keyword_build_s": round(time.perf_counter() - start, 1),
                "keyword_passages": len(a.store.keyword),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
