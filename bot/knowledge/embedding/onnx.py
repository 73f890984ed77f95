"""The embedding model on ONNX Runtime, float and int8-quantised: the same vectors, cheaper per query.

Why: a citizen's question is one short text, and on the action server's one thread torch
spends most of that time in framework overhead, not arithmetic. ONNX Runtime runs the same
transformer as a static graph; with its weights quantised to int8 (dynamic quantisation:
weights stored as int8, activations quantised per call) it is about 4x faster for one short
question and the model file is under a third of the size, while the vectors stay close to the
float model's (cosine mean 0.99, min > 0.98; the FFN output projections stay float, see
:data:`QUANTISATION`), so an index made with the float model serves the int8 one. The exported
folder therefore carries the *same* model name as its source. Scores move by ~0.01 (int8 a
little lower), and near-ties can swap places: refit the calibration when switching back-ends.

The float graph is kept beside it (``model.fp32.onnx``) and is the default back-end
(``GUIDE_ENCODER=onnx-fp32``): its vectors equal torch's (cosine > 0.99999), so the index, ranker
and calibration fitted with torch hold unchanged, and one short question costs about 12 ms instead
of torch's 28 ms on one core. int8 is faster still (8 ms) but moved one everyday question and a
point of FAQ top-1 in ``make eval``; it stays a measured option.

What :func:`export` writes into ``out_dir`` (assembled next to it and renamed into place):

* ``model.onnx``: the transformer (``input_ids``, ``attention_mask`` -> ``last_hidden_state``,
  dynamic batch and sequence axes), exported with ``torch.onnx.export`` and quantised with
  ``onnxruntime.quantization.quantize_dynamic``;
* ``model.fp32.onnx``: the same graph before quantisation;
* the tokenizer files and ``config_sentence_transformers.json`` (the prompts) of the source;
* ``manifest.json``: the source's ``name`` (unchanged), ``backend: "onnx-int8"``, the source's
  identity (its manifest's hash, its weights' hash and size, its adaptation), the pooling,
  the prompts, the quantisation settings, the versions that made it, and ``check``: the
  quantised graph's cosine to the float graph on :data:`CHECK_TEXTS` (an export below
  :data:`MIN_COSINE` is refused and writes nothing).

It is idempotent like ``bot.knowledge.embedding.adapt``'s ``rebuild``: nothing is done when the folder
was made from the same source (cheap check: the source manifest's hash, the source weights'
size, the export version and settings, the size of every file written).

:class:`OnnxEncoder` runs the folder with ``onnxruntime`` and the ``tokenizers`` fast tokenizer
(no torch, no transformers): prompt, tokenise with truncation at ``max_tokens`` (special tokens
included, as sentence-transformers counts), run, mean-pool over the attention mask, L2-normalise.

Command line::

    python -m bot.knowledge.embedding.onnx --model var/models/multilingual-e5-small-adapted \\
        --out var/models/multilingual-e5-small-adapted-onnx [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.errors import BotError, ModelMissing
from bot.knowledge.embedding.files import publish_folder, read_json

if TYPE_CHECKING:
    from bot.knowledge.embedding.encoder import Kind

log = logging.getLogger(__name__)

#: Bump when the graph, the quantisation or the folder's layout changes: older folders are re-exported.
EXPORT_VERSION = "2"
BACKEND = "onnx-int8"
MODEL_FILE = "model.onnx"
#: The float graph (the default back-end, ``onnx-fp32``).
FLOAT_FILE = "model.fp32.onnx"
FLOAT_BACKEND = "onnx-fp32"
MANIFEST = "manifest.json"
SOURCE_WEIGHTS = "model.safetensors"
#: Copied from the source folder as they are (the tokenizer and the prompts).
COPIED_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                "config_sentence_transformers.json")
PROMPTS: dict[str, str] = {"query": "query: ", "passage": "passage: "}
OPSET = 17
#: ``quantize_dynamic``'s settings, chosen by measured closeness to the float model on 200 titles and
#: questions (cosine mean / min; latency of one short query on one thread, float graph 11.5 ms):
#:
#: * QInt8 weights, per tensor: 0.918 / 0.883; per channel: 0.977 / 0.959 (5.9 ms);
#: * QUInt8 weights, per channel: 0.980 / 0.962, slower (7.2 ms) than QInt8 on this VNNI CPU;
#: * QInt8 per channel, the FFN output projections kept in float: 0.991 / 0.985 (7.4 ms), chosen.
#:   Their input, the GELU output, has a few huge channels, so quantising it per tensor (dynamic
#:   activations always are) costs most of the error; keeping them float costs ~20 MB and ~1.5 ms.
#:   QUInt8 with the same exclusion: 0.992 / 0.986 but 8.7 ms.
QUANTISATION: dict[str, Any] = {
    "method": "dynamic",
    "weight_type": "QInt8",
    "activation_type": "QUInt8",
    "per_channel": True,
    "reduce_range": False,
    "op_types": ["MatMul", "Gather"],
    "kept_float": r"/layer\.\d+/output/dense/MatMul$",
}
#: An export whose quantised vectors are further than this from the float graph's is refused.
MIN_COSINE = 0.98
#: What the export checks the quantised graph on (against the float graph, with the query prompt).
CHECK_TEXTS = (
    "身份证丢了怎么补办", "二建改名", "法考查分", "跨市班车线路", "居住证办理需要哪些材料",
    "公司注销登记", "执业药师注册", "新生儿落户", "驾驶证到期换证", "社保卡挂失",
    "临时价格干预范围事项提价申报", "出入境通行证续签在哪里办", "营业执照经营范围变更",
    "失业保险金申领条件", "不动产登记资料查询", "How do I renew my passport?",
)


# --------------------------------------------------------------------------- the source model


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_label(model_dir: Path) -> dict[str, Any]:
    """What identifies the source model cheaply (no weights hashing): checked on every run."""
    manifest = model_dir / MANIFEST
    weights = model_dir / SOURCE_WEIGHTS
    return {
        "manifest_sha256": _sha256(manifest) if manifest.is_file() else None,
        "weights_bytes": weights.stat().st_size if weights.is_file() else None,
    }


def _pooling(model_dir: Path) -> dict[str, Any]:
    """The source's pooling, which must be mean pooling (prompt included) followed by Normalize."""
    modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
    types = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if types[:2] != ["Transformer", "Pooling"]:
        raise ModelMissing(f"{model_dir}: modules {types}, expected Transformer, Pooling[, Normalize]")
    config = read_json(model_dir / modules[1]["path"] / "config.json")
    modes = sorted(k[len("pooling_mode_"):] for k, v in config.items() if k.startswith("pooling_mode_") and v)
    if modes != ["mean_tokens"]:
        raise ModelMissing(f"{model_dir}: pooling {modes}; only mean pooling is exported")
    return {"mode": "mean", "include_prompt": bool(config.get("include_prompt", True)),
            "normalize": "Normalize" in types[2:]}


