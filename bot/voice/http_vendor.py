"""An office's own speech vendor over HTTP (``KIOSK_ASR=http`` / ``KIOSK_TTS=http``).

The contract is deliberately small, so a thin adapter in front of any commercial or in-house
service fits it:

Recognition — ``POST KIOSK_ASR_URL``
    body: the recording exactly as the browser made it; ``Content-Type`` names its format
    (``audio/webm``, ``audio/ogg``, ``audio/wav``, ``audio/mp4`` …, sniffed from its first bytes).
    answer: ``200`` with JSON ``{"text": "识别出的文字"}`` (``""`` when nothing was said);
    optionally ``"audio_seconds": 3.2``.

Synthesis — ``POST KIOSK_TTS_URL``
    body: JSON ``{"text": "要朗读的文字", "format": "wav"}`` (UTF-8, at most 300 characters).
    answer: ``200`` with a WAV file (``Content-Type: audio/wav``).

Any other answer, a time-out or a refused connection makes the kiosk say that voice is
unavailable for now (touch keeps working); nothing is retried. Standard library only.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from bot.voice.base import Transcript, VoiceUnavailable, check_audio, check_text, sniff_audio_type, wav_seconds

#: Seconds to wait for the vendor.
TIMEOUT = 30.0


def _post(url: str, body: bytes, content_type: str, accept: str, timeout: float) -> tuple[bytes, str]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type, "Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # the URL comes from the settings
            return answer.read(), answer.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        raise VoiceUnavailable(f"语音服务暂时不可用 (the vendor at {url} answered {error.code})") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise VoiceUnavailable(f"语音服务暂时不可用 (cannot reach the vendor at {url}: {reason})") from None


class HttpRecognizer:
    """:class:`~bot.voice.base.Recognizer` that posts the recording to the office's vendor."""

    name = "http"

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout

    def transcribe(self, audio: bytes) -> Transcript:
        check_audio(audio)
        started = time.perf_counter()
        content_type = sniff_audio_type(audio) or "application/octet-stream"
        body, _ = _post(self.url, audio, content_type, "application/json", self.timeout)
        try:
            answer: Any = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise VoiceUnavailable(f"语音服务的回答无法识别 (the vendor at {self.url} did not answer JSON)") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
            raise VoiceUnavailable(f'语音服务的回答无法识别 (the vendor at {self.url} did not answer {{"text": ...}})')
        seconds = answer.get("audio_seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            seconds = wav_seconds(audio)
        return Transcript(answer["text"].strip(), float(seconds), time.perf_counter() - started)


class HttpSynthesizer:
    """:class:`~bot.voice.base.Synthesizer` that asks the office's vendor for a WAV file."""

    name = "http"

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout

    def synthesize(self, text: str) -> bytes:
        text = check_text(text)
        body = json.dumps({"text": text, "format": "wav"}, ensure_ascii=False).encode("utf-8")
        audio, _ = _post(self.url, body, "application/json; charset=utf-8", "audio/wav", self.timeout)
        if sniff_audio_type(audio) != "audio/wav":
            raise VoiceUnavailable(f"语音服务的回答不是 WAV 音频 (the vendor at {self.url} did not answer a WAV file)")
        return audio
