"""Speech recognition on the kiosk's own CPU: faster-whisper (CTranslate2) with Whisper-base.

* The model is assembled from its hash-pinned packages on first use (:mod:`bot.voice.model`)
  and loaded once, int8 on the CPU.
* Any browser recording is decoded by PyAV (bundled FFmpeg, which faster-whisper depends on):
  WebM/Opus (Chrome's MediaRecorder), Ogg/Opus (Firefox), WAV, MP4/AAC. Decoding stops as soon as
  the recording passes :data:`~bot.voice.base.MAX_AUDIO_SECONDS`, so a small file that decodes to
  hours cannot fill memory.
* Chinese only (``language="zh"``), a small beam, Silero VAD to drop silence and noise (and with
  it Whisper's habit of inventing text for a beep), and an initial prompt of the hall's words in
  Simplified characters. Whisper still writes Traditional characters at times: the text is
  converted to Simplified (zhconv), and phrases Whisper is known to invent for silence are dropped.

Runs in the Rasa server's venv; faster-whisper, av, numpy and zhconv are imported lazily.
"""

from __future__ import annotations

import io
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from bot.lazy import Lazy
from bot.voice.base import (
    MAX_AUDIO_SECONDS,
    MIN_AUDIO_SECONDS,
    AudioTooLong,
    BadAudio,
    Transcript,
    UnsupportedAudio,
    VoiceUnavailable,
    check_audio,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
#: Words of the service hall, in Simplified characters: Whisper leans towards them and towards
#: Simplified script. Keep it short (it is decoded before every recording). Chosen on the dev split
#: of the evaluation questions (mean CER 0.161 with a shorter list, 0.149 with this one; none: ~0.20).
DOMAIN_PROMPT = ("以下是普通话的句子。政务服务大厅办事咨询：身份证、户口本、落户、居住证、社保卡、医保、公积金、"
                 "结婚登记、营业执照、驾驶证、驾照、护照、港澳通行证、签注、出生证明、不动产登记、退休、补办、换领、"
                 "加急、材料、办理。")
#: What Whisper writes for silence or music (subtitle credits, channel slogans): never a question.
HALLUCINATIONS = ("字幕", "订阅", "点赞", "打赏", "明镜", "amara", "谢谢观看", "感谢观看", "请不吝", "下期再见")


def _prompt_sentences(prompt: str) -> list[str]:
    """The prompt's own sentences, which Whisper sometimes repeats for a sound that is not speech."""
    return [p for p in re.split(r"[。：:]", prompt) if len(p) >= 6]


class WhisperRecognizer:
    """:class:`~bot.voice.base.Recognizer` with faster-whisper on the CPU."""

    name = "whisper"

    def __init__(self, model_dir: Path, *, threads: int | None = None, beam_size: int = 3,
                 prompt: str = DOMAIN_PROMPT, max_seconds: float = MAX_AUDIO_SECONDS) -> None:
        self.model_dir = model_dir
        self.threads = threads or min(4, os.cpu_count() or 1)
        self.beam_size = beam_size
        self.prompt = prompt
        self.max_seconds = max_seconds
        #: Whisper's own "nothing was said" test. The VAD already drops silence and noise, and at
        #: Whisper's default (0.6) one-word answers such as "护照" were dropped now and then.
        self.no_speech_threshold = 0.9
        self.load_seconds: float | None = None
        self._model: Lazy[Any] = Lazy(self._load)

    @staticmethod
    def missing() -> str | None:
        """Why this engine cannot run here (a package missing), or None."""
        import importlib.util

        for module in ("faster_whisper", "av", "ctranslate2", "zhconv"):
            if importlib.util.find_spec(module) is None:
                return f"Python package {module} is missing (requirements/rasa.lock)"
        return None

    def model(self) -> Any:
        """The loaded model (assembled and loaded on the first call)."""
        return self._model.get()

    def _load(self) -> Any:
        problem = self.missing()
        if problem:
            raise VoiceUnavailable(f"语音识别不可用 ({problem})")
        from bot.voice.model import ensure_model

        started = time.perf_counter()
        ensure_model(self.model_dir)
        from faster_whisper import WhisperModel

        logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # a line per recording

        try:
            model = WhisperModel(str(self.model_dir), device="cpu", compute_type="int8",
                                 cpu_threads=self.threads, local_files_only=True)
        except (RuntimeError, ValueError, OSError) as error:
            raise VoiceUnavailable(f"语音识别模型无法加载 ({error})") from error
        self.load_seconds = time.perf_counter() - started
        logger.info("Whisper model loaded from %s in %.1f s", self.model_dir, self.load_seconds)
        return model

    def warm(self) -> None:
        """Load the model and run it once: the first run allocates and packs its buffers (seconds).

        Silence would be dropped by the VAD before Whisper ever ran, so the warm-up decodes a
        second of quiet noise without the VAD, then runs the VAD once on its own."""
        import numpy as np

        noise = (np.random.default_rng(0).standard_normal(SAMPLE_RATE) * 0.01).astype(np.float32)
        segments, _ = self.model().transcribe(noise, language="zh", beam_size=self.beam_size, vad_filter=False,
                                              initial_prompt=self.prompt, without_timestamps=True,
                                              condition_on_previous_text=False, temperature=0.0)
        for _ in segments:
            pass
        self._run(noise)

    def decode(self, audio: bytes) -> Any:
        """Mono float32 samples at 16 kHz from any container PyAV reads (numpy array)."""
        import av
        import numpy as np

        check_audio(audio)
        limit = int((self.max_seconds + 0.5) * SAMPLE_RATE)
        chunks: list[Any] = []
        samples = 0
        try:
            with av.open(io.BytesIO(audio), mode="r", metadata_errors="ignore") as container:
                if not container.streams.audio:
                    raise UnsupportedAudio("无法识别这段录音的格式 (no audio stream in the upload)")
                resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
                for frame in container.decode(audio=0):
                    for out in resampler.resample(frame):
                        chunk = out.to_ndarray().reshape(-1)
                        chunks.append(chunk)
                        samples += chunk.size
                    if samples > limit:
                        raise AudioTooLong(f"录音太长，请在 {self.max_seconds:.0f} 秒内说完 "
                                           f"(audio longer than {self.max_seconds:.0f} s)")
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as error:
            raise UnsupportedAudio(f"无法识别这段录音的格式，请重新录音 (cannot decode the audio: {error})") from None
        if not chunks:
            raise BadAudio("没有录到声音，请按话筒按钮后再说话 (the recording has no audio)")
        pcm = np.concatenate(chunks).astype(np.float32) / 32768.0
        if pcm.size > limit:
            raise AudioTooLong(f"录音太长，请在 {self.max_seconds:.0f} 秒内说完 "
                               f"(audio longer than {self.max_seconds:.0f} s)")
        return pcm

    def transcribe(self, audio: bytes) -> Transcript:
        started = time.perf_counter()
        samples = self.decode(audio)
        seconds = samples.size / SAMPLE_RATE
        if seconds < MIN_AUDIO_SECONDS:
            return Transcript("", seconds, time.perf_counter() - started)
        text = self._run(samples)
        return Transcript(text, seconds, time.perf_counter() - started)

    def _run(self, samples: Any) -> str:
        model = self.model()
        try:
            segments, _ = model.transcribe(
                samples, language="zh", beam_size=self.beam_size, vad_filter=True,
                vad_parameters={"min_silence_duration_ms": 500}, initial_prompt=self.prompt,
                condition_on_previous_text=False, without_timestamps=True, temperature=(0.0, 0.4, 0.8),
                no_speech_threshold=self.no_speech_threshold)
            text = "".join(segment.text for segment in segments)
        except (RuntimeError, ValueError) as error:
            raise VoiceUnavailable(f"语音识别失败，请再说一遍 ({error})") from error
        return self.clean(text)

    def clean(self, text: str) -> str:
        """Simplified characters, Whisper's inventions for silence and echoes of the prompt removed."""
        import zhconv

        text = zhconv.convert(text.strip(), "zh-cn")
        lowered = text.lower()
        if any(word in lowered for word in HALLUCINATIONS):
            return ""
        for sentence in _prompt_sentences(self.prompt):
            text = text.replace(sentence, "")
        text = re.sub(r"^[\s，。,.!?！？、：:]+", "", text).strip()
        bare = re.sub(r"[\s，。,.!?！？、：:]", "", text)
        if len(bare) >= 6 and bare in re.sub(r"[\s，。,.!?！？、：:]", "", self.prompt):
            return ""  # an echo of the prompt's list of words
        return text
