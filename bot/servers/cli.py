"""The ``knowledge`` command: import, validate, index and search service guides.

A thin layer over :mod:`bot.knowledge`, :mod:`bot.knowledge.index` and :mod:`bot.answering.retrieval`:
it parses flags, calls the library, and turns :class:`bot.errors.BotError` into one
clear line on stderr with exit status 2 (1 means "ran, but found problems").

    knowledge import SOURCE... --out knowledge/guides/myregion.jsonl
    knowledge validate [PATH...]
    knowledge build-index [--force]
    knowledge search "我身份证过期了怎么办" [-k 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bot.errors import BotError
from bot.knowledge.base import KnowledgeBase, fingerprint
from bot.knowledge.importers import ImportReport, read_path, write_jsonl
from bot.knowledge.model import FaqEntry
from bot.settings import Settings, load_settings


def _print_problems(report: ImportReport, *, limit: int | None = None) -> None:
    """Every skipped record and warning with its file, line and reason (``limit``: at most that many)."""
    for title, problems in (("skipped", report.skipped), ("warning", report.warnings)):
        shown = problems if limit is None else problems[:limit]
        for problem in shown:
            print(f"  {title}: {problem}")
        if len(shown) < len(problems):
            print(f"  … and {len(problems) - len(shown)} more {title} lines (knowledge validate lists them all)")


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    """Read every source; write guides and FAQ entries to one JSONL (or, with --dry-run, only say
    what would be written). Exit 1 when nothing at all could be imported."""
    report = ImportReport()
    for source in args.sources:
        report.extend(read_path(Path(source)))
    kb = KnowledgeBase.from_guides(report.guides, report.faqs)
    kb.report.skipped[:0] = report.skipped
    for path, fmt in sorted(report.formats.items()):
        print(f"read {path} ({fmt})")
    counts = f"{len(kb.guides)} guides and {len(kb.faqs)} FAQ entries"
    if args.dry_run:
        print(f"would import {counts} into {args.out}; skipped {len(kb.report.skipped)} (nothing written)")
        for record in kb.records()[: args.show]:
            kind = "FAQ" if isinstance(record, FaqEntry) else "guide"
            print(f"  {kind} {record.id}: {record.title}")
    _print_problems(kb.report)
    if not kb.records():
        print(f"knowledge import: nothing could be imported from {', '.join(args.sources)}; "
              "see the reasons above", file=sys.stderr)
        return 1
    if not args.dry_run:
        write_jsonl(kb.records(), Path(args.out))
        print(f"imported {counts} into {args.out}; skipped {len(kb.report.skipped)}")
    return 0


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    paths = [Path(p) for p in args.paths] or list(settings.knowledge_roots)
    bad = 0
    for path in paths:
        kb = KnowledgeBase.load(path)
        print(f"{path}: {len(kb.guides)} guides and {len(kb.faqs)} FAQ entries valid, "
              f"{len(kb.report.skipped)} skipped, {len(kb.report.warnings)} warnings")
        _print_problems(kb.report)
        if kb.guides:
            missing = [f"{name} {len(kb.guides) - have}" for name, have in kb.coverage().items() if have < len(kb)]
            if missing:
                print("  guides not stating a field (answers send these to the consultation phone): "
                      + ", ".join(missing))
        if kb.faqs:
            missing = [f"{name} {len(kb.faqs) - have}" for name, have in kb.faq_coverage().items()
                       if have < len(kb.faqs)]
            if missing:
                print("  FAQ entries without: " + ", ".join(missing))
        bad += len(kb.report.skipped)
    return 1 if bad and args.strict else 0


def cmd_build_index(args: argparse.Namespace, settings: Settings) -> int:
    from bot.answering.followup import PASSAGE_VECTORS_MAX_GUIDES, PassageVectors, build_passage_vectors
    from bot.knowledge.embedding.encoder import make_encoder
    from bot.knowledge.index import build_index, read_manifest

    sources = (Path(args.source),) if args.source else settings.knowledge_roots
    out = Path(args.out) if args.out else settings.index_dir
    print_ = (lambda *a: None) if args.quiet else print
    stamp = fingerprint(*sources)
    if not args.force:
        try:
            manifest = read_manifest(out)
        except BotError:
            manifest = None
        if manifest is not None and manifest.fingerprint == stamp:
            print_(f"index in {out} is up to date ({manifest.guides} guides, {manifest.model}); use --force to rebuild")
            if manifest.guides <= PASSAGE_VECTORS_MAX_GUIDES and PassageVectors.load(out, manifest.model) is None:
                # An index from before passage vectors (or of another model's): add them, nothing else.
                from bot.knowledge.index import LoadedIndex

                encoder = make_encoder(settings.model_dir, settings.max_tokens, settings.encoder, args.threads,
                                       cache_size=0)
                started = time.perf_counter()
                count = build_passage_vectors(LoadedIndex.load(out).guides, encoder, out,
                                              batch_size=settings.encode_batch, log=print_)
                print_(f"encoded {count} passages for follow-up answers in {time.perf_counter() - started:.1f} s")
            return 0
    started = time.perf_counter()
    kb = KnowledgeBase.load(*sources)
    named = ", ".join(str(s) for s in sources)
    print_(f"loaded {len(kb.guides)} guides and {len(kb.faqs)} FAQ entries from {named} "
           f"(skipped {len(kb.report.skipped)})")
    if not args.quiet:
        _print_problems(kb.report, limit=30)
    if not kb.records():
        print(f"no usable guides or FAQ entries under {named}; nothing to index", file=sys.stderr)
        return 1
    encoder = make_encoder(settings.model_dir, settings.max_tokens, settings.encoder, args.threads, cache_size=0)
    manifest = build_index(
        kb, encoder, out, fingerprint=stamp, batch_size=settings.encode_batch,
        progress=not args.quiet and sys.stderr.isatty(), log=print_,
    )
    print_(
        f"built {manifest.index_type} with {manifest.vectors} vectors for {manifest.guides} guides and "
        f"{manifest.faqs} FAQ entries "
        f"in {time.perf_counter() - started:.1f} s -> {out}"
    )
    if len(kb.guides) <= PASSAGE_VECTORS_MAX_GUIDES:
        started = time.perf_counter()
        count = build_passage_vectors(list(kb.guides.values()), encoder, out, batch_size=settings.encode_batch,
                                      log=print_)
        print_(f"encoded {count} passages for follow-up answers in {time.perf_counter() - started:.1f} s")
    else:
        print_(f"{len(kb.guides)} guides: passages are encoded on first use (more than "
               f"{PASSAGE_VECTORS_MAX_GUIDES} guides)")
    return 0


def cmd_calibrate(args: argparse.Namespace, settings: Settings) -> int:
    """Fit "nothing fits" for this knowledge base from its own records (no labelled questions needed)."""
    from bot.answering.selfcalibrate import EVERYDAY, everyday_questions, self_calibrate
    from bot.answering.service import GuideService

    service = GuideService.from_settings(settings)
    retriever = service.retriever
    everyday = everyday_questions(Path(args.everyday) if args.everyday else EVERYDAY)
    print(f"calibrating on pseudo-queries from {len(retriever.records)} records and {len(everyday)} everyday "
          "questions …")
    model, figures = self_calibrate(retriever.search, retriever.records, model=retriever.encoder.name,
                                    knowledge=retriever.index.manifest.fingerprint, everyday=everyday)
    out = Path(args.out) if args.out else settings.calibration
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    print(f"wrote {out}: cut {model.cut:.3f}; cross-validated on the pseudo-queries: unanswerable recognised "
          f"{figures['cv_unanswerable_recognised']}, answerable lost {figures['cv_answerable_lost']}")
    return 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from bot.answering.service import GuideService

    service = GuideService.from_settings(settings.with_(max_candidates=args.k))
    result = service.search(args.question)
    if args.json:
        print(json.dumps({
            "query": result.query, "status": result.status, "ms": round(result.seconds * 1000, 1),
            "p_none": result.p_none, "regions": sorted(result.mentions.regions),
            "departments": sorted(result.mentions.departments),
            "matches": [
                {"id": m.item.id, "title": m.item.title, "kind": "faq" if m.is_faq else "guide", "score": m.score,
                 "dense": m.dense, "lexical": m.lexical}
                for m in result.matches
            ],
        }, ensure_ascii=False, indent=2))
        return 0
    p_none = f", P(nothing fits) {result.p_none:.2f}" if result.p_none is not None else ""
    print(f"{result.status} ({result.seconds * 1000:.0f} ms{p_none}) for: {result.query}")
    if result.mentions:
        named = "、".join(sorted(result.mentions.regions | result.mentions.departments))
        print(f"named: {named}")
    for rank, match in enumerate(result.matches, 1):
        print(f"{rank}. {match.score:.3f} (dense {match.dense:.3f}, lexical {match.lexical:.3f}) "
              f"{match.item.title}  [{match.item.id}]")
    if args.show and result.best:
        print()
        print(service.answer_record(result.best.item.id).text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="knowledge", description="Import, validate, index and search service guides.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "import", help="convert guide and FAQ files (Guangdong export, JSONL, CSV, XLSX) into the project's JSONL"
    )
    p.add_argument("sources", nargs="+", help="files or folders to read")
    p.add_argument("--out", required=True,
                   help="JSONL file to write (e.g. knowledge/guides/myregion.jsonl or knowledge/faq/myoffice.jsonl)")
    p.add_argument("--dry-run", action="store_true", help="only say what would be imported; write nothing")
    p.add_argument("--show", type=int, default=10, help="with --dry-run: how many records to list")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("validate", help="check guide and FAQ files and report problems with file and line")
    p.add_argument("paths", nargs="*", help="files or folders (default: GUIDE_KNOWLEDGE_DIR)")
    p.add_argument("--strict", action="store_true", help="exit 1 if any record had to be skipped")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("build-index", help="encode the knowledge base into the FAISS index")
    p.add_argument("--source", help="knowledge folder or file (default: GUIDE_KNOWLEDGE_DIR)")
    p.add_argument("--out", help="index folder (default: GUIDE_INDEX_DIR)")
    p.add_argument("--force", action="store_true", help="rebuild even if the knowledge base has not changed")
    p.add_argument("--quiet", action="store_true", help="print only errors")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="encoder threads (ONNX back-ends; default: every core, as the build runs before serving)")
    p.set_defaults(func=cmd_build_index)

    p = sub.add_parser("calibrate", help="fit 'nothing fits' for this knowledge base from its own records "
                                         "(no labelled questions needed; run after build-index)")
    p.add_argument("--out", help="calibration file to write (default: GUIDE_CALIBRATION)")
    p.add_argument("--everyday", help="file of everyday questions, one a line (default: the bundled list)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("search", help="show the best guides for a question")
    p.add_argument("question")
    p.add_argument("-k", type=int, default=5, help="how many candidates to show")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--show", action="store_true", help="also print the notification for the best guide")
    p.set_defaults(func=cmd_search)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args, load_settings()))
    except BotError as error:
        print(f"knowledge: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
