"""The command line takes its global flags before or after the subcommand, and says where its index is."""

from __future__ import annotations

from pathlib import Path

from assistant.cli import _parser, settings_from
from assistant.settings import PROJECT_ROOT, Settings


def test_global_flags_are_accepted_after_the_subcommand_too(tmp_path):
    before = _parser().parse_args(["--index-dir", str(tmp_path), "ask", "q"])
    after = _parser().parse_args(["ask", "q", "--index-dir", str(tmp_path), "--collection", "c"])
    assert Path(settings_from(before).index_dir) == tmp_path == Path(settings_from(after).index_dir)
    assert settings_from(after).collection == "c"
    mixed = _parser().parse_args(["--collection", "outer", "index", str(tmp_path)])
    assert settings_from(mixed).collection == "outer"  # not reset by the subcommand's own (absent) flag


def test_the_default_index_is_the_projects_wherever_it_runs_from(monkeypatch, tmp_path):
    monkeypatch.delenv("ASSISTANT_INDEX_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert Path(Settings().index_dir) == PROJECT_ROOT / "index"
    assert "index/ in the project folder" in _parser().format_help()
