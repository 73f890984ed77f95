"""The service-hall kiosk: a full-screen touch page with offline voice, ``/webhooks/kiosk/``.

* ``GET /`` — the kiosk page (``bot/static/kiosk/``: large type, high contrast, big buttons for
  the most asked items, microphone, idle reset, printing). ``GET /assets/<name>`` its files.
* ``GET /config`` — the page's settings: top items, idle seconds, whether voice works.
* ``POST /webhook`` — the guide channel's JSON (``{"sender", "message"}`` in, messages out); each
  text message also carries ``speech`` (the answer's spoken form) and, for a one-time
  notification, ``sheet_url`` and ``print_url`` (the same sheet through this channel, so the page
  can print it from its own origin).
* ``POST /listen`` — a recording as the raw body (WebM/Opus, Ogg, WAV …) → ``{"text": ...}``;
  ``""`` when nothing was said. 400/413/415 for an unusable recording, 503 when recognition
  is unavailable.
* ``POST /speak`` — ``{"text": ...}`` (at most 300 characters) → ``audio/wav``; recent answers
  are kept in a small cache.
* ``GET /sheet/<guide id>`` — the printable sheet, fetched from the action server.

The engines (:mod:`bot.voice`) are built once, lazily, and warmed in a background thread once
the server is up; recognition and synthesis run in their own one-thread executors, never on
Rasa's event loop. Without the voice packages or model the page still works by touch and
keyboard and says that voice is unavailable.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels import settings_with
from bot.channels.assets import asset
from bot.channels.guard import client_key, rate_limit
from bot.channels.kiosk_core import GUIDE_ID, render_kiosk
from bot.channels.rest import GuideChannel, limit_requests
from bot.settings import raw_setting
from bot.voice import Voice, VoiceConfig, VoiceError, VoiceUnavailable
from bot.voice.base import MAX_SPEAK_CHARS, BadText, check_audio, check_text

logger = logging.getLogger(__name__)

#: Seconds a recognition or synthesis may take before the page is told to try again.
VOICE_TIMEOUT = 60.0
#: Voice requests waiting at once; more get a 503 "busy" (one kiosk makes one at a time).
MAX_WAITING = 4
#: Bytes of synthesised speech kept, most recently used first (one sentence is ~0.5 MB of WAV;
#: the top items' answers repeat all day).
CACHE_BYTES = 48 * 1024 * 1024
#: The page stops recording after this many seconds.
RECORD_SECONDS = 20
#: Per client (address), at most this many recognitions a minute: a citizen speaks a question every
#: few seconds at the most; anyone sending more is keeping the engine busy for others.
LISTEN_PER_MINUTE = 12
#: Per client, at most this many syntheses a minute that are not already cached (an answer is
#: spoken sentence by sentence, so one long answer asks for a few dozen).
SPEAK_PER_MINUTE = 90
#: Keys ``credentials.yml`` may set (each overrides KIOSK_<KEY>).
_CREDENTIALS = ("asr", "asr_url", "asr_model", "tts", "tts_url", "idle_seconds", "top_items")
_PAGE_POLICY = ("default-src 'self'; media-src 'self' blob:; img-src 'self' data:; frame-src 'self'; "
                "connect-src 'self'; object-src 'none'; base-uri 'none'")


class TooMany(VoiceError):
    """One client asks for more voice work than :data:`LISTEN_PER_MINUTE` / :data:`SPEAK_PER_MINUTE`."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class KioskChannel(GuideChannel):
    """The kiosk page and its voice endpoints."""

    def __init__(self, config: VoiceConfig | None = None, voice: Voice | None = None) -> None:
        self.config = config if config is not None else VoiceConfig.from_settings()
        self.voice = voice if voice is not None else Voice(self.config)
        self._asr_pool = ThreadPoolExecutor(1, thread_name_prefix="kiosk-asr")
        self._tts_pool = ThreadPoolExecutor(1, thread_name_prefix="kiosk-tts")
        self._spoken: OrderedDict[str, bytes] = OrderedDict()
        self._waiting = 0
        self._warm_started = False
        self._listen_limit = rate_limit("kiosk-listen", LISTEN_PER_MINUTE, 60)
        self._speak_limit = rate_limit("kiosk-speak", SPEAK_PER_MINUTE, 60)

    @classmethod
    def name(cls) -> str:
        return "kiosk"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        """Settings from the environment; ``credentials.yml`` may override any KIOSK_* of them."""
        return cls(VoiceConfig.from_settings(settings_with("KIOSK", _CREDENTIALS, credentials, raw_setting)))

    def render(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return render_kiosk(messages)

    def start_warming(self) -> None:
        """Load and run both engines in a background thread (once), so the first citizen does not wait."""
        if self._warm_started:
            return
        self._warm_started = True
        threading.Thread(target=self.voice.warm, name="kiosk-voice-warm", daemon=True).start()

    def page_config(self) -> dict[str, Any]:
        return {"top_items": [{"label": i.label, "query": i.query} for i in self.config.top_items],
                "idle_seconds": self.config.idle_seconds, "voice": self.voice.status(),
                "max_speak_chars": MAX_SPEAK_CHARS, "record_seconds": RECORD_SECONDS,
                "hotline": raw_setting("GUIDE_HOTLINE")}

    async def _in_pool(self, pool: ThreadPoolExecutor, work: Callable[[], Any]) -> Any:
        """Run blocking voice work in its executor, with a limit on waiting requests and on time."""
        if self._waiting >= MAX_WAITING:
            raise VoiceUnavailable("语音服务正忙，请稍后再试，或点按屏幕上的按钮 (too many voice requests waiting)")
        self._waiting += 1
        try:
            return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(pool, work), VOICE_TIMEOUT)
        except asyncio.TimeoutError:  # noqa: UP041 (not the builtin before Python 3.11; Rasa runs 3.10)
            raise VoiceUnavailable("语音处理超时，请再试一次 (the voice engine took too long)") from None
        finally:
            self._waiting -= 1

    async def listen(self, audio: bytes) -> dict[str, Any]:
        transcript = await self._in_pool(self._asr_pool, lambda: self.voice.recognizer().transcribe(audio))
        logger.info("kiosk heard %d characters in %.1f s of audio (%.2f s)",
                    len(transcript.text), transcript.audio_seconds, transcript.seconds)
        return {"text": transcript.text, "audio_seconds": round(transcript.audio_seconds, 2),
                "seconds": round(transcript.seconds, 2)}

    async def speak(self, text: str, client: str = "") -> bytes:
        text = check_text(text)
        cached = self._spoken.get(text)
        if cached is not None:
            self._spoken.move_to_end(text)
            return cached
        if not self._speak_limit.allow(client):
            raise TooMany("语音播报请求太频繁，请稍后再试 (too many speech requests from this client)",
                          self._speak_limit.retry_after(client))
        audio: bytes = await self._in_pool(self._tts_pool, lambda: self.voice.synthesizer().synthesize(text))
        self._spoken[text] = audio
        while len(self._spoken) > 1 and sum(map(len, self._spoken.values())) > CACHE_BYTES:
            self._spoken.popitem(last=False)
        return audio

    @staticmethod
    def _voice_error(error: VoiceError) -> HTTPResponse:
        log = logger.warning if error.status >= 500 else logger.info
        log("kiosk voice request refused (%s): %s", error.status, error)
        headers = {"Retry-After": str(error.retry_after)} if isinstance(error, TooMany) else None
        return response.json({"error": str(error)}, status=error.status, headers=headers)

    @staticmethod
    def _fetch_sheet(url: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:  # GUIDE_SHEET_URL
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            logger.warning("sheet %s unavailable: %s", url, error)
            return 502, ("<!doctype html><meta charset=utf-8><p style='font-size:28px'>告知单暂时无法打开，"
                         "请到服务窗口咨询。</p>").encode()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint(f"kiosk_channel_{type(self).__name__}", __name__)
        limit_requests(hook, self)

        @hook.listener("after_server_start")
        async def warm(*_: Any) -> None:
            self.start_warming()

        @hook.route("/", methods=["GET"])
        async def page(request: Request) -> HTTPResponse:
            if not request.path.endswith("/"):  # the page's own files are addressed relative to it
                query = f"?{request.query_string}" if request.query_string else ""
                return response.redirect(f"{request.path}/{query}")
            page = asset("kiosk", "kiosk.html", cache_seconds=60)
            page.headers["Content-Security-Policy"] = _PAGE_POLICY
            return page

        @hook.route("/assets/<name>", methods=["GET"])
        async def assets(_: Request, name: str) -> HTTPResponse:
            return asset("kiosk", name, cache_seconds=60)

        @hook.route("/health", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok", "voice": self.voice.status()})

        @hook.route("/config", methods=["GET"])
        async def config(_: Request) -> HTTPResponse:
            return response.json(self.page_config(), headers={"Cache-Control": "no-store"})

        @hook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            return await self.receive_json(request, on_new_message)

        @hook.route("/listen", methods=["POST"])
        async def listen(request: Request) -> HTTPResponse:
            audio = request.body or b""
            client = client_key(request)
            if not self._listen_limit.allow(client):
                busy = TooMany("语音识别请求太频繁，请稍后再试 (too many recordings from this client)",
                               self._listen_limit.retry_after(client))
                return self._voice_error(busy)
            try:
                check_audio(audio)  # empty or oversized: refused before any engine work
                return response.json(await self.listen(audio))
            except VoiceError as error:
                return self._voice_error(error)
            except Exception:
                logger.exception("speech recognition failed")
                return response.json({"error": "语音识别暂时不可用，请点按按钮或用键盘输入 (recognition failed)"},
                                     status=503)

        @hook.route("/speak", methods=["POST"])
        async def speak(request: Request) -> HTTPResponse:
            try:
                body = request.json
            except Exception:
                body = None
            text = body.get("text") if isinstance(body, dict) else None
            try:
                if not isinstance(text, str):
                    raise BadText('请求必须是 {"text": "..."} (the body must be a JSON object with text)')
                audio = await self.speak(text, client_key(request))
            except VoiceError as error:
                if isinstance(error, BadText) and isinstance(text, str) and len(text.strip()) > MAX_SPEAK_CHARS:
                    return response.json({"error": str(error)}, status=413)
                return self._voice_error(error)
            except Exception:
                logger.exception("speech synthesis failed")
                return response.json({"error": "语音播报暂时不可用 (synthesis failed)"}, status=503)
            return response.raw(audio, content_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"})

        @hook.route("/sheet/<guide_id>", methods=["GET"])
        async def sheet(_: Request, guide_id: str) -> HTTPResponse:
            if not GUIDE_ID.match(guide_id):
                return response.json({"error": "没有这个事项 (no such item)"}, status=404)
            url = raw_setting("GUIDE_SHEET_URL").replace("{id}", quote(guide_id, safe=""))
            status, body = await asyncio.get_running_loop().run_in_executor(None, self._fetch_sheet, url)
            return response.raw(body, status=status, content_type="text/html; charset=utf-8",
                                headers={"Cache-Control": "no-store", "X-Frame-Options": "SAMEORIGIN"})

        return hook
