"""Command line: ``cfdkit audit`` and ``cfdkit reproduce`` (also ``python -m cfdkit``)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _check_out(path: str) -> Path:
    """The --out argument: non-empty, not an existing file, its parent creatable and writable."""
    if not isinstance(path, str) or not path.strip():
        raise CLIError("--out is empty; give the output folder, e.g. --out results/audit")
    p = Path(path).expanduser()
    if p.resolve() == Path.cwd().resolve() or p.resolve() == Path(p.resolve().anchor):
        raise CLIError(f"--out {path!r} is the working directory or the root; give a folder of its own, "
                       "e.g. --out results/audit (the whole folder is replaced when the run completes)")
    if p.exists() and not p.is_dir():
        raise CLIError(f"--out {str(p)!r} exists and is not a folder; choose another path")
    parent = p.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkdtemp(prefix=f".{p.name}.probe-", dir=parent))
        probe.rmdir()
    except OSError as e:
        raise CLIError(f"cannot write to output folder {str(p)!r}: {e.strerror or e}") from None
    return p


@contextlib.contextmanager
def _atomic_dir(path: Path):
    """Write a run into a temporary folder beside ``path``; move it into place only when the run completes.

    A run that fails leaves ``path`` exactly as it was (an earlier run's files are not mixed with this one's);
    a run that completes replaces the whole folder.
    """
    path = path.resolve()
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, 0o777 & ~_umask())
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
        os.replace(path, old / "previous")
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _require(module: str, what: str, extra: str) -> None:
    """Check an optional dependency before any work starts."""
    if importlib.util.find_spec(module) is None:
        raise CLIError(f"{what} needs the Python package {module!r}, which is not installed; "
                       f"pip install 'cfdkit[{extra}]' (or pass another option), then run again")


def _parser() -> argparse.ArgumentParser:
    from .studies.reproduce import STUDY_ORDER

    ap = _Parser(prog="cfdkit", description="Counterfactual datasets: which training labels, relabeled, flip a "
                                            "prediction (Yang, Xu & Yu 2024).")
    sub = ap.add_subparsers(dest="command", parser_class=_Parser, required=True)
    a = sub.add_parser("audit", help="find and verify a flip set S_t for every test point of a data set")
    a.add_argument("--dataset", required=True, help="hate-speech, sst2, loan or synthetic (no data needed)")
    a.add_argument("--features", default=None,
                   help="bow or embeddings (text; 'embeddings' = all-MiniLM-L6-v2, the paper's 'BERT'), "
                        "tabular (loan), dense or bow (synthetic); default: the first")
    a.add_argument("--out", required=True, help="output folder (created)")
    a.add_argument("--n-test", type=int, default=None, help="audit a seeded random subset of N test points")
    a.add_argument("--no-verify", action="store_true", help="skip verification by retraining")
    a.add_argument("--device", nargs="?", const="cuda", default=None,
                   help="torch device (default: CUDA when available, else CPU; '--device' alone = cuda)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--no-plots", action="store_true", help="do not write the PNG figures")
    a.add_argument("--minimal", action="store_true",
                   help="also search verified minimal sets (RelabelAudit.minimal_sets); sets.csv then has "
                        "estimated_size (Algorithm 1), size, status, lower_bound, new_prob (the verified set)")
    r = sub.add_parser("reproduce", help="run the paper's studies; write REPRODUCTION.md and reproduction.json")
    r.add_argument("--out", required=True, help="output folder (created)")
    r.add_argument("--only", nargs="+", metavar="STUDY", choices=STUDY_ORDER, help="studies: " + ", ".join(STUDY_ORDER))
    r.add_argument("--fast", action="store_true", help="small sizes (a few minutes)")
    r.add_argument("--synthetic", action="store_true", help="replace every data set by synthetic data (no files needed)")
    r.add_argument("--n-jobs", type=int, default=1, help="joblib workers for the sweeps (default 1)")
    r.add_argument("--no-plots", action="store_true")
    return ap


def _audit(args) -> int:
    if args.n_test is not None and args.n_test < 1:
        raise CLIError(f"--n-test must be >= 1; got {args.n_test}")
    target = _check_out(args.out)
    if (args.features or "").lower() in ("embeddings", "embedding", "bert"):
        _require("sentence_transformers", "--features embeddings", "embeddings")
    if not args.no_plots:
        _require("matplotlib", "the figures (drop them with --no-plots)", "plots")
    with _atomic_dir(target) as out:
        summary = _audit_into(args, out)
    fr = summary["flip_rate"]
    print(f"{summary['dataset']}/{summary['features']}: {summary['n_test']} test points, found "
          f"{100 * summary['found_rate']:.1f} %" + ("" if fr is None else f", flipped {100 * fr:.1f} %") +
          f", mean |S_t| {summary['mean_size']}, {summary['seconds']:.1f} s -> {target}")
    if "minimal_found_rate" in summary:
        na = (lambda v: "—" if v is None else v)
        print(f"verified minimal sets: found {100 * summary['minimal_found_rate']:.1f} %, median size "
              f"{na(summary['median_verified_size'])} (Algorithm 1: {na(summary['median_estimated_size'])}), "
              f"median certified lower bound {na(summary['median_lower_bound'])}, {summary['seconds_minimal']:.1f} s")
    return 0


def _audit_into(args, out: Path) -> dict:
    import numpy as np
    import pandas as pd

    from .studies import audit_points, summarize_points

    t0 = time.perf_counter()
    df = audit_points(args.dataset, args.features, n_test=args.n_test, seed=args.seed, verify=not args.no_verify,
                      device=args.device, progress=True, cache=False)
    s = summarize_points(df)
    summary = {
        "dataset": s["dataset"], "features": s["features"], "n_train": int(s["n_train"]), "n_test": int(s["n_test"]),
        "threshold": float(s["threshold"]), "found_rate": s["found_rate"], "flip_rate": s.get("flip_rate"),
        "mean_size": s["mean_size"], "median_size": s["median_size"], "seconds": time.perf_counter() - t0,
        "l2": s["l2"], "accuracy": s["accuracy"], "success_ratio": s.get("success_ratio"),
        "seconds_algorithm1": s["seconds_algorithm1"], "seconds_verify": s["seconds_verify"],
        "n_not_converged": s.get("n_not_converged"),
        "verified": not args.no_verify, "seed": args.seed, "notes": df.attrs.get("notes", []),
    }
    sets = pd.DataFrame({
        "index": df["test_index"], "prob": df["prob"], "size": df["size"],
        "flipped": df["flipped"] if "flipped" in df else pd.NA,
        "new_prob": df["new_prob"] if "new_prob" in df else np.nan,
        "converged": df["converged"] if "converged" in df else pd.NA,
        "training_indices": [" ".join(map(str, ix)) for ix in df["indices"]],
    })
    if getattr(args, "minimal", False):
        from .studies.linear import minimal_points, summarize_minimal

        mdf = minimal_points(args.dataset, args.features, n_test=args.n_test, seed=args.seed, device=args.device,
                             progress=True)
        if not np.array_equal(mdf["test_index"].to_numpy(), df["test_index"].to_numpy()):
            raise RuntimeError("the minimal-set search ran on other test rows than the audit (same seed and "
                               "--n-test expected); please report this.")
        df = df.assign(minimal_size=mdf["size"].to_numpy(), minimal_status=mdf["status"].to_numpy(),
                       lower_bound=mdf["lower_bound"].to_numpy(), minimal_new_prob=mdf["new_prob"].to_numpy(),
                       minimal_one_minimal=mdf["one_minimal"].to_numpy(), minimal_indices=list(mdf["indices"]))
        sets = sets.rename(columns={"size": "estimated_size", "new_prob": "estimated_new_prob"})
        for col in ("size", "status", "lower_bound", "new_prob", "one_minimal"):
            sets[col] = mdf[col].to_numpy()
        sets["minimal_indices"] = [" ".join(map(str, ix)) for ix in mdf["indices"]]
        ms = summarize_minimal(mdf)
        summary.update({k: ms[k] for k in ("minimal_found_rate", "median_estimated_size", "median_verified_size",
                                           "median_lower_bound", "seconds_minimal")})
    sets.to_csv(out / "sets.csv", index=False)
    if not args.no_plots:
        from . import plots

        plots.save(plots.size_distribution(df), out / "size_distribution.png")
        if df["found"].sum() > 2:
            plots.save(plots.size_vs_confidence(df), out / "size_vs_confidence.png")
    # NaN (a median over no rows, say) is not JSON and reads badly: None (null, "—"), the --minimal keys included
    summary = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in summary.items()}
    from .report import write_audit_report  # report.html: summary, figures, the most fragile points readable

    write_audit_report(out / "report.html", df, summary, dataset=args.dataset, features=args.features,
                       seed=args.seed, n_test=args.n_test, figures=sorted(out.glob("*.png")))
    summary["seconds"] = time.perf_counter() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    return summary


def _reproduce(args) -> int:
    from .studies.reproduce import run_reproduction

    if args.n_jobs < 1:
        raise CLIError(f"--n-jobs must be >= 1; got {args.n_jobs}")
    target = _check_out(args.out)
    studies = set(args.only or ())
    if not args.synthetic and (not studies or studies & {"table2", "figure4"}):
        _require("sentence_transformers", "the embedding rows of table2/figure4 (or --only other studies)", "embeddings")
    if not args.no_plots:
        _require("matplotlib", "the figures (drop them with --no-plots)", "plots")
    with _atomic_dir(target) as out:
        run_reproduction(out, only=args.only, fast=args.fast, synthetic=args.synthetic, n_jobs=args.n_jobs,
                         plot=not args.no_plots)
    print(f"wrote {target / 'REPRODUCTION.md'} and {target / 'reproduction.json'}")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``cfdkit`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _audit(args) if args.command == "audit" else _reproduce(args)
    except CLIError as e:
        msg = str(e)
    except (ValueError, TypeError, OSError, ImportError, RuntimeError, KeyError) as e:
        from .data import DownloadError

        if isinstance(e, DownloadError):
            msg = f"data not available (offline?): {e}"
        else:
            msg = f"{type(e).__name__}: {e}" if not isinstance(e, (ValueError, OSError)) else str(e)
    except KeyboardInterrupt:
        sys.stderr.write("cfdkit: interrupted\n")
        return 130
    line = " ".join(str(msg).split())
    sys.stderr.write(f"cfdkit: error: {line}\n")
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
