from pathlib import Path

import pytest

from bot.errors import KnowledgeError
from bot.knowledge.synonyms import Synonyms
from bot.knowledge.text import normalize
from bot.settings import load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syn.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_variants_add_the_official_term_and_keep_the_question(tmp_path):
    syn = Synonyms.load(write(tmp_path, "# comment\n驾驶证: 驾照, driver license\n结婚登记: 扯证\n"))
    assert syn.expand(normalize("驾照到期了")) == "驾照到期了 驾驶证"
    assert syn.expand(normalize("My Driver License expired")) == "my driver license expired 驾驶证"
    assert syn.expand("下个月扯证") == "下个月扯证 结婚登记"
    assert syn.expand("驾驶证到期了") == "驾驶证到期了"  # already official: nothing added


def test_latin_variants_match_whole_words_only(tmp_path):
    syn = Synonyms.load(write(tmp_path, "税务: tax\n"))
    assert syn.expand("call a taxi") == "call a taxi"
    assert syn.expand("tax 怎么报") == "tax 怎么报 税务"


def test_traditional_variants_match_simplified_questions(tmp_path):
    syn = Synonyms.load(write(tmp_path, "不动产权证书: 房產證\n"))
    assert syn.expand(normalize("房產證丢了")).endswith("不动产权证书")


def test_malformed_line_names_file_and_line(tmp_path):
    path = write(tmp_path, "身份证: id card\n没有冒号的行\n")
    with pytest.raises(KnowledgeError, match=f"{path}:2"):
        Synonyms.load(path)


def test_missing_file_means_no_expansion(tmp_path):
    assert Synonyms.load(tmp_path / "none.txt").expand("驾照") == "驾照"


def test_bundled_list_loads():
    syn = Synonyms.load(load_settings({}).synonyms)
    assert len(syn.pairs) > 100
    assert "身份证" in syn.expand("my id card丢了")
