"""Item search: free text in Korean or English → official dictionary items, ranked."""

from server.search.service import (
    ItemSearch,
    SearchHit,
    SearchQueryError,
    SearchQueryProblem,
    SearchResult,
    build_item_search,
    get_item_search,
)

__all__ = [
    "ItemSearch",
    "SearchHit",
    "SearchQueryError",
    "SearchQueryProblem",
    "SearchResult",
    "build_item_search",
    "get_item_search",
]
