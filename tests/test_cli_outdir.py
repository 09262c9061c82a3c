"""The command line never deletes a file it did not write.

An existing non-empty ``--out`` without cfdkit's marker is refused (``--overwrite`` writes into it, replacing
only files with the names of cfdkit's outputs); a folder that contains the working directory is refused; a mount
point works (files are moved in one by one, the folder itself is never renamed); the temporary folders of
killed runs are swept by the next run, and nothing else is.
"""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cfdkit import cli
from cfdkit.cli import MARKER, TMP_MARKER, main

from conftest import ROOT


def _audit(out, *extra):
    return main(["audit", "--dataset", "synthetic", "--out", str(out), "--n-test", "8", "--no-verify", "--estimate-only", "--no-plots",
                 *extra])


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _populate(folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "thesis.tex").write_bytes(b"\\section{mine}\n")
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "table.csv").write_bytes(b"a,b\n1,2\n" * 100)
    (folder / ".hidden").write_bytes(bytes(range(256)))
    return _snapshot(folder)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _fake_tmp(where: Path, name: str, pid: int, host: str | None = None, started: float | None = None,
              marker: bool = True) -> Path:
    t = where / name
    t.mkdir()
    (t / "sets.csv").write_text("half-written")
    if marker:
        (t / TMP_MARKER).write_text(json.dumps({"tool": "cfdkit", "pid": pid, "host": host or socket.gethostname(),
                                                "started": time.time() if started is None else started}))
    return t


# ---------------------------------------------------------------------------------------------- populated folders