def stale_reason(model_dir: Path, out_dir: Path, quantisation: dict[str, Any] | None = None) -> str | None:
    """Why ``out_dir`` is not the ONNX export of ``model_dir``, or ``None`` when it is current."""
    manifest = read_json(out_dir / MANIFEST) if (out_dir / MANIFEST).is_file() else None
    if manifest is None:
        return "no ONNX model yet"
    if manifest.get("export_version") != EXPORT_VERSION or manifest.get("backend") != BACKEND:
        return "the export has changed"
    if manifest.get("quantisation") != (quantisation or QUANTISATION):
        return "the quantisation settings have changed"
    recorded = manifest.get("source") or {}
    if any(recorded.get(k) != v for k, v in _source_label(model_dir).items()):
        return f"the model in {model_dir} has changed"
    for name, size in (manifest.get("files") or {}).items():
        path = out_dir / name
        if not path.is_file() or path.stat().st_size != size:
            return f"{name} is missing or has changed size"
    return None


# --------------------------------------------------------------------------- export


def _export_float(model_dir: Path, path: Path) -> None:
    """The float transformer as ONNX: (input_ids, attention_mask) -> last_hidden_state."""
    import warnings

    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(model_dir), add_pooling_layer=False, attn_implementation="eager")
    model.eval()

    class Transformer(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # Single texts: token_type_ids are all zero, which is the model's default.
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids = torch.tensor([[0, 6, 5, 2, 1, 1], [0, 6, 5, 7, 8, 2]], dtype=torch.long)
    mask = (ids != 1).long()
    axes = {0: "batch", 1: "sequence"}
    # The TorchScript exporter (dynamo=False) needs no onnxscript; its deprecation notice and the
    # tracer's notes on mask arithmetic (constant for a padding-free mask) are expected.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Transformer(model), (ids, mask), str(path), dynamo=False, opset_version=OPSET,
            input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
            do_constant_folding=True,
        )


