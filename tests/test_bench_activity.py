"""The benchmark's account of what the machine did in a window (tests/bench/pgactivity.py)."""

from tests.bench import pgactivity


def test_the_share_of_cpu_stolen_by_the_hypervisor_is_read_from_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 50 0 25 400 5 0 0 20 0 0\nintr 1\n")
    start = pgactivity.machine_cpu(stat)
    stat.write_text("cpu  250 0 100 900 30 0 0 140 0 0\ncpu0 1 0 1 1 1 0 0 1 0 0\n")
    end = pgactivity.machine_cpu(stat)
    # 420 ticks between the two: 150 user, 50 system, 100 idle, 20 waiting for I/O, 100 stolen.
    shares = pgactivity.cpu_shares(start, end)
    assert {k: round(v, 1) for k, v in shares.items()} == {"idle": 23.8, "iowait": 4.8, "steal": 23.8}
    window = pgactivity.Window(cpu=shares)
    assert window.as_json()["cpu_steal_pct"] == 23.8
    assert window.summary().endswith("CPU 24% idle, 5% waiting for I/O, 24% stolen by the hypervisor")


def test_without_proc_stat_the_window_says_nothing_of_the_cpu(tmp_path):
    assert pgactivity.machine_cpu(tmp_path / "missing") is None
    assert pgactivity.cpu_shares(None, {"idle": 1}) == {}
    window = pgactivity.Window()
    assert "CPU" not in window.summary()
    assert not any(k.startswith("cpu_") for k in window.as_json())


def test_the_final_json_line_keeps_each_phases_cpu_shares():
    from tests.bench import run

    kept = {
        k for k in pgactivity.Window(cpu={"idle": 1.0, "iowait": 0.0, "steal": 20.0}).as_json() if k in run.PHASE_KEYS
    }
    assert {"cpu_idle_pct", "cpu_iowait_pct", "cpu_steal_pct", "checkpoints", "wal_mb"} <= kept
