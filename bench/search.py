"""Tool search benchmark: BM25 search latency over N synthetic tools (target p50 <= 2 ms at 5,000) and the
index's memory.

    python bench/search.py                 # 5,000 tools, 2,000 queries
    python bench/search.py --quick         # 500 tools, 100 queries (what tests/test_bench.py runs)
    python bench/search.py --tools 20000 --strict   # exit 3 when p50 misses the target

Each query goes through what the `search_tools` meta-tool does (index search with a visibility check per
candidate, summaries, the JSON text) without the transport. The last line of output is a JSON report.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from mcpmux.relay.toolsearch import CatalogIndex, Entry, search

TARGET_P50_MS = 2.0
SERVERS = 20
VERBS = "get list create update delete search find read write send fetch move copy sync run".split()


def vocabulary(rng: random.Random, size: int) -> list[str]:
    """Pronounceable made-up words (distinct), so that term frequencies follow only our sampling."""
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    words: set[str] = set()
    while len(words) < size:
        length = rng.randint(2, 4)
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(length)))
    return sorted(words)


def zipf_sample(rng: random.Random, words: list[str], count: int) -> list[str]:
    """Words drawn with Zipf-like weights (a few common words, a long tail), like real descriptions."""
    return rng.choices(words, weights=[1 / (rank + 1) for rank in range(len(words))], k=count)


def synthetic_tools(count: int, seed: int = 18) -> list[Entry]:
    rng = random.Random(seed)
    words = vocabulary(rng, 3000)
    entries = []
    for index in range(count):
        server = f"server{index % SERVERS}"
        name = f"{rng.choice(VERBS)}_{'_'.join(zipf_sample(rng, words, rng.randint(1, 2)))}_{index}"
        arguments = {arg: {"type": "string"} for arg in zipf_sample(rng, words, rng.randint(1, 5))}
        tool = {
            "name": name,
            "description": " ".join(zipf_sample(rng, words, rng.randint(8, 40))).capitalize() + ".",
            "inputSchema": {"type": "object", "properties": arguments},
        }
        if index % 3 == 0:
            tool["title"] = " ".join(zipf_sample(rng, words, 3)).title()
        published = f"{server}__{name}"
        entries.append(Entry(published, server, tool, {**tool, "name": published}))
    return entries


def queries(count: int, entries: list[Entry], seed: int = 7) -> list[str]:
    """Queries of 1-5 words: half from a random tool's description (a findable intent), half random."""
    rng = random.Random(seed)
    words = vocabulary(random.Random(18), 3000)
    out = []
    for index in range(count):
        if index % 2 == 0:
            described = str(rng.choice(entries).presented["description"]).rstrip(".").split()
            out.append(" ".join(rng.sample(described, min(len(described), rng.randint(1, 5)))))
        else:
            out.append(" ".join(zipf_sample(rng, words, rng.randint(1, 5))))
    return out


def index_memory_bytes(entries: list[Entry]) -> int:
    """What building the index keeps allocated (the entries themselves excluded)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = CatalogIndex(entries)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del index
    return after - before


def measure(tool_count: int, query_count: int) -> dict[str, Any]:
    entries = synthetic_tools(tool_count)
    started = time.perf_counter()
    index = CatalogIndex(entries)
    build_ms = (time.perf_counter() - started) * 1000
    hidden = {entry.name for entry in entries[::10]}  # a token scope that hides a tenth of the tools

    def visible(entry: Entry) -> bool:
        return entry.name not in hidden

    samples, found = [], 0
    for query in queries(query_count, entries):
        started = time.perf_counter()
        result = search(index, {"query": query, "limit": 8}, visible)
        samples.append((time.perf_counter() - started) * 1000)
        found += len(result["structuredContent"]["tools"])
    samples.sort()
    return {
        "tools": tool_count,
        "queries": query_count,
        "results_per_query": round(found / query_count, 2),
        "build_ms": round(build_ms, 1),
        "index_mib": round(index_memory_bytes(entries) / 2**20, 2),
        "p50_ms": round(statistics.median(samples), 4),
        "p90_ms": round(samples[int(len(samples) * 0.9)], 4),
        "p99_ms": round(samples[int(len(samples) * 0.99)], 4),
        "max_ms": round(samples[-1], 4),
        "target_p50_ms": TARGET_P50_MS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tools", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="500 tools, 100 queries")
    parser.add_argument("--strict", action="store_true", help="exit 3 when p50 misses the target")
    args = parser.parse_args(argv)
    tools, count = (500, 100) if args.quick else (args.tools, args.queries)
    report = measure(tools, count)
    print(
        f"{report['tools']} tools, {report['queries']} queries: p50 {report['p50_ms']} ms "
        f"(target <= {TARGET_P50_MS}), p90 {report['p90_ms']} ms, p99 {report['p99_ms']} ms, "
        f"max {report['max_ms']} ms; index {report['index_mib']} MiB, built in {report['build_ms']} ms; "
        f"{report['results_per_query']} results per query"
    )
    print(json.dumps(report))
    return 3 if args.strict and report["p50_ms"] > TARGET_P50_MS else 0


if __name__ == "__main__":
    sys.exit(main())
