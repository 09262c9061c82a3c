"""Issue 8: CLI output folders are written atomically; --out is checked; optional dependencies are checked first."""

import json
import os

import pytest

from cfdkit import cli
from cfdkit.cli import main


def _audit(out, *extra):
    return main(["audit", "--dataset", "synthetic", "--out", str(out), "--n-test", "8", "--no-verify", "--estimate-only", *extra])


def test_failed_rerun_leaves_the_previous_run_untouched(tmp_path, monkeypatch, capsys):
    out = tmp_path / "aud"
    assert _audit(out, "--seed", "1", "--no-plots") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"summary.json", "sets.csv"} <= set(before)

    from cfdkit import plots

    def boom(*a, **k):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(plots, "save", boom)
    assert _audit(out, "--seed", "2") == 2                      # fails after sets.csv was written (to the temp folder)
    assert "figure failed" in capsys.readouterr().err
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before                                      # old sets.csv + summary.json, nothing new mixed in
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "aud"]
    assert leftovers == [], f"temporary folders left behind: {leftovers}"


def test_successful_rerun_replaces_only_cfdkits_files(tmp_path, capsys):
    out = tmp_path / "aud"
    assert _audit(out) == 0                                     # writes size_distribution.png
    assert (out / "size_distribution.png").exists()
    (out / "notes.txt").write_bytes(b"mine")                    # the user's file in cfdkit's folder
    assert _audit(out, "--no-plots") == 0                       # no --overwrite needed: the folder is cfdkit's
    assert not (out / "size_distribution.png").exists()         # the previous run's own figure is gone
    assert (out / "notes.txt").read_bytes() == b"mine"          # the user's file stays
    assert json.loads((out / "summary.json").read_text())["n_test"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aud"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".cfdkit.tmp-")]
    mode = (out / "summary.json").stat().st_mode & 0o777
    assert mode & 0o044, f"summary.json is not readable by others: {oct(mode)}"


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_out_is_refused(bad, capsys):
    assert _audit(bad) == 2
    assert "--out is empty" in capsys.readouterr().err


def test_working_directory_as_out_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("x")
    assert _audit(".") == 2
    assert "working directory" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").exists()


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert _audit(f) == 2
    assert "not a folder" in capsys.readouterr().err
    assert f.read_text() == "x"


def test_missing_optional_dependency_is_reported_before_any_work(tmp_path, monkeypatch, capsys):
    calls = []
    import cfdkit.studies as E

    monkeypatch.setattr(E, "audit_points", lambda *a, **k: calls.append(1))
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert _audit(tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "matplotlib" in err and "--no-plots" in err
    assert calls == [] and not (tmp_path / "o").exists()

    monkeypatch.setattr(cli.importlib.util, "find_spec",
                        lambda name, *a: None if name == "sentence_transformers" else real(name, *a))
    assert main(["audit", "--dataset", "hate-speech", "--features", "embeddings", "--out", str(tmp_path / "o")]) == 2
    assert "sentence_transformers" in capsys.readouterr().err and calls == []


def test_reproduce_failure_keeps_previous_output(tmp_path, monkeypatch, capsys):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "REPRODUCTION.md").write_text("previous run")
    import cfdkit.studies.reproduce as R

    def half_then_fail(o, **k):
        (o / "REPRODUCTION.md").write_text("half")
        raise RuntimeError("study failed")

    monkeypatch.setattr(R, "run_reproduction", half_then_fail)
    assert main(["reproduce", "--out", str(out), "--synthetic", "--only", "tag-bias", "--no-plots"]) == 2
    assert (out / "REPRODUCTION.md").read_text() == "previous run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_spurious_studies_are_wired_into_reproduce(tmp_path, monkeypatch):
    """`cfdkit reproduce --only cf-alignment neurontune` writes the family's records (study names of the issues)."""
    import json

    import cfdkit.studies.cf_alignment as A
    import cfdkit.studies.neurontune as N

    calls = []

    def fake(study):
        def fn(fast, seed=0, progress=False):
            calls.append((study, fast))
            return [{"study": study, "dataset": "colored-digits", "features": "pixels", "metric": "wga_erm",
                     "paper": 0.726, "cfdkit": 0.5}]
        return fn

    monkeypatch.setattr(A, "cf_alignment_records", fake("cf-alignment"))
    monkeypatch.setattr(N, "neurontune_records", fake("neurontune"))
    assert main(["reproduce", "--out", str(tmp_path / "r"), "--fast", "--only", "cf-alignment", "neurontune",
                 "--no-plots"]) == 0
    recs = json.loads((tmp_path / "r" / "reproduction.json").read_text())
    assert {r["study"] for r in recs} == {"cf-alignment", "neurontune"} and calls == [("cf-alignment", True),
                                                                                       ("neurontune", True)]
    md = (tmp_path / "r" / "REPRODUCTION.md").read_text()
    assert "NeuronTune" in md and "Latent Shift" in md and "`wga_erm`" in md
