"""A small BM25 index (pure): identifier-aware tokenizing (snake_case, camelCase), weighted fields, top-k."""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import compress
from operator import add

__all__ = ["BM25Index", "tokenize"]

# Runs of letters or digits; camelCase and acronyms split ("parseHTTPResponse2": parse, http, response, 2).
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
MAX_QUERY_TERMS = 32  # a long query is searched with its most telling terms
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

    Built once and never changed (an index is replaced, not updated). Each posting holds the term's
    whole contribution to the document's score (idf included), so a search only adds them up: dict
    and set operations do the per-document work in C, which keeps 5,000 documents well under 2 ms.
    """

    def __init__(self, documents: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.size = len(documents)
        lengths = [len(doc) for doc in documents]
        average = (sum(lengths) / self.size) if self.size else 0.0
        weights: dict[str, dict[int, float]] = {}
        for doc_id, doc in enumerate(documents):
            norm = k1 * (1 - b + b * lengths[doc_id] / average) if average else k1
            for term, count in Counter(doc).items():
                weights.setdefault(term, {})[doc_id] = count * (k1 + 1) / (count + norm)
        self.postings: dict[str, dict[int, float]] = {}
        for term, docs in weights.items():
            idf = math.log(1 + (self.size - len(docs) + 0.5) / (len(docs) + 0.5))
            self.postings[term] = {doc_id: idf * weight for doc_id, weight in docs.items()}
        self.ceiling = {term: max(postings.values()) for term, postings in self.postings.items()}

    def scores(self, query: str, top: int | None = None) -> dict[int, float]:
        """Documents containing a query term, with their scores: all of them, or (with `top`) at least
        every document that can be among the best `top` (MaxScore pruning; their scores are exact)."""
        found = sorted(  # the most telling terms first; a fixed order keeps the sums reproducible
            ((self.ceiling[t], t) for t in set(tokenize(query)) if t in self.postings), reverse=True
        )[:MAX_QUERY_TERMS]
        if not found:
            return {}
        left = sum(ceiling for ceiling, _ in found)  # what the terms not yet added can still give
        scores: dict[int, float] = {}
        pruning = False
        for ceiling, term in found:
            postings = self.postings[term]
            if top is not None and not pruning and len(scores) >= top:
                # a document none of the terms so far contain scores at most `left`: below the
                # `top`-th partial score (which only grows), it cannot be among the best
                pruning = left < heapq.nlargest(top, scores.values())[-1]
            shared = scores.keys() & postings.keys()
            sums = list(map(add, map(scores.__getitem__, shared), map(postings.__getitem__, shared)))
            scores.update(zip(shared, sums, strict=True))
            if not pruning:
                fresh = postings.keys() - shared
                scores.update(zip(fresh, map(postings.__getitem__, fresh), strict=True))
            left -= ceiling
        return scores

    def search(
        self, query: str, limit: int = 10, allowed: Callable[[int], bool] | None = None
    ) -> list[tuple[int, float]]:
        """The best `limit` (document, score) pairs for `query`, best first (ties: lower id first)."""
        # Most documents are usually allowed: rank the best few (a margin for the disallowed) first,
        # and everything only when that is not enough.
        margin = limit if allowed is None else limit * 4
        scores = self.scores(query, margin)
        ranked = _best(scores, margin)
        picked = ranked if allowed is None else [item for item in ranked if allowed(item[0])]
        if len(picked) >= limit or allowed is None:
            return picked[:limit]
        every = self.scores(query)
        return [item for item in _best(every, len(every)) if allowed(item[0])][:limit]


def _best(scores: dict[int, float], count: int) -> list[tuple[int, float]]:
    """The `count` best (document, score) pairs (more on ties at the cut), best first."""
    if len(scores) > count:
        threshold = heapq.nlargest(count, scores.values())[-1]
        docs = compress(scores, map(threshold.__le__, scores.values()))
        items = [(doc_id, scores[doc_id]) for doc_id in docs]
    else:
        items = list(scores.items())
    items.sort(key=lambda item: (-item[1], item[0]))
    return items
