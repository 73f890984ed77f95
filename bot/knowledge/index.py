"""The FAISS index over the knowledge base, and its manifest.

Each record — an item guide or an FAQ entry — contributes several vectors, because a
citizen's question may resemble any one of them: a guide its title, every alias, every typical
question, and a short passage of what people search by (department, topics, materials); an FAQ
entry its question, every alternative question and keyword, and a passage of its question and
answer. Each vector keeps its field (:data:`FIELDS`), so ranking can weigh a title match apart
from a typical-question match. The folder holds:

* ``vectors.faiss``: the FAISS index (inner product over normalised vectors = cosine);
* ``rows.npy``: for every vector, the position of its record in ``records.jsonl``;
* ``fields.npy``: for every vector, the field it was made from (an index into :data:`FIELDS`);
* ``records.jsonl``: the guides, then the FAQ entries, exactly as indexed (no importer needed);
* ``manifest.json``: model name and dimension (and the adaptation that produced the model, when
  there is one), index type, counts, the knowledge fingerprint, and build time. A mismatch with
  the running model is refused, not guessed.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import IndexMissing
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.embedding.encoder import Encoder, Kind
from bot.knowledge.importers import write_jsonl
from bot.knowledge.model import FaqEntry, Guide, Record, faq_from_dict, guide_from_dict, record_kind
from bot.knowledge.text import normalize

FORMAT_VERSION = 2
#: What a vector was made from. A guide's title and an FAQ entry's question are its "name".
FIELDS = ("name", "alias", "question", "passage")
#: Up to this many vectors an exact flat index is both fast enough and simplest. Above it,
#: HNSW: measured over the same 60,000 vectors (`make bench-scale`), HNSW answered in 0.5 ms
#: instead of 30 ms with 0.98 recall@10 against the exact result, and built in 8 s.
FLAT_LIMIT = 50_000


@dataclass(frozen=True)
class IndexManifest:
    """What an index was built from; stored as ``manifest.json``."""

    format_version: int
    model: str
    dim: int
    index_type: str
    guides: int
    vectors: int
    fingerprint: str
    built_at: str
    build_seconds: float
    faqs: int = 0
    #: The domain adaptation that produced the model (its manifest), or None for the base model.
    adaptation: dict[str, Any] | None = None


def guide_texts(guide: Guide) -> list[tuple[Kind, str]]:
    """The texts a guide is found by, each with the e5 prompt kind to encode it with."""
    return [(kind, text) for kind, _, text in record_texts(guide)]


def record_texts(record: Record) -> list[tuple[Kind, str, str]]:
    """The texts a record is found by: (e5 prompt kind, field, text), duplicates dropped.

    Names, aliases and questions are short question-like texts: they are compared with the
    citizen's question symmetrically ("query"). The summary passage is a document ("passage")."""
    texts: list[tuple[Kind, str, str]]
    if isinstance(record, FaqEntry):
        texts = [("query", "name", record.question)]
        texts += [("query", "alias", text) for text in (*record.alternatives, *record.keywords)]
        texts.append(("passage", "passage", f"{record.question}。{record.answer}"))
    else:
        texts = [("query", "name", record.title)]
        texts += [("query", "alias", alias) for alias in record.aliases]
        texts += [("query", "question", question) for question in record.questions]
        parts = [record.title]
        if record.department:
            parts.append(record.department)
        if record.topics:
            parts.append("、".join(record.topics))
        if record.materials:
            parts.append("材料：" + "、".join(m.name for m in record.materials[:8]))
        texts.append(("passage", "passage", "。".join(parts)))
    seen: set[tuple[str, str]] = set()
    out: list[tuple[Kind, str, str]] = []
    for kind, field_name, text in texts:
        clean = normalize(text, limit=400)
        if clean and (kind, clean) not in seen:
            seen.add((kind, clean))
            out.append((kind, field_name, clean))
    return out


def _make_faiss(dim: int, count: int) -> tuple[Any, str]:
    import faiss

    if count <= FLAT_LIMIT:
        return faiss.IndexFlatIP(dim), "IndexFlatIP"
    index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.hnsw.efSearch = 128
    return index, "IndexHNSWFlat(M=32)"


