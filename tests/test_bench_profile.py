"""`make bench-profile` (tests/bench/profile.py) says why py-spy failed, and leaves the
benchmark's database as it found it whatever happens."""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest

from tests.bench import profile


def test_a_failing_py_spy_is_reported_with_what_it_said(tmp_path) -> None:
    raw, said = tmp_path / "server.raw", tmp_path / "server.py-spy.log"
    with said.open("wb") as err:
        spy = subprocess.Popen(["sh", "-c", "echo 'Permission denied (os error 13)' >&2; exit 1"], stderr=err)

    with pytest.raises(RuntimeError, match=r"exited with 1 and 0 samples: Permission denied \(os error 13\)"):
        profile.py_spy_samples(spy, raw, said)


def test_py_spys_samples_are_read_when_it_succeeds(tmp_path) -> None:
    raw, said = tmp_path / "server.raw", tmp_path / "server.py-spy.log"
    raw.write_text("main (app/server.py:1);fetch (asyncpg/connection.py:2) 7\n")
    said.write_text("")
    spy = subprocess.Popen(["true"])

    assert profile.py_spy_samples(spy, raw, said) == Counter({"driver (asyncpg)": 7})


def test_the_anchor_index_is_dropped_when_profiling_fails(monkeypatch, tmp_path) -> None:
    anchor: list[bool] = []

    async def anchor_index(url, present):
        anchor.append(present)

    async def prepared(*args, **kwargs):
        return "postgresql://bench", None

    async def anything(*args, **kwargs):
        return type("Inputs", (), {"cheap": ["a"]})()

    def fails(*args):
        raise RuntimeError("wrk fell over")

    monkeypatch.setattr(profile, "PY_SPY", tmp_path)  # exists
    monkeypatch.setattr(profile.database, "prepare", prepared)
    monkeypatch.setattr(profile.database, "anchor_index", anchor_index)
    monkeypatch.setattr(profile, "make_token", anything)
    monkeypatch.setattr(profile.bench_inputs, "build", anything)
    monkeypatch.setattr(profile.bench_postgraphile, "install_functions", anything)
    monkeypatch.setattr(profile, "profile", fails)
    monkeypatch.setattr("sys.argv", ["profile", "small"])

    with pytest.raises(RuntimeError, match="wrk fell over"):
        profile.main()
    assert anchor == [True, False]
