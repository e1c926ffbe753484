"""Faults and bad input: nothing lost, nothing silent, nothing run that should not be."""

import errno
import os
import pickle
import signal
import socket
import subprocess
import time

import pytest
import torch
from conftest import train_command

from hflow import HflowError
from hflow.checkpoint import CHECKPOINT_VERSION, list_checkpoints, with_checksum
from hflow.metrics import read_metrics
from hflow.resolve import resolve
from hflow.run import Run
from hflow.runlock import RunLock

STATE = "state-seeds-0-1"


@pytest.fixture(scope="session")
def run(train_cmd):
    def make(out, **kw):
        return subprocess.run(train_cmd(out, **kw), capture_output=True, text=True)

    return make


@pytest.fixture(scope="module")
def run400(run, tmp_path_factory):
    """A finished 400-step run with checkpoints at 200 and 400, copied by the tests."""
    out = tmp_path_factory.mktemp("run400")
    assert run(out, steps=400).returncode == 0
    return out


def _copy(src, dst):
    subprocess.run(["cp", "-a", f"{src}/.", str(dst)], check=True)
    return dst


class Planted:
    """Pickles to a call of `touch MARKER`: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(run, run400, tmp_path):
    out = _copy(run400, tmp_path / "run")
    marker = tmp_path / "code-ran"
    crafted = out / STATE / "checkpoint-000000000600.pt"
    torch.save({"version": CHECKPOINT_VERSION, "payload": Planted(marker)}, crafted)
    done = run(out, steps=800)
    assert done.returncode == 2
    assert "asks to load code" in done.stderr and "refusing it, nothing was run" in done.stderr
    assert crafted.name in done.stderr and "posix.system" in done.stderr
    assert not marker.exists() and crafted.exists()
    # a raw pickle (not a torch file) is not even unpickled: set aside, the run resumes
    with open(crafted, "wb") as f:
        pickle.dump({"payload": Planted(marker)}, f)
    done = run(out, steps=600)
    assert done.returncode == 0 and "cannot be read" in done.stderr
    assert not marker.exists()


def test_real_checkpoints_load_without_pickled_code(run400):
    paths = list_checkpoints(run400 / STATE)
    assert [p.name for p in paths] == ["checkpoint-000000000200.pt",
                                       "checkpoint-000000000400.pt"]  # the premise: both kept
    for path in paths:
        state = torch.load(path, weights_only=True)  # raises on anything but tensors and data
        assert state["step"] == int(path.stem.split("-")[1])


def test_no_readable_checkpoint_stops_instead_of_starting_over(run, run400, tmp_path):
    out = _copy(run400, tmp_path / "run")
    before = (out / "seed0" / "metrics.csv").read_text()
    for path in list_checkpoints(out / STATE):
        path.write_bytes(b"not a checkpoint")
    done = run(out, steps=800)
    assert done.returncode == 2
    assert "no checkpoint in" in done.stderr and "checkpoint-000000000400.pt" in done.stderr
    assert "to start this run over, delete" in done.stderr.lower()
    assert (out / "seed0" / "metrics.csv").read_text() == before  # nothing overwritten
    assert len(list_checkpoints(out / STATE)) == 2  # nothing deleted


def test_an_unreadable_newer_checkpoint_never_costs_a_readable_one(run, run400, tmp_path):
    """The unreadable file is set aside: the run continues from 400 and keeps its progress."""
    out = _copy(run400, tmp_path / "run")
    (out / STATE / "checkpoint-000000009000.pt").write_bytes(b"torn")
    done = run(out, steps=600)
    assert done.returncode == 0, done.stderr
    assert "at step 400" in done.stdout and "moved to" in done.stderr
    names = [p.name for p in list_checkpoints(out / STATE)]
    assert names == ["checkpoint-000000000400.pt", "checkpoint-000000000600.pt"]
    assert (out / STATE / "checkpoint-000000009000.pt.unreadable").exists()


def test_a_checkpoint_of_another_format_or_shape_is_a_clear_error(run, run400, tmp_path):
    out = _copy(run400, tmp_path / "run")
    latest = list_checkpoints(out / STATE)[-1]
    state = torch.load(latest, weights_only=True)
    torch.save({**state, "version": 1}, latest)
    done = run(out, steps=600)
    assert done.returncode == 2 and "format 1" in done.stderr
    del state["checksum"]
    state["agent"] = {k: v[:1] if isinstance(v, torch.Tensor) and v.dim() else v
                      for k, v in state["agent"].items()}  # one member instead of two
    torch.save(with_checksum(state), latest)  # written whole: a mismatch of shapes, not rot
    done = run(out, steps=600)
    assert done.returncode == 2 and "does not fit this run" in done.stderr
    del state["replay"]
    torch.save(state, latest)
    done = run(out, steps=600)
    assert done.returncode == 2 and "lacks replay" in done.stderr


def test_a_second_process_on_the_same_run_stops_naming_the_holder(train_cmd, run, tmp_path):
    first = subprocess.Popen(train_cmd(tmp_path, steps=20000), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (tmp_path / STATE / ".hflow.lock").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        second = run(tmp_path, steps=20000)
        assert second.returncode == 2
        assert f"pid {first.pid} on host {socket.gethostname()}" in second.stderr
        assert "in use by another hflow process" in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the kernel dropped the dead holder's lock: the directory can be taken again
    with RunLock([tmp_path / STATE, tmp_path / "seed0"]) as lock:
        assert len(lock.locks) == 2


def test_stale_temp_files_of_interrupted_writes_are_removed(run, run400, tmp_path):
    out = _copy(run400, tmp_path / "run")
    leftovers = [out / STATE / ".hflow-checkpoint-000000000600.pt.abc12345.tmp",
                 out / "seed0" / ".hflow-metrics.csv.xyz_9876.tmp"]
    for path in leftovers:
        path.write_bytes(b"x" * 1000)
    assert run(out, steps=600).returncode == 0
    assert not any(p.exists() for p in leftovers)


def test_a_full_disk_names_the_path_and_keeps_the_previous_checkpoints(tiny, tmp_path, monkeypatch):
    cfg = resolve("hiro", options={"train.seeds": [0, 1], "train.steps": 400},
                  sets=tiny("hiro", ["task.name=PointMazeSingle", "train.eval_every=200"]))
    Run(cfg, tmp_path, progress=False).run()
    before = {p.name: p.read_bytes() for p in list_checkpoints(tmp_path / STATE)}

    def full(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    cfg.train.steps = 600
    with pytest.raises(HflowError, match=r"checkpoint-000000000600\.pt failed: no space left "
                                         r"on device \([\d,]+ MiB free"):
        Run(cfg, tmp_path, progress=False).run()
    after = {p.name: p.read_bytes() for p in list_checkpoints(tmp_path / STATE)}
    assert after == before
    assert not list((tmp_path / STATE).glob(".hflow-*.tmp"))


def test_outputs_deleted_under_a_running_job_come_back(tiny, tmp_path, monkeypatch):
    """Snakemake's --rerun-incomplete in a second workflow (with --nolock) deletes a running
    job's outputs; the running job writes both again at its next evaluation, whole."""
    cfg = resolve("hiro", options={"train.seeds": [0, 1], "train.steps": 400},
                  sets=tiny("hiro", ["task.name=PointMazeSingle", "train.eval_every=200"]))
    run = Run(cfg, tmp_path, progress=False)
    trainer = run.trainer
    advance = trainer.advance

    def advance_and_delete():
        advance()
        if trainer.step == 250:
            for seed in (0, 1):
                (tmp_path / f"seed{seed}" / "metrics.csv").unlink()
                (tmp_path / f"seed{seed}" / "config.json").unlink()

    monkeypatch.setattr(trainer, "advance", advance_and_delete)
    run.run()
    for seed in (0, 1):
        assert [r["step"] for r in read_metrics(tmp_path / f"seed{seed}" / "metrics.csv")] == \
            [0, 200, 400]
        assert (tmp_path / f"seed{seed}" / "config.json").is_file()


