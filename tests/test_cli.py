"""``cfdkit audit`` / ``cfdkit reproduce`` end to end, and their error handling."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from cfdkit.cli import main

from conftest import ROOT, shared_data_dir

DATA = shared_data_dir()
SUMMARY_KEYS = {"dataset", "features", "n_train", "n_test", "threshold", "found_rate", "flip_rate", "mean_size",
                "median_size", "seconds"}


def _run(*args, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "cfdkit", *args], capture_output=True, text=True, env=env,
                          cwd=str(ROOT), timeout=300)


def test_audit_synthetic_writes_files(tmp_path):
    out = tmp_path / "aud"
    r = _run("audit", "--dataset", "synthetic", "--out", str(out), "--n-test", "15", "--seed", "1")
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(s)
    assert s["dataset"] == "synthetic" and s["n_test"] == 15 and s["n_train"] == 800 and s["threshold"] == 0.5
    assert 0 <= s["flip_rate"] <= s["found_rate"] <= 1
    sets = pd.read_csv(out / "sets.csv")
    # the minimal set (the default answer) under MinimalSets.to_frame()'s names; Algorithm 1's under
    # Verification.to_frame()'s (estimated_*)
    assert list(sets.columns) == ["test_index", "prob", "predicted_label", "minimal_size", "minimal_status",
                                  "lower_bound", "minimal_new_prob", "minimal_decided_by", "one_minimal",
                                  "proven_minimal", "estimated_size", "estimated_refit_prob", "estimated_flipped",
                                  "estimated_converged", "minimal_indices", "estimated_indices"]
    assert sets["estimated_converged"].all() and "n_not_converged" in s and s["n_not_converged"] == 0
    assert len(sets) == 15 and s["minimal"] is True and s["minimal_found_rate"] == (sets["minimal_status"] == "verified").mean()
    found = sets[sets["estimated_size"] > 0]
    assert all(len(str(t).split()) == k for t, k in zip(found["estimated_indices"], found["estimated_size"]))
    ver = sets[sets["minimal_status"] == "verified"]
    assert len(ver) and all(len(str(t).split()) == k for t, k in zip(ver["minimal_indices"], ver["minimal_size"]))
    # a verified set flips: its retrained probability is on the other side of the threshold
    assert ((ver["minimal_new_prob"] > 0.5) != (ver["prob"] > 0.5)).all()
    assert (ver["lower_bound"] <= ver["minimal_size"]).all()
    assert (ver["proven_minimal"] == (ver["lower_bound"] == ver["minimal_size"])).all()
    assert (out / "size_distribution.png").stat().st_size > 1000


def test_audit_estimate_only_skips_the_minimal_search(tmp_path, capsys):
    assert main(["audit", "--dataset", "synthetic", "--out", str(tmp_path), "--n-test", "8", "--no-plots",
                 "--estimate-only"]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["minimal"] is False and "minimal_found_rate" not in s
    sets = pd.read_csv(tmp_path / "sets.csv")
    assert list(sets.columns) == ["test_index", "prob", "predicted_label", "estimated_size", "estimated_refit_prob",
                                  "estimated_flipped", "estimated_converged", "estimated_indices"]
    assert "verified minimal sets" not in capsys.readouterr().out


def test_audit_no_verify_in_process(tmp_path, capsys):
    rc = main(["audit", "--dataset", "synthetic", "--features", "bow", "--out", str(tmp_path), "--n-test", "10",
               "--no-verify", "--no-plots"])
    assert rc == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(s) and s["flip_rate"] is None and s["verified"] is False


def test_reproduce_fast_synthetic(tmp_path):
    r = _run("reproduce", "--out", str(tmp_path), "--fast", "--synthetic", "--only", "table2", "tag-bias",
             "relabel-vs-remove")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "REPRODUCTION.md").read_text()
    recs = json.loads((tmp_path / "reproduction.json").read_text())
    assert "## Table 2" in md and "§3.4" in md and "Tables 4 and 7" in md and "not reproduced" in md.lower()
    assert all(set(rec) == {"study", "dataset", "features", "metric", "paper", "cfdkit"} for rec in recs)
    metrics = {rec["metric"] for rec in recs}
    assert {"found_rate", "flip_rate", "share_in_biased_tag_x", "share_in_biased_tag_y",
            "mean_size_relabel", "mean_noisy_relabel"} <= metrics
    assert (tmp_path / "table2.png").exists()


@pytest.mark.skipif(DATA is None, reason="no shared data")
def test_reproduce_fast_real_tag_bias(tmp_path):
    r = _run("reproduce", "--out", str(tmp_path), "--fast", "--only", "tag-bias", "--no-plots",
             env_extra={"CFDKIT_DATA_HOME": str(DATA)})
    assert r.returncode == 0, r.stderr
    recs = {x["metric"]: x for x in json.loads((tmp_path / "reproduction.json").read_text())}
    assert recs["share_in_biased_tag_x"]["paper"] == 0.6 and recs["share_in_biased_tag_y"]["paper"] == 0.23
    assert recs["share_in_biased_tag_x"]["cfdkit"] > recs["share_in_biased_tag_y"]["cfdkit"]


def _one_line_error(r):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_unknown_dataset(tmp_path):
    line = _one_line_error(_run("audit", "--dataset", "nope", "--out", str(tmp_path)))
    assert "nope" in line and "hate-speech" in line


def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = _one_line_error(_run("audit", "--dataset", "synthetic", "--out", str(blocker / "sub")))
    assert "output folder" in line


def test_missing_data_offline(tmp_path):
    env = {"CFDKIT_DATA_HOME": str(tmp_path / "empty"), "CFDKIT_DATA_MIRROR": "http://127.0.0.1:9"}
    line = _one_line_error(_run("audit", "--dataset", "sst2", "--out", str(tmp_path / "o"), env_extra=env))
    assert "data" in line.lower()


def test_bad_arguments():
    _one_line_error(_run("reproduce", "--out", "/tmp/x", "--only", "no-such-study"))
    _one_line_error(_run("audit", "--dataset", "synthetic"))  # --out missing
    _one_line_error(_run("audit", "--dataset", "synthetic", "--out", "/tmp/x", "--n-test", "0"))
    _one_line_error(_run("audit", "--dataset", "synthetic", "--features", "embeddings", "--out", "/tmp/x"))


def test_reproduce_neural_table_writes_records(tmp_path):
    """`cfdkit reproduce --only neural-table --fast` writes its records next to the other studies'."""
    out = tmp_path / "rep"
    args = ["reproduce", "--out", str(out), "--only", "neural-table", "--fast", "--no-plots"]
    if DATA is None:
        args.append("--synthetic")
    r = _run(*args, env_extra={"CFDKIT_DATA_HOME": str(DATA)} if DATA else None)
    assert r.returncode == 0, r.stderr
    recs = json.loads((out / "reproduction.json").read_text())
    neural = [x for x in recs if x["study"] == "neural-table"]
    found = [x for x in neural if x["metric"].startswith("cfds_found_") and x["dataset"] != "all"]
    cases = {(x["dataset"], x["metric"][len("test_cases_"):]): x["cfdkit"] for x in neural
             if x["metric"].startswith("test_cases_") and x["dataset"] != "all"}
    assert found
    for x in found:  # a count of test cases, never more than were searched
        assert 0 <= x["cfdkit"] <= cases[(x["dataset"], x["metric"][len("cfds_found_"):])]
    assert "Neural networks" in (out / "REPRODUCTION.md").read_text()