def build_index(
    kb: KnowledgeBase,
    encoder: Encoder,
    out_dir: Path,
    *,
    fingerprint: str,
    batch_size: int = 64,
    progress: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> IndexManifest:
    """Encode every record and write the index folder atomically (temp folder, then rename)."""
    import faiss

    started = time.perf_counter()
    records = kb.records()
    rows: list[int] = []
    fields_: list[int] = []
    by_kind: dict[Kind, list[tuple[int, str]]] = {"query": [], "passage": []}
    for position, record in enumerate(records):
        for kind, field_name, text in record_texts(record):
            by_kind[kind].append((len(rows), text))
            rows.append(position)
            fields_.append(FIELDS.index(field_name))
    vectors = np.zeros((len(rows), encoder.dim), dtype=np.float32)
    for kind, items in by_kind.items():
        if not items:
            continue
        log(f"encoding {len(items)} {kind} texts")
        encoded = encoder.encode([t for _, t in items], kind=kind, batch_size=batch_size, progress=progress)
        vectors[[i for i, _ in items]] = encoded
    index, index_type = _make_faiss(encoder.dim, len(rows))
    index.add(vectors)

    tmp = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    faiss.write_index(index, str(tmp / "vectors.faiss"))
    np.save(tmp / "rows.npy", np.asarray(rows, dtype=np.int32))
    np.save(tmp / "fields.npy", np.asarray(fields_, dtype=np.int8))
    write_jsonl(records, tmp / "records.jsonl")
    from bot.knowledge.entities import FILE as ENTITIES_FILE
    from bot.knowledge.entities import write_patterns

    write_patterns(records, tmp / ENTITIES_FILE)
    manifest = IndexManifest(
        format_version=FORMAT_VERSION,
        model=encoder.name,
        dim=encoder.dim,
        index_type=index_type,
        guides=len(kb.guides),
        vectors=len(rows),
        fingerprint=fingerprint,
        built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        build_seconds=round(time.perf_counter() - started, 2),
        faqs=len(kb.faqs),
        adaptation=getattr(encoder, "adaptation", None),
    )
    (tmp / "manifest.json").write_text(json.dumps(asdict(manifest), ensure_ascii=False, indent=2), encoding="utf-8")
    old = out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return manifest


def read_manifest(index_dir: Path) -> IndexManifest:
    """The manifest of a built index.

    Raises:
        IndexMissing: when there is no index, or it was written by another format version.
    """
    path = index_dir / "manifest.json"
    if not path.is_file():
        raise IndexMissing(f"{index_dir}: no search index; run `knowledge build-index` (or `make index`)")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format_version") != FORMAT_VERSION:
        raise IndexMissing(f"{index_dir}: index format {data.get('format_version')} is outdated; rebuild it")
    return IndexManifest(**data)


@dataclass
class LoadedIndex:
    """An index read back from disk, ready to search."""

    manifest: IndexManifest
    records: list[Record]
    rows: np.ndarray
    fields: np.ndarray
    faiss_index: Any
    #: For every record position, the range of its vector rows (they are stored together).
    spans: list[tuple[int, int]]
    #: Where it was read from (the knowledge base's names, ``entities.jsonl``, are kept there too).
    directory: Path | None = None

    @property
    def guides(self) -> list[Guide]:
        return [r for r in self.records if isinstance(r, Guide)]

    @classmethod
    def load(cls, index_dir: Path, *, expect_model: str | None = None, expect_dim: int | None = None) -> LoadedIndex:
        import faiss

        manifest = read_manifest(index_dir)
        if expect_dim is not None and manifest.dim != expect_dim:
            raise IndexMissing(
                f"{index_dir}: built with {manifest.model} ({manifest.dim} dims) but the model in use has "
                f"{expect_dim} dims; rebuild with `knowledge build-index`"
            )
        if expect_model is not None and manifest.model != expect_model:
            raise IndexMissing(
                f"{index_dir}: built with model '{manifest.model}', running '{expect_model}'; rebuild the index"
            )
        records: list[Record] = []
        with (index_dir / "records.jsonl").open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    data = json.loads(line)
                    records.append(faq_from_dict(data) if record_kind(data) == "faq" else guide_from_dict(data))
        rows = np.load(index_dir / "rows.npy")
        fields_ = np.load(index_dir / "fields.npy")
        index = faiss.read_index(str(index_dir / "vectors.faiss"))
        if index.ntotal != len(rows) or len(fields_) != len(rows) or len(records) != manifest.guides + manifest.faqs:
            raise IndexMissing(f"{index_dir}: index files disagree with each other; rebuild the index")
        starts = np.searchsorted(rows, np.arange(len(records)), side="left")
        ends = np.searchsorted(rows, np.arange(len(records)), side="right")
        return cls(manifest=manifest, records=records, rows=rows, fields=fields_, faiss_index=index,
                   spans=list(zip(starts.tolist(), ends.tolist(), strict=True)), directory=index_dir)

    def vectors(self) -> np.ndarray:
        """Every stored vector, as a read-only view of FAISS's own storage (no copy)."""
        import faiss

        storage = getattr(self.faiss_index, "storage", None)
        flat: Any = faiss.downcast_index(storage) if storage is not None else self.faiss_index
        data = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d)
        return np.asarray(data).reshape(flat.ntotal, flat.d)

    def search(self, query_vector: np.ndarray, k: int) -> dict[int, float]:
        """Best dense score per record position among the ``k`` nearest vectors."""
        scores, ids = self.faiss_index.search(query_vector.reshape(1, -1).astype(np.float32), k)
        best: dict[int, float] = {}
        for score, row in zip(scores[0], ids[0], strict=True):
            if row < 0:
                continue
            position = int(self.rows[row])
            if score > best.get(position, -1.0):
                best[position] = float(score)
        return best