def test_metrics_of_a_completed_run_survive_a_rerun(run, run400, tmp_path):
    """Rerunning a finished command changes nothing (it resumes at its last step)."""
    out = _copy(run400, tmp_path / "run")
    rows = read_metrics(out / "seed1" / "metrics.csv")
    assert run(out, steps=400).returncode == 0
    after = read_metrics(out / "seed1" / "metrics.csv")
    assert [{k: v for k, v in r.items() if k != "wall_s"} for r in after] == \
        [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


def _flip_one_byte_of_a_weight(path):
    """Flips a byte inside the tensor data of a torch zip (the largest stored record): the
    file still loads, with one weight changed."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        data = max(z.infolist(), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    offset = data.header_offset + 30 + len(data.filename) + len(data.extra)  # local header
    raw[offset + data.file_size // 2] ^= 0x40
    path.write_bytes(bytes(raw))
    torch.load(path, weights_only=True)  # the premise: torch still reads it


def test_bit_rot_in_a_checkpoint_is_caught_and_the_previous_one_used(run, run400, tmp_path):
    """A flipped byte that torch.load accepts: the checksum catches it, the file is set aside
    like a torn one, and the run resumes from the previous checkpoint, saying so; its metrics
    are those of the uninterrupted run."""
    out = _copy(run400, tmp_path / "run")
    newest = list_checkpoints(out / STATE)[-1]
    assert newest.name == "checkpoint-000000000400.pt"
    _flip_one_byte_of_a_weight(newest)
    done = run(out, steps=600)
    assert done.returncode == 0, done.stderr
    assert "at step 200" in done.stdout and "do not match the checksum" in done.stderr
    assert (out / STATE / "checkpoint-000000000400.pt.unreadable").exists()
    straight = _copy(run400, tmp_path / "straight")
    assert run(straight, steps=600).returncode == 0
    rows, expected = (read_metrics(d / "seed0" / "metrics.csv") for d in (out, straight))
    timing = {"wall_s", "steps_per_s"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in rows] == \
        [{k: v for k, v in r.items() if k not in timing} for r in expected]


def test_a_finished_run_is_never_overwritten_by_another(run, run400, tmp_path):
    out = _copy(run400, tmp_path / "run")
    before = (out / "seed1" / "metrics.csv").read_text()
    # (a) another configuration, and a fresh state dir as the old advice suggested
    other = subprocess.run(train_command(out, steps=400, extra=["td3.gamma=0.9"]) +
                           ["--state-dir", str(tmp_path / "x")], capture_output=True, text=True)
    assert other.returncode == 2 and "another configuration (differs in td3.gamma" in \
        other.stderr, other.stderr
    # the same configuration, but no checkpoint to continue from in the given state dir
    done = subprocess.run(train_command(out, steps=400) + ["--state-dir", str(tmp_path / "y")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "has no checkpoint to continue them" in done.stderr
    # (b) a seed claimed by another seed group
    done = run(out, steps=400, seeds="1,2")
    assert done.returncode == 2 and "seed 1 of the seed group 0,1" in done.stderr
    assert (out / "seed1" / "metrics.csv").read_text() == before
    assert not (out / "seed2").exists() or not (out / "seed2" / "metrics.csv").exists()


def test_a_non_checkpoint_in_place_of_the_newest_is_set_aside(run, run400, tmp_path):
    """Not something hflow wrote (here a plain list): set aside like a torn file, the previous
    checkpoint used; never advice to delete the state dir, which holds a good one."""
    out = _copy(run400, tmp_path / "run")
    torch.save([1, 2, 3], out / STATE / "checkpoint-000000009000.pt")
    done = run(out, steps=600)
    assert done.returncode == 0, done.stderr
    assert "at step 400" in done.stdout and "not an hflow checkpoint" in done.stderr
