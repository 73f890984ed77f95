"""The kiosk's voice, as two small interfaces an office can implement with its own vendor.

* :class:`Recognizer` — ``transcribe(audio) -> Transcript``: the bytes a browser recorded (WebM/Opus,
  Ogg/Opus, WAV …) in, the words in Simplified Chinese out (``""`` when nothing was said).
* :class:`Synthesizer` — ``synthesize(text) -> bytes``: short spoken sentences in, a WAV file out.

Engines may also have ``warm()``: load their models now (the kiosk calls it in a background thread
at start, so the first citizen does not wait). Engines raise :class:`VoiceError` subclasses only:
:class:`BadAudio` / :class:`BadText` for what the citizen's page sent (a 4xx, shown politely),
:class:`VoiceUnavailable` when the engine itself cannot work (a 503: the page falls back to touch).

Standard library only: this module is imported by both venvs.
"""

from __future__ import annotations

import io
import struct
import wave
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.errors import BotError

#: Larger uploads are refused before decoding (30 s of 48 kHz 16-bit stereo WAV is ~5.5 MB).
MAX_AUDIO_BYTES = 6 * 1024 * 1024
#: Longer recordings are refused: a question takes a few seconds; the page stops at 20 s.
MAX_AUDIO_SECONDS = 30.0
#: Shorter recordings are "nothing was said" (a tap on the microphone by mistake).
MIN_AUDIO_SECONDS = 0.3
#: Longer texts are refused by /speak; the page sends one sentence or a few at a time.
MAX_SPEAK_CHARS = 300


@dataclass(frozen=True)
class Transcript:
    """What a recogniser heard: the text, how long the audio was and how long recognition took."""

    text: str
    audio_seconds: float
    seconds: float

    @property
    def real_time_factor(self) -> float:
        """Processing time per second of audio (below 1: faster than real time)."""
        return self.seconds / self.audio_seconds if self.audio_seconds > 0 else 0.0


@runtime_checkable
class Recognizer(Protocol):
    """Speech to text. Raises :class:`BadAudio` or :class:`VoiceUnavailable`."""

    def transcribe(self, audio: bytes) -> Transcript: ...


@runtime_checkable
class Synthesizer(Protocol):
    """Text to a WAV file. Raises :class:`BadText` or :class:`VoiceUnavailable`."""

    def synthesize(self, text: str) -> bytes: ...


class VoiceError(BotError):
    """A voice request that failed; ``str(error)`` is safe to show, ``status`` is the HTTP status."""

    status = 500


class VoiceUnavailable(VoiceError):
    """The engine cannot work here (package or model missing, vendor down): touch still works."""

    status = 503


class BadAudio(VoiceError):
    """The recording cannot be used (empty, undecodable)."""

    status = 400


class AudioTooLong(BadAudio):
    status = 413


class UnsupportedAudio(BadAudio):
    status = 415


class BadText(VoiceError):
    """The text to speak is empty or too long."""

    status = 400


def check_audio(audio: bytes) -> None:
    """Refuse an empty or oversized upload before any decoding."""
    if not audio:
        raise BadAudio("没有收到录音，请按话筒按钮后再说话 (the request body is empty)")
    if len(audio) > MAX_AUDIO_BYTES:
        raise AudioTooLong(f"录音太长，请在 {MAX_AUDIO_SECONDS:.0f} 秒内说完 "
                           f"(audio larger than {MAX_AUDIO_BYTES // (1024 * 1024)} MB)")


def check_text(text: object) -> str:
    """The text to speak, stripped; or :class:`BadText`."""
    if not isinstance(text, str) or not text.strip():
        raise BadText("没有要朗读的文字 (text must be a non-empty string)")
    text = text.strip()
    if len(text) > MAX_SPEAK_CHARS:
        raise BadText(f"要朗读的文字太长，请控制在 {MAX_SPEAK_CHARS} 字以内 "
                      f"(text longer than {MAX_SPEAK_CHARS} characters)")
    return text


def sniff_audio_type(audio: bytes) -> str | None:
    """The MIME type of a recording from its first bytes, or None when it is not a known container."""
    if audio[:4] == b"RIFF" and audio[8:12] == b"WAVE":
        return "audio/wav"
    if audio[:4] == b"OggS":
        return "audio/ogg"
    if audio[:4] == b"\x1a\x45\xdf\xa3":
        return "audio/webm"
    if audio[4:8] == b"ftyp":
        return "audio/mp4"
    if audio[:3] == b"ID3" or (len(audio) > 1 and audio[0] == 0xFF and audio[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    if audio[:4] == b"fLaC":
        return "audio/flac"
    return None


def wav_from_pcm16(pcm: bytes, rate: int, channels: int = 1) -> bytes:
    """A WAV file around 16-bit little-endian PCM."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


def wav_seconds(data: bytes) -> float:
    """Duration of a WAV file (PCM), or 0.0 when ``data`` is not one."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            return wav.getnframes() / float(wav.getframerate() or 1)
    except (wave.Error, EOFError, struct.error):
        return 0.0
