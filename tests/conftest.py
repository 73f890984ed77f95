"""Shared fixtures.

The embedding model is the real one (``make model`` prepares it; ``make test`` depends on
that). Fixtures that need it fail with the command to run when it is absent — a missing
model is a broken set-up, not a reason to skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.settings import ROOT, Settings, load_settings

SAMPLE_DIR = ROOT / "knowledge" / "guides" / "sample"
FAQ_DIR = ROOT / "knowledge" / "faq"
GUANGDONG = ROOT / "knowledge" / "guides" / "guangdong" / "policy.jsonl"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    path = load_settings().model_dir
    if not (path / "modules.json").is_file():
        pytest.fail(f"no embedding model in {path}: run `make model` first")
    return path


@pytest.fixture(scope="session")
def encoder(model_dir: Path):
    """The encoder the assistant runs with (GUIDE_ENCODER: the ONNX export by default)."""
    from bot.knowledge.embedding.encoder import make_encoder

    settings = load_settings()
    return make_encoder(model_dir, settings.max_tokens, settings.encoder, settings.threads)


@pytest.fixture(scope="session")
def torch_encoder(model_dir: Path):
    """The same model on sentence-transformers (the reference the ONNX export is checked against)."""
    from bot.knowledge.embedding.encoder import SentenceTransformerEncoder

    return SentenceTransformerEncoder(model_dir)


@pytest.fixture(scope="session")
def small_kb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample guides, the bundled FAQ and 300 real Guangdong guides: small enough to index in
    seconds, varied enough that a wrong match is possible."""
    root = tmp_path_factory.mktemp("kb")
    for folder, source in (("sample", SAMPLE_DIR), ("faq", FAQ_DIR)):
        (root / folder).mkdir()
        for path in source.glob("*.jsonl"):
            (root / folder / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    lines = GUANGDONG.read_text(encoding="utf-8").splitlines()[:300]
    (root / "guangdong.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def settings(small_kb_dir: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings({}).with_(
        knowledge_dir=small_kb_dir, faq_dir=small_kb_dir / "no-separate-faq-folder",
        index_dir=tmp_path_factory.mktemp("index") / "idx", model_dir=model_dir,
    )


@pytest.fixture(scope="session")
def built_index(settings: Settings, encoder) -> Path:
    from bot.knowledge.base import KnowledgeBase, fingerprint
    from bot.knowledge.index import build_index

    kb = KnowledgeBase.load(settings.knowledge_dir)
    build_index(kb, encoder, settings.index_dir, fingerprint=fingerprint(settings.knowledge_dir))
    return settings.index_dir


@pytest.fixture(scope="session")
def small_service(settings: Settings, encoder, built_index: Path):
    """The guide service over the small index, with "nothing fits" calibrated for that knowledge base
    the way an office calibrates its own (``knowledge calibrate``: pseudo-queries, no labels)."""
    from bot.answering.selfcalibrate import everyday_questions, self_calibrate
    from bot.answering.service import GuideService

    service = GuideService.from_settings(settings, encoder=encoder)
    retriever = service.retriever
    retriever.nothing_fits, _ = self_calibrate(
        retriever.search, retriever.records, model=encoder.name, knowledge=retriever.index.manifest.fingerprint,
        everyday=everyday_questions(), max_records=200)
    return service


@pytest.fixture(scope="session")
def service(encoder):
    """The guide service as the action server runs it: the bundled index (`make index` builds it), the
    committed ranker and calibration."""
    from bot.answering.service import GuideService
    from bot.knowledge.index import read_manifest

    settings = load_settings({})
    try:
        read_manifest(settings.index_dir)
    except Exception as error:  # a missing index is a broken set-up, not a reason to skip
        pytest.fail(f"{error} (`make index` builds it)")
    return GuideService.from_settings(settings, encoder=encoder)


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path


def _postgres():
    import tempfile

    from ops.postgres import Postgres

    try:
        cluster = Postgres(Path(tempfile.mkdtemp(prefix="guide-pg-")))
    except RuntimeError as error:
        pytest.fail(f"{error} (`make test` installs it)")
    cluster.temporary = True  # a throw-away cluster: remove() deletes its folder
    cluster.start()
    return cluster


@pytest.fixture(scope="session")
def pg_url():
    """A PostgreSQL server for the whole session."""
    cluster = _postgres()
    try:
        yield cluster.url
    finally:
        cluster.remove()


@pytest.fixture
def pg_cluster():
    """A PostgreSQL server of one's own, to stop and start within a test."""
    cluster = _postgres()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(autouse=True, scope="session")
def _ticket_store_in_tmp(tmp_path_factory: pytest.TempPathFactory):
    """Actions record questions and tickets; in tests they go to a throw-away SQLite file,
    never to the project's var/tickets.db."""
    from bot.tickets import install_store
    from bot.tickets.store import TicketStore

    store = TicketStore(f"sqlite:///{tmp_path_factory.mktemp('tickets') / 'tickets.db'}")
    store.migrate()
    install_store(store)
    yield store
    install_store(None)
    store.engine.dispose()


@pytest.fixture
def browser():
    """A real headless Chromium (ops/browser.py); nothing it loads may leave the machine."""
    from ops.browser import missing, start_chromium

    problem = missing()
    if problem:
        pytest.fail(problem)
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()