def _kept_float(float_path: Path, settings: dict[str, Any], layers: int) -> list[str]:
    """The MatMul nodes that stay float: one FFN output projection per layer, found by name."""
    import re

    import onnx

    pattern = settings.get("kept_float")
    if not pattern:
        return []
    graph = onnx.load(str(float_path), load_external_data=False).graph
    names = [n.name for n in graph.node if n.op_type == "MatMul" and re.search(pattern, n.name)]
    if layers and len(names) != layers:
        raise BotError(f"{float_path}: {len(names)} nodes match {pattern!r}, expected one per layer ({layers}); "
                       f"the exporter names nodes differently: update QUANTISATION['kept_float']")
    return names


def _quantise(float_path: Path, out_path: Path, settings: dict[str, Any], layers: int = 0) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic's advice to pre-process is for static quantisation
    try:
        quantize_dynamic(
            str(float_path), str(out_path),
            op_types_to_quantize=list(settings["op_types"]),
            per_channel=bool(settings["per_channel"]),
            reduce_range=bool(settings["reduce_range"]),
            weight_type=getattr(QuantType, settings["weight_type"]),
            nodes_to_exclude=_kept_float(float_path, settings, layers),
        )
    finally:
        root.setLevel(level)


def _closeness(scratch: Path, float_path: Path) -> dict[str, Any]:
    """Cosine of the quantised graph's vectors to the float graph's on :data:`CHECK_TEXTS`."""
    quantised = OnnxEncoder(scratch, threads=1).encode(CHECK_TEXTS, kind="query")
    reference = OnnxEncoder(scratch, threads=1, model_file=float_path.name).encode(CHECK_TEXTS, kind="query")
    cosine = (quantised * reference).sum(axis=1)
    return {"texts": len(CHECK_TEXTS), "cosine_mean": round(float(cosine.mean()), 5),
            "cosine_min": round(float(cosine.min()), 5)}


