"""Every benchmark script runs: each one once, at a tiny size, in a fresh process (seconds each).

The scripts print timings; these tests only check that they still run against today's API (exit status 0) and
print something.  A script that needs the shared data files (``CFDKIT_DATA_HOME``) is skipped when they are not
there; one that needs a GPU is skipped without one; a script without a tiny size is skipped with the reason.
A new script in ``benchmarks/`` fails :func:`test_every_benchmark_script_has_a_smoke_case` until it has a case.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from dataclasses import dataclass

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"

#: Per script wall-clock limit (seconds).  On an idle 2-core machine each case takes well under a minute.
LIMIT = 240


@dataclass(frozen=True)
class Case:
    """How to run one script at a tiny size."""

    args: tuple = ()
    #: ``CFDKIT_BENCH_SMOKE=1`` makes the script shrink itself (scripts without argument parsing).
    smoke_env: bool = False
    #: data files (relative to the data home) the run reads; skipped when missing.
    data: tuple = ()
    gpu: bool = False
    #: a reason to skip the script (no tiny size yet); None = run it.
    skip: str | None = None
    #: the run writes into this file name under the test's temporary folder, passed after ``args``.
    out: str | None = None


HATE = ("hate_speech_stormfront",)

CASES = {
    "bench_compaction.py": Case(smoke_env=True),
    "bench_dask.py": Case(("--test-rows", "20", "--workers", "1", "--blocks", "2"), data=HATE),
    "bench_flip.py": Case(skip="no tiny size: every part times the full hate-speech audit against the paper's "
                               "procedure (about a minute of CPU); it needs an option such as --smoke that "
                               "subsamples the rows and test rows"),
    "bench_latent_shift.py": Case(("--n", "2", "--repeats", "1")),
    "bench_minimal.py": Case(("--n-test", "2", "--sample", "1"), data=HATE),
    "bench_certify.py": Case(("--smoke",), data=HATE),
    "bench_neural.py": Case(("--smoke",)),
    "bench_neural_module.py": Case(("--smoke",)),
    "bench_placebo.py": Case(("--dataset", "synthetic", "--n-test", "2", "--budget", "2", "--n-draws", "2",
                              "--max-train", "200")),
    "bench_placebo_targets.py": Case(smoke_env=True),
    "bench_refit_alternatives.py": Case(("--sets", "4", "--ranks", "8"), data=HATE),
    "bench_stability.py": Case(("synthetic", "20,1e-2,None,0,None")),
    "bench_zoo.py": Case(("--epochs", "1", "--n-train", "50", "--batched", "4", "--sequential", "1", "--rounds", "1",
                          "--budget", "1")),
    "ifbid_curve_run.py": Case(skip="evaluates the IFBiD zoo stores that zoo_store_train.py grows (thousands of "
                                    "trained models); it needs an option that evaluates a tiny store"),
    "l2_convention.py": Case(smoke_env=True, data=HATE),
    "neural_defaults.py": Case(("--datasets", "salary", "--preparations", "cfdkit"), data=("fairness/salary",)),
    "run_neural_table.py": Case(smoke_env=True, out="neural_table"),
    "spurious_seeded_run.py": Case(("neurontune",), smoke_env=True, out="neurontune.json"),
    "zoo_store_train.py": Case(skip="grows the IFBiD zoo stores in the data home (restart-safe, hours of training); "
                                    "it has no size that leaves the stores alone"),
}


def _data_home():
    home = os.environ.get("CFDKIT_DATA_HOME")
    if home:
        return pathlib.Path(home)
    shared = ROOT.parent / "shared" / "data"
    return shared if shared.exists() else None


def test_every_benchmark_script_has_a_smoke_case():
    scripts = sorted(p.name for p in BENCH.glob("*.py"))
    assert sorted(CASES) == scripts, (f"scripts without a smoke case: {sorted(set(scripts) - set(CASES))}; "
                                      f"cases without a script: {sorted(set(CASES) - set(scripts))}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_script_runs_at_a_tiny_size(name, tmp_path):
    case = CASES[name]
    if case.skip:
        pytest.skip(f"{name}: {case.skip}")
    if case.gpu:
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip(f"{name} needs a CUDA device")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    if case.data:
        home = _data_home()
        if home is None or not all((home / f).exists() for f in case.data):
            pytest.skip(f"{name} reads the shared data ({', '.join(case.data)}); set CFDKIT_DATA_HOME to run it")
        env["CFDKIT_DATA_HOME"] = str(home)
    if case.smoke_env:
        env["CFDKIT_BENCH_SMOKE"] = "1"
    args = list(case.args) + ([str(tmp_path / case.out)] if case.out else [])
    proc = subprocess.run([sys.executable, str(BENCH / name), *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=LIMIT)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip(), f"{name} printed nothing"
