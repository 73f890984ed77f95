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
                                             ("ACTION_PORT", "http"), ("GUIDE_QUERY_ENCODER", "tiny")])
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


def test_the_rasa_server_gets_its_worker_count_and_a_bad_one_is_refused():
    import pytest

    from bot.errors import ConfigError
    from bot.settings import threads_for

    assert threads_for("rasa", {})["SANIC_WORKERS"] == "2"
    assert threads_for("rasa", {"RASA_WORKERS": "1"})["SANIC_WORKERS"] == "1"
    assert threads_for("rasa", {"RASA_WORKERS": "0"})["SANIC_WORKERS"] == "1"  # at least one
    assert "SANIC_WORKERS" not in threads_for("actions", {})
    with pytest.raises(ConfigError, match="RASA_WORKERS"):
        threads_for("rasa", {"RASA_WORKERS": "two"})


def test_the_query_student_has_its_own_ranker_and_calibration():
    full = load_settings({})
    assert full.query_encoder == "full" and full.ranker == ROOT / "knowledge" / "ranker.json"
    student = load_settings({"GUIDE_QUERY_ENCODER": "student"})
    assert student.ranker == ROOT / "knowledge" / "ranker-student.json"
    assert student.calibration == ROOT / "knowledge" / "calibration-student.json"
    # Switching either way gives the files of the encoder switched to, and back again.
    assert full.with_query_encoder("student") == student
    assert student.with_query_encoder("full") == full
    custom = load_settings({"GUIDE_RANKER": "/srv/fit/r.json", "GUIDE_QUERY_ENCODER": "student"})
    assert str(custom.ranker) == "/srv/fit/r-student.json"
    with pytest.raises(ConfigError, match="GUIDE_QUERY_ENCODER"):
        full.with_query_encoder("tiny")
