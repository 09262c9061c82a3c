"""`cfdkit audit`'s model options (--threshold, --l2, --seed), its printed lines and the report's total time."""

import json
import os
import re
import subprocess
import sys

import pytest

from cfdkit import cli
from cfdkit.cli import main
from cfdkit.data.prepare import L2, THRESHOLD

from conftest import ROOT


def _audit(out, *extra):
    return main(["audit", "--dataset", "synthetic", "--out", str(out), "--n-test", "12", "--no-plots", *extra])


def test_help_states_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--threshold", "--l2", "--seed"):
        assert option in text
    assert "(default: 0)" in text                                           # --seed
    assert cli.DEFAULT_THRESHOLD_HELP in text and cli.DEFAULT_L2_HELP in text


def test_stated_defaults_are_the_ones_used():
    """The --help text names the values prepare() really uses."""
    for (dataset, features), value in L2.items():
        if dataset == "sst2":
            assert f"sst2 {value:g} ({features})" in cli.DEFAULT_L2_HELP or f"{value:g} ({features})" in \
                cli.DEFAULT_L2_HELP
        elif dataset in ("hate-speech", "loan", "synthetic"):
            assert f"{dataset} {value:g}" in cli.DEFAULT_L2_HELP
    assert THRESHOLD == {"hate-speech": 0.25} and "0.25 for hate-speech" in cli.DEFAULT_THRESHOLD_HELP
    assert "0.5 for the others" in cli.DEFAULT_THRESHOLD_HELP


def test_threshold_l2_seed_reach_the_audit_and_the_outputs(tmp_path, capsys):
    out = tmp_path / "a"
    assert _audit(out, "--threshold", "0.4", "--l2", "3", "--seed", "7") == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["threshold"] == 0.4 and s["l2"] == 3.0 and s["seed"] == 7
    assert s["threshold_from"] == "--threshold" and s["l2_from"] == "--l2"
    html = (out / "report.html").read_text()
    assert "threshold_from" in html and "--threshold" in html
    printed = capsys.readouterr().out
    assert "threshold 0.4, l2 3" in printed
    # the same rows audited with the defaults give other numbers (the options are not ignored)
    out2 = tmp_path / "b"
    assert _audit(out2, "--seed", "7") == 0
    d = json.loads((out2 / "summary.json").read_text())
    assert d["threshold"] == 0.5 and d["l2"] == L2[("synthetic", "dense")]
    assert d["threshold_from"].startswith("default") and d["l2_from"].startswith("default")


def test_printed_numbers_are_rounded(tmp_path, capsys):
    assert _audit(tmp_path / "a") == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if "mean |S_t|" in ln][0]
    mean = re.search(r"mean \|S_t\| (\S+?),", line).group(1)
    assert re.fullmatch(r"\d+(\.\d)?|—", mean), line
    assert not re.search(r"\d\.\d{3,}", line), line


def test_first_line_comes_before_the_heavy_imports(tmp_path):
    """The first line is printed before torch, scikit-learn or pandas are imported (they take seconds)."""
    probe = (
        "import sys, time\n"
        "t0 = time.perf_counter()\n"
        "real = sys.stdout.write\n"
        "seen = []\n"
        "def write(s):\n"
        "    if not seen and s.strip():\n"
        "        seen.append((time.perf_counter() - t0, sorted(m for m in ('torch', 'sklearn', 'pandas') "
        "if m in sys.modules)))\n"
        "        sys.stderr.write(repr(seen[0]) + '\\n')\n"
        "    return real(s)\n"
        "sys.stdout.write = write\n"
        "from cfdkit.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, "-c", probe, "audit", "--dataset", "synthetic", "--out",
                        str(tmp_path / "o"), "--n-test", "5", "--no-plots", "--no-verify"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    first = eval(r.stderr.splitlines()[0])                                   # (seconds, heavy modules loaded)
    assert first[1] == [], f"heavy modules imported before the first line: {first[1]}"
    assert r.stdout.startswith("cfdkit audit: synthetic")


def test_report_seconds_is_the_total_with_the_minimal_search(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["audit", "--dataset", "synthetic", "--out", str(out), "--n-test", "3", "--no-plots",
                 "--minimal"]) == 0
    s = json.loads((out / "summary.json").read_text())
    html = (out / "report.html").read_text()
    shown = float(re.search(r"<tr data-key='seconds'><th>[^<]*</th><td class='num'>([0-9.]+)", html).group(1))
    assert s["seconds"] >= s["seconds_minimal"] > 0.05
    assert shown == pytest.approx(s["seconds"], abs=0.01)


def test_minimal_sets_are_the_default_and_estimate_only_is_offered(capsys):
    """--estimate-only is in --help; --minimal (now the default) is still accepted but no longer offered."""
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--estimate-only" in text and "--minimal" not in text
    ap = cli._parser(studies=False)
    base = ["audit", "--dataset", "synthetic", "--out", "x"]
    assert ap.parse_args(base).estimate_only is False
    assert ap.parse_args(base + ["--minimal"]).estimate_only is False
    assert ap.parse_args(base + ["--estimate-only"]).estimate_only is True
