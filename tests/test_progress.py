"""The progress line's rate and ETA count only the steps this process did."""

import io

from hflow import progress as progress_module
from hflow.progress import Progress


def test_a_resumed_run_reports_the_rate_of_its_own_steps(monkeypatch):
    clock = iter([100.0, 130.0])  # construction, then the first line 30 s later
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    p = Progress(300_000, "run", stream=out, start=275_000)
    p.update(276_200)  # 1,200 steps in 30 s since the resume
    line = out.getvalue()
    assert "| 40 steps/s |" in line, line
    assert "ETA 9:55" in line, line  # 23,800 steps left at 40 steps/s


def test_a_fresh_run_counts_from_zero(monkeypatch):
    clock = iter([0.0, 50.0])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    Progress(1_000, "run", stream=out).update(500)
    assert "| 10 steps/s | ETA 0:50" in out.getvalue()
