"""A small BM25 index (pure): identifier-aware tokenizing (snake_case, camelCase), weighted fields, top-k."""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence

__all__ = ["BM25Index", "tokenize"]

# Runs of letters or digits; camelCase and acronyms split ("parseHTTPResponse2": parse, http, response, 2).
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
STOPWORDS = frozenset(
    "a an and are as at be by for from in into is it its of on or that the this to with".split()
)


def _stem(word: str) -> str:
    """A light plural fold, enough for tool text: files -> file, repositories -> repository."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-cased terms of `text`, identifiers split at `_`, `-`, `.`, `/` and case changes."""
    terms = []
    for word in _WORDS.findall(text):
        lowered = word.lower()
        if lowered not in STOPWORDS:
            terms.append(_stem(lowered))
    return terms


class BM25Index:
    """Okapi BM25 over documents given as term lists (weight a field by repeating its terms).

    Built once and never changed (an index is replaced, not updated). `search` scores only the
    documents that contain a query term, then keeps the best `limit` of those `allowed`.
    """

    def __init__(self, documents: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.size = len(documents)
        lengths = [len(doc) for doc in documents]
        average = (sum(lengths) / self.size) if self.size else 0.0
        postings: dict[str, list[tuple[int, float]]] = {}
        for doc_id, doc in enumerate(documents):
            norm = k1 * (1 - b + b * lengths[doc_id] / average) if average else k1
            for term, count in Counter(doc).items():
                # the per-document part of the BM25 term weight, precomputed: tf (k1 + 1) / (tf + norm)
                postings.setdefault(term, []).append((doc_id, count * (k1 + 1) / (count + norm)))
        self.postings = {term: tuple(entries) for term, entries in postings.items()}
        self.idf = {
            term: math.log(1 + (self.size - len(entries) + 0.5) / (len(entries) + 0.5))
            for term, entries in self.postings.items()
        }

    def search(
        self, query: str, limit: int = 10, allowed: Callable[[int], bool] | None = None
    ) -> list[tuple[int, float]]:
        """The best `limit` (document, score) pairs for `query`, best first (ties: lower id first)."""
        scores: dict[int, float] = {}
        for term in set(tokenize(query)):
            idf = self.idf.get(term)
            if idf is None:
                continue
            for doc_id, weight in self.postings[term]:
                scores[doc_id] = scores.get(doc_id, 0.0) + idf * weight
        if allowed is None:
            return heapq.nsmallest(limit, scores.items(), key=_best_first)
        # Most documents are usually allowed: check the best few first, everything only if that is short.
        best = heapq.nsmallest(limit * 4, scores.items(), key=_best_first)
        picked = [item for item in best if allowed(item[0])][:limit]
        if len(picked) == limit or len(best) == len(scores):
            return picked
        return [item for item in sorted(scores.items(), key=_best_first) if allowed(item[0])][:limit]


def _best_first(item: tuple[int, float]) -> tuple[float, int]:
    return -item[1], item[0]