@pytest.mark.parametrize("command", ["audit", "reproduce"])
def test_populated_folder_is_refused_and_left_byte_for_byte(tmp_path, capsys, command, monkeypatch):
    out = tmp_path / "mine"
    before = _populate(out)
    if command == "audit":
        rc = _audit(out)
    else:
        import cfdkit.studies.reproduce as R

        monkeypatch.setattr(R, "run_reproduction", lambda o, **k: (o / "REPRODUCTION.md").write_text("x"))
        rc = main(["reproduce", "--out", str(out), "--synthetic", "--only", "tag-bias", "--no-plots"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--overwrite" in err and "thesis.tex" in err and len(err.strip().splitlines()) == 1
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_overwrite_writes_beside_the_users_files(tmp_path, capsys):
    out = tmp_path / "mine"
    before = _populate(out)
    (out / "sets.csv").write_bytes(b"the user's own sets.csv")
    assert _audit(out, "--overwrite") == 0
    after = _snapshot(out)
    assert {k: after[k] for k in before} == before                         # every user file, byte for byte
    assert json.loads((out / "summary.json").read_text())["n_test"] == 8
    assert (out / "sets.csv").read_bytes() != b"the user's own sets.csv"   # --overwrite: the output name is cfdkit's
    marker = json.loads((out / MARKER).read_text())
    assert set(marker["files"]) == {"sets.csv", "summary.json", "report.html"}
    assert not [p for p in out.iterdir() if p.name.startswith(".cfdkit.tmp-")]
    # the folder is now cfdkit's: a rerun needs no --overwrite and still leaves the user's files alone
    assert _audit(out, "--seed", "3") == 0
    again = _snapshot(out)
    assert {k: again[k] for k in before} == before


def test_marked_folder_rerun_removes_only_unchanged_files_it_wrote(tmp_path, capsys):
    out = tmp_path / "aud"
    assert main(["audit", "--dataset", "synthetic", "--out", str(out), "--n-test", "8", "--no-verify", "--estimate-only"]) == 0
    assert (out / "size_distribution.png").exists()
    (out / "report.html").write_text("I edited this report")                     # listed, but changed by the user
    assert _audit(out) == 0                                                      # --no-plots: no figure this time
    assert not (out / "size_distribution.png").exists()                          # cfdkit's, unchanged: removed
    assert "I edited" not in (out / "report.html").read_text()                   # rewritten by this run


def test_marker_cannot_make_cfdkit_delete_outside_the_folder(tmp_path, capsys):
    out = tmp_path / "aud"
    assert _audit(out) == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    import hashlib

    sha = hashlib.sha256(b"keep").hexdigest()
    m = json.loads((out / MARKER).read_text())
    m["files"].update({"../victim.txt": sha, str(victim): sha})
    (out / MARKER).write_text(json.dumps(m))
    assert _audit(out) == 0
    assert victim.read_text() == "keep"


def test_a_user_file_named_like_an_output_in_a_marked_folder_is_not_replaced(tmp_path, capsys):
    out = tmp_path / "aud"
    assert _audit(out) == 0
    m = json.loads((out / MARKER).read_text())
    del m["files"]["report.html"]                               # as if the user had put report.html there
    (out / MARKER).write_text(json.dumps(m))
    (out / "report.html").write_text("the user's report")
    assert _audit(out) == 2
    err = capsys.readouterr().err
    assert "report.html" in err and "--overwrite" in err
    assert (out / "report.html").read_text() == "the user's report"
    kept = [p for p in out.iterdir() if p.name.startswith("cfdkit-run-")]
    assert len(kept) == 1 and (kept[0] / "summary.json").exists()          # the finished run is not lost either


# ------------------------------------------------------------------------------ the working directory's ancestors

@pytest.mark.parametrize("rel", [".", "..", "../..", "./../b/.."], ids=["cwd", "parent", "grandparent", "dotted"])
@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_folder_containing_the_working_directory_is_refused(tmp_path, monkeypatch, capsys, rel, overwrite):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "script.py").write_text("print('mine')")
    (tmp_path / "a" / "notes.md").write_text("notes")
    before = _snapshot(tmp_path)
    monkeypatch.chdir(work)
    assert _audit(rel, *(["--overwrite"] if overwrite else [])) == 2
    err = capsys.readouterr().err
    assert "working directory" in err
    assert _snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


# ------------------------------------------------------------------------------------------------ mount points

def _no_dir_renames(monkeypatch, mounted: Path):
    """Simulate a mount point: renaming the folder (or any folder onto it) fails with EBUSY."""
    real_rename, real_replace = os.rename, os.replace

    def guard(real):
        def f(src, dst, *a, **k):
            if Path(src).is_dir() or Path(dst).resolve() == mounted.resolve():
                raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(dst))
            return real(src, dst, *a, **k)
        return f

    monkeypatch.setattr(os, "rename", guard(real_rename))
    monkeypatch.setattr(os, "replace", guard(real_replace))
    real_ismount = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p).resolve() == mounted.resolve() or real_ismount(p))