def export(model_dir: Path, out_dir: Path, *, force: bool = False,
           quantisation: dict[str, Any] | None = None) -> Path:
    """Write the int8 ONNX folder of the sentence-transformers model in ``model_dir`` at ``out_dir``.

    Idempotent: nothing is written when ``out_dir`` is current (:func:`stale_reason`).

    Raises:
        ModelMissing: ``model_dir`` holds no model, or one whose pooling is not mean pooling.
    """
    settings = dict(quantisation or QUANTISATION)
    if not (model_dir / "modules.json").is_file() or not (model_dir / SOURCE_WEIGHTS).is_file():
        raise ModelMissing(f"{model_dir}: no embedding model here; run `make model` (or `make adapted-model`)")
    if not force and stale_reason(model_dir, out_dir, settings) is None:
        return out_dir
    import onnxruntime
    import torch

    pooling = _pooling(model_dir)
    source_meta = read_json(model_dir / MANIFEST)
    st_config = read_json(model_dir / "config_sentence_transformers.json")
    prompts = dict(st_config.get("prompts") or source_meta.get("prompts") or PROMPTS)
    config = read_json(model_dir / "config.json")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        started = time.perf_counter()
        float_path = scratch / "float.onnx"
        _export_float(model_dir, float_path)
        exported = time.perf_counter()
        layers = int(config.get("num_hidden_layers") or 0)
        _quantise(float_path, scratch / MODEL_FILE, settings, layers)
        quantised = time.perf_counter()
        for name in COPIED_FILES:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, scratch / name)
        (scratch / MANIFEST).write_text(json.dumps({"prompts": prompts, "pooling": pooling}), encoding="utf-8")
        check = _closeness(scratch, float_path)
        if check["cosine_min"] < MIN_COSINE:
            raise BotError(f"{model_dir}: the int8 graph's vectors are too far from the float model's "
                           f"(cosine min {check['cosine_min']} < {MIN_COSINE} on {check['texts']} texts); "
                           f"nothing written")
        float_path.rename(scratch / FLOAT_FILE)
        if any(scratch.glob("float.onnx?*")):  # external data would be tied to the old name
            raise BotError(f"{model_dir}: the float graph was written with external data; nothing written")
        source = {
            **_source_label(model_dir),
            "dir": model_dir.name,
            "name": source_meta.get("name"),
            "weights_sha256": _sha256(model_dir / SOURCE_WEIGHTS),
            "base": source_meta.get("base"),
        }
        manifest = {
            # The source's name, unchanged: the index, ranker and calibration made with the float
            # model are tied to it and stay valid (the int8 vectors are within cosine 0.98 of it).
            "name": str(source_meta.get("model") or source_meta.get("name") or model_dir.name),
            # A query student's space: the model whose vectors it imitates (bot.knowledge.embedding.distil).
            "space": source_meta.get("space"),
            "backend": BACKEND,
            "export_version": EXPORT_VERSION,
            "dimension": int(config.get("hidden_size") or source_meta.get("dimension") or 0),
            "max_seq_length": source_meta.get("max_seq_length"),
            "prompts": prompts,
            "pooling": pooling,
            "source": source,
            "adaptation": source_meta.get("adaptation"),
            "opset": OPSET,
            "quantisation": settings,
            "check": check,
            "made_with": {"torch": torch.__version__.split("+")[0], "onnxruntime": onnxruntime.__version__},
            "seconds": {"export": round(exported - started, 1), "quantise": round(quantised - exported, 1)},
            "files": {str(p.relative_to(scratch)): p.stat().st_size
                      for p in sorted(scratch.rglob("*")) if p.is_file() and p.name != MANIFEST},
        }
        (scratch / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        publish_folder(scratch, out_dir)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return out_dir


# --------------------------------------------------------------------------- the encoder


class OnnxEncoder:
    """An exported folder (:func:`export`) run by ONNX Runtime; implements ``Encoder``.

    ``threads`` is ONNX Runtime's intra-op thread count (inter-op 1, sequential execution),
    so one encoder uses at most that many cores. Safe to call from several threads at once.

    Activations are quantised per call (over the whole batch), so a text's vector depends very
    slightly on the texts it is batched with (cosine > 0.99 to the same text alone); the same
    call always gives the same vectors.
    """

    def __init__(self, onnx_dir: Path, max_tokens: int = 64, threads: int = 1, *, model_file: str = MODEL_FILE) -> None:
        onnx_dir = Path(onnx_dir)
        if not (onnx_dir / model_file).is_file() or not (onnx_dir / "tokenizer.json").is_file():
            raise ModelMissing(f"{onnx_dir}: no ONNX embedding model here; run `make onnx-model` to export it")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        meta = read_json(onnx_dir / MANIFEST)
        pooling = meta.get("pooling") or {"mode": "mean", "normalize": True}
        if pooling.get("mode") != "mean":
            raise ModelMissing(f"{onnx_dir}: pooling {pooling.get('mode')!r} is not supported (mean only)")
        #: The vector space the vectors are in, which indexes, rankers and calibrations are tied to:
        #: the model's own name, or for a distilled query student the name of the model it imitates.
        self.name = str(meta.get("space") or meta.get("model") or meta.get("name") or onnx_dir.name)
        #: The model itself (differs from ``name`` for a query student).
        self.model = str(meta.get("name") or self.name)
        #: The domain adaptation of the source model, recorded in the index manifest.
        self.adaptation: dict[str, object] | None = meta.get("adaptation")
        self.backend = FLOAT_BACKEND if model_file == FLOAT_FILE else str(meta.get("backend") or BACKEND)
        self.max_tokens = int(max_tokens)
        prompts = meta.get("prompts") or read_json(onnx_dir / "config_sentence_transformers.json").get("prompts")
        self._prompts: dict[str, str] = dict(prompts or {})

        tokenizer = Tokenizer.from_file(str(onnx_dir / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_tokens)
        self._tokenizer = tokenizer
        self._pad_id = tokenizer.token_to_id("<pad>")
        if self._pad_id is None:
            self._pad_id = 0

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(onnx_dir / model_file), sess_options=options,
                                             providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        output = self._session.get_outputs()[0]
        self._output = output.name
        self.dim = int(meta.get("dimension") or output.shape[-1])

    def _ids(self, texts: list[str]) -> list[list[int]]:
        if len(texts) == 1:
            return [self._tokenizer.encode(texts[0]).ids]
        return [e.ids for e in self._tokenizer.encode_batch(texts)]

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        length = max(len(i) for i in ids)
        input_ids = np.full((len(ids), length), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), length), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        hidden = self._session.run([self._output], feed)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def encode(
        self, texts: Sequence[str], *, kind: Kind, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prompt = self._prompts.get(kind, "")
        ids = self._ids([prompt + t for t in texts])
        # Longest first in batches of similar length (as sentence-transformers does): little padding.
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        size = max(1, int(batch_size))
        starts = range(0, len(order), size)
        if progress:
            try:
                from tqdm import tqdm

                starts = tqdm(starts, desc="encode", unit="batch")
            except ImportError:  # pragma: no cover - tqdm comes with sentence-transformers
                pass
        for start in starts:
            chunk = order[start: start + size]
            out[chunk] = self._run([ids[i] for i in chunk])
        return out


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """Command line: export and quantise a model folder (nothing when the export is current)."""
    from bot.settings import ROOT

    default_model = ROOT / "var" / "models" / "multilingual-e5-small-adapted"
    parser = argparse.ArgumentParser(prog="python -m bot.knowledge.embedding.onnx", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model,
                        help=f"sentence-transformers model folder (default {default_model})")
    parser.add_argument("--out", type=Path, help="ONNX folder to write (default: the model folder's name + -onnx)")
    parser.add_argument("--force", action="store_true", help="export even when the folder is current")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out: Path = args.out or args.model.with_name(args.model.name + "-onnx")
    try:
        started = time.perf_counter()
        reason = "--force" if args.force else stale_reason(args.model, out)
        if reason is None:
            print(f"{out}: already current, nothing to do ({time.perf_counter() - started:.1f} s)")
            return 0
        print(f"{out}: exporting {args.model} to ONNX, int8 ({reason})", flush=True)
        export(args.model, out, force=True)
        manifest = read_json(out / MANIFEST)
        size = (out / MODEL_FILE).stat().st_size / 1e6
        print(f"{out}: wrote {manifest['name']} ({BACKEND}, {size:.0f} MB) in {time.perf_counter() - started:.1f} s")
        return 0
    except BotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
