"""Precomputes the item embeddings item search ships with.

    .venv/bin/python scripts/build_search_index.py

Embeds every knowledge-base item (names in both languages and common aliases) with the
bundled multilingual-e5-small model and writes ``server/search/data/item_vectors.npy``
(float16) with a manifest holding its SHA-256 and a fingerprint of the embedded texts. Run it
after scripts/build_knowledge.py; the server refuses stale vectors and embeds at start-up
instead (a few seconds), and the tests fail until they are rebuilt.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.knowledge.kb import KnowledgeBase  # noqa: E402
from server.search.embeddings import (  # noqa: E402
    VECTORS_FILE,
    Embedder,
    passage_text,
    save_vectors,
)


def main() -> int:
    kb = KnowledgeBase.load()
    items = sorted(kb.items.values(), key=lambda i: i.id)
    started = time.perf_counter()
    matrix = Embedder().passages([passage_text(item) for item in items])
    elapsed = time.perf_counter() - started
    save_vectors(items, matrix)
    print(
        f"embedded {len(items)} items in {elapsed:.1f} s "
        f"({1000 * elapsed / len(items):.1f} ms each) -> {VECTORS_FILE.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
