"""Index build time, memory and query latency on a synthetic catalogue of N guides.

The synthetic guides are the bundled ones re-issued for many made-up districts (so every
title is distinct and realistic in length and vocabulary). The same code path as
`knowledge build-index` encodes them and picks the FAISS index type by size; the manifest
records which. Prints a table and writes results/bench_scale.json.

    .venv/actions/bin/python scripts/bench_scale.py --guides 100000
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.embedding.encoder import SentenceTransformerEncoder  # noqa: E402
from bot.evaluate import DEFAULT_QUESTIONS, load_questions  # noqa: E402
from bot.index import LoadedIndex, build_index  # noqa: E402
from bot.knowledge.base import KnowledgeBase  # noqa: E402
from bot.retrieval import Retriever  # noqa: E402
from bot.settings import load_settings  # noqa: E402

DISTRICTS = [f"{a}{b}区" for a in "东西南北中新老上下前后左右" for b in "山水田林湖城港湾岭洲桥园溪海河江"]


def synthetic(kb: KnowledgeBase, count: int) -> KnowledgeBase:
    base = [replace(g, aliases=(), questions=(), related=()) for g in kb]
    out = []
    for i in range(count):
        guide = base[i % len(base)]
        district = DISTRICTS[(i // len(base)) % len(DISTRICTS)]
        out.append(replace(guide, id=f"syn-{i}", title=f"{guide.title}（{district}）", region=district))
    return KnowledgeBase.from_guides(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guides", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_scale.json")
    args = parser.parse_args()
    settings = load_settings()
    kb = synthetic(KnowledgeBase.load(settings.knowledge_dir), args.guides)
    encoder = SentenceTransformerEncoder(settings.model_dir, settings.max_tokens)
    index_dir = ROOT / "var" / f"bench-index-{args.guides}"
    started = time.perf_counter()
    manifest = build_index(kb, encoder, index_dir, fingerprint="synthetic", batch_size=settings.encode_batch,
                           log=lambda m: print(m, flush=True))
    build_s = time.perf_counter() - started
    rss_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    loaded = LoadedIndex.load(index_dir)
    retriever = Retriever(loaded, encoder, settings)
    questions = [q.question for q in load_questions(DEFAULT_QUESTIONS)][: args.queries]
    retriever.search("预热")
    times = []
    for question in questions:
        t = time.perf_counter()
        retriever.search(question)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    report = {
        "guides": manifest.guides, "vectors": manifest.vectors, "index_type": manifest.index_type,
        "build_seconds": round(build_s, 1), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                                                / 1024, 1),
        "peak_rss_after_build_mb": round(rss_build, 1),
        "query_p50_ms": round(statistics.median(times), 1), "query_p95_ms": round(times[int(0.95 * len(times)) - 1], 1),
        "queries": len(times),
    }
    for key, value in report.items():
        print(f"{key:<24}{value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
