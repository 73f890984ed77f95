import pytest

from bot.errors import ConfigError
from bot.settings import ROOT, SETTINGS, load_settings


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in readme]
    assert missing == [], f"document these settings in README.md: {missing}"


def test_every_setting_has_help():
    assert all(s.help.strip() for s in SETTINGS)


def test_defaults_resolve_relative_to_the_project():
    settings = load_settings({})
    assert settings.knowledge_dir == ROOT / "knowledge" / "guides"
    assert settings.hotline == "12345"


@pytest.mark.parametrize(("name", "value"), [("GUIDE_MIN_SCORE", "high"), ("GUIDE_MIN_SCORE", "7"),
                                             ("ACTION_PORT", "http")])
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})