@pytest.mark.parametrize("state", ["empty", "previous-run", "user-files"])
def test_mount_point_as_out(tmp_path, monkeypatch, capsys, state):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    user = {}
    if state == "previous-run":
        assert _audit(mnt) == 0
    elif state == "user-files":
        user = _populate(mnt)
    _no_dir_renames(monkeypatch, mnt)
    assert _audit(mnt, "--seed", "5", *(["--overwrite"] if state == "user-files" else [])) == 0, \
        capsys.readouterr().err
    s = json.loads((mnt / "summary.json").read_text())
    assert s["seed"] == 5 and (mnt / "sets.csv").exists() and (mnt / MARKER).exists()
    after = _snapshot(mnt)
    assert {k: after[k] for k in user} == user
    assert not [p.name for p in mnt.iterdir() if p.name.startswith(".")and p.name != MARKER and p.name != ".hidden"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnt"]


def test_new_folder_that_cannot_be_renamed_into_place(tmp_path, monkeypatch, capsys):
    out = tmp_path / "new"
    _no_dir_renames(monkeypatch, out)
    assert _audit(out) == 0, capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["n_test"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]


# ------------------------------------------------------------------------------------- stale temporary folders

@pytest.mark.parametrize("where", ["beside", "inside"])
def test_stale_temporary_folder_of_a_dead_process_is_swept(tmp_path, capsys, where):
    out = tmp_path / "aud"
    if where == "inside":
        assert _audit(out) == 0
        stale = _fake_tmp(out, ".cfdkit.tmp-dead1", _dead_pid())
    else:
        stale = _fake_tmp(tmp_path, ".aud.tmp-dead1", _dead_pid())
    assert _audit(out) == 0
    assert not stale.exists()


def test_only_cfdkits_stale_folders_are_swept(tmp_path, capsys):
    out = tmp_path / "aud"
    live = _fake_tmp(tmp_path, ".aud.tmp-live", os.getpid())                          # a run in progress
    unmarked = _fake_tmp(tmp_path, ".aud.tmp-nomarker", _dead_pid(), marker=False)    # not provably cfdkit's
    other = _fake_tmp(tmp_path, ".other.tmp-dead", _dead_pid())                       # another output's
    far_new = _fake_tmp(tmp_path, ".aud.tmp-farnew", 1, host="another-host")         # another host, recent
    far_old = _fake_tmp(tmp_path, ".aud.tmp-farold", 1, host="another-host",
                        started=time.time() - cli.STALE_OTHER_HOST_S - 60)
    assert _audit(out) == 0
    assert live.exists() and unmarked.exists() and other.exists() and far_new.exists()
    assert not far_old.exists()


_SLOW_RUN = """
import sys, time
import cfdkit.studies as E
def slow(*a, **k):
    time.sleep(300)
E.audit_points = slow
from cfdkit.cli import main
main(["audit", "--dataset", "synthetic", "--out", sys.argv[1], "--n-test", "8", "--no-verify", "--estimate-only", "--no-plots"])
"""


@pytest.mark.parametrize("existing", [False, True], ids=["new-folder", "existing-folder"])
def test_killed_run_leaves_nothing_behind_after_the_next_run(tmp_path, capsys, existing):
    out = tmp_path / "aud"
    if existing:
        assert _audit(out) == 0
    before = _snapshot(out) if existing else None
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen([sys.executable, "-c", _SLOW_RUN, str(out)], env=env, cwd=str(tmp_path))
    where, prefix = (out, ".cfdkit.tmp-") if existing else (tmp_path, ".aud.tmp-")
    deadline, tmps = time.monotonic() + 120, []
    try:
        while time.monotonic() < deadline and not tmps:
            tmps = [t for t in where.iterdir() if t.name.startswith(prefix) and (t / TMP_MARKER).exists()]
            time.sleep(0.1)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    assert len(tmps) == 1, "the run never created its temporary folder"
    assert tmps[0].exists()                                     # killed: the folder is left behind ...
    if existing:
        assert _snapshot(out) == {**before, **{k: v for k, v in _snapshot(out).items() if k.startswith(".cfdkit.tmp-")}}
    assert _audit(out) == 0                                     # ... and the next run sweeps it
    assert not tmps[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aud"]
    assert not [t for t in out.iterdir() if t.name.startswith(".cfdkit.tmp-")]


def test_terminated_run_removes_its_temporary_folder(tmp_path):
    out = tmp_path / "aud"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen([sys.executable, "-c", _SLOW_RUN, str(out)], env=env, cwd=str(tmp_path))
    deadline, tmps = time.monotonic() + 120, []
    try:
        while time.monotonic() < deadline and not tmps:
            tmps = [t for t in tmp_path.iterdir() if t.name.startswith(".aud.tmp-") and (t / TMP_MARKER).exists()]
            time.sleep(0.1)
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(60)
    assert len(tmps) == 1, "the run never created its temporary folder"
    assert rc == -signal.SIGTERM                                 # it still dies of the signal ...
    assert sorted(x.name for x in tmp_path.iterdir()) == []     # ... after removing its temporary folder
