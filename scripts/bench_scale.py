"""Index build time, memory and query latency on a synthetic catalogue of N guides.

The synthetic guides are the bundled ones re-issued for many made-up districts (so every
title is distinct and realistic in length and vocabulary). The same code path as
`knowledge build-index` encodes them and picks the FAISS index type by size; the manifest
records which. Prints a table and writes results/bench_scale.json.

``--compare-hnsw`` also builds an HNSW index over the very same vectors and reports its
build time, FAISS-only query latency next to the flat index's, and its recall@10 against
the exact flat result — the numbers behind the automatic switch at ``FLAT_LIMIT`` vectors.

    .venv/actions/bin/python scripts/bench_scale.py --guides 100000 [--compare-hnsw]
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

from bot.answering.evaluate import DEFAULT_QUESTIONS, load_questions  # noqa: E402
from bot.answering.retrieval import Retriever  # noqa: E402
from bot.knowledge.base import KnowledgeBase  # noqa: E402
from bot.knowledge.embedding.encoder import Encoder, make_encoder, make_query_encoder  # noqa: E402
from bot.knowledge.index import FLAT_LIMIT, LoadedIndex, _make_faiss, build_index  # noqa: E402
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


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[max(0, int(q * len(values)) - 1)], 2)


def compare_hnsw(loaded: LoadedIndex, encoder: Encoder, questions: list[str]) -> dict[str, object]:
    """HNSW against the exact flat index over the same vectors: build time, latency, recall@10."""
    import numpy as np

    flat = loaded.faiss_index
    vectors = flat.reconstruct_n(0, flat.ntotal)
    hnsw, kind = _make_faiss(vectors.shape[1], FLAT_LIMIT + 1)  # whatever the size switch would pick
    started = time.perf_counter()
    hnsw.add(vectors)
    build = time.perf_counter() - started
    queries = encoder.encode(questions, kind="query").astype(np.float32)
    flat_ms, hnsw_ms, recall = [], [], []
    for q in queries:
        t = time.perf_counter()
        _, exact = flat.search(q.reshape(1, -1), 10)
        flat_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        _, approx = hnsw.search(q.reshape(1, -1), 10)
        hnsw_ms.append((time.perf_counter() - t) * 1000)
        recall.append(len(set(exact[0]) & set(approx[0])) / 10)
    return {
        "hnsw_type": kind, "hnsw_build_seconds": round(build, 1),
        "faiss_flat_p50_ms": _p(flat_ms, 0.5), "faiss_flat_p95_ms": _p(flat_ms, 0.95),
        "faiss_hnsw_p50_ms": _p(hnsw_ms, 0.5), "faiss_hnsw_p95_ms": _p(hnsw_ms, 0.95),
        "hnsw_recall_at_10": round(sum(recall) / len(recall), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guides", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_scale.json")
    parser.add_argument("--compare-hnsw", action="store_true", help="also measure HNSW over the same vectors")
    parser.add_argument("--threads", type=int, default=2, help="encoder threads for the build (ONNX intra-op)")
    args = parser.parse_args()
    settings = load_settings()
    kb = synthetic(KnowledgeBase.load(settings.knowledge_dir), args.guides)
    # The encoder the assistant is configured with (GUIDE_ENCODER), as `knowledge build-index` uses it;
    # the build may use every core (--threads), as an office rebuilding overnight would.
    encoder = make_encoder(settings.model_dir, settings.max_tokens, settings.encoder, args.threads, cache_size=0)
    index_dir = ROOT / "var" / f"bench-index-{args.guides}"
    started = time.perf_counter()
    manifest = build_index(kb, encoder, index_dir, fingerprint="synthetic", batch_size=settings.encode_batch,
                           log=lambda m: print(m, flush=True))
    build_s = time.perf_counter() - started
    rss_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    loaded = LoadedIndex.load(index_dir)
    del encoder
    # Queries as the action server runs them: its query encoder (GUIDE_QUERY_ENCODER) and thread budget
    # (ACTION_THREADS), no query cache.
    encoder = make_query_encoder(settings.model_dir, settings.query_model_dir, settings.query_encoder,
                                 settings.max_tokens, settings.encoder, settings.threads, cache_size=0)
    retriever = Retriever(loaded, encoder, settings)
    questions = [q.question for q in load_questions(DEFAULT_QUESTIONS)][: args.queries]
    retriever.search("预热")
    times = []
    for question in questions:
        t = time.perf_counter()
        retriever.search(question)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    hnsw = compare_hnsw(loaded, encoder, questions) if args.compare_hnsw else {}
    report = {
        "encoder": settings.encoder, "build_threads": args.threads,
        "guides": manifest.guides, "vectors": manifest.vectors, "index_type": manifest.index_type,
        "build_seconds": round(build_s, 1), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                                                / 1024, 1),
        "peak_rss_after_build_mb": round(rss_build, 1),
        "query_p50_ms": round(statistics.median(times), 1), "query_p95_ms": round(times[int(0.95 * len(times)) - 1], 1),
        "queries": len(times),
        **hnsw,
    }
    for key, value in report.items():
        print(f"{key:<24}{value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
