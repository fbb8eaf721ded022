"""helpers._profile: records only when asked, one JSON line each, with the chapter."""

import json

from helpers import _profile


def test_record_writes_nothing_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(_profile.PROFILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    _profile.record("maps", "GRAD", 1.0)
    assert list(tmp_path.iterdir()) == []


def test_record_appends_one_line_per_call_with_the_chapter(tmp_path, monkeypatch):
    path = tmp_path / "profile.jsonl"
    monkeypatch.setenv(_profile.PROFILE_ENV, str(path))
    monkeypatch.setenv(_profile.CHAPTER_ENV, "02_randomization_sensitivity")
    _profile.record("maps", "SG", 1.23456, n=16, state="trained")
    _profile.record("training", "U-Net r0", 2.0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["what"] for r in rows] == ["SG", "U-Net r0"]
    assert rows[0] == {**rows[0], "kind": "maps", "seconds": 1.235, "n": 16, "chapter": "02_randomization_sensitivity"}
