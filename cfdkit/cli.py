"""Command line: ``cfdkit audit`` and ``cfdkit reproduce`` (also ``python -m cfdkit``)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import importlib.util
import json
import os
import shutil
import socket
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


#: Every folder cfdkit writes holds this file: JSON with the command and the files cfdkit wrote there
#: (relative path -> sha256). It is how a later run knows which files are cfdkit's own.
MARKER = ".cfdkit-output.json"
#: Every temporary folder of a run in progress holds this file: JSON with the process id, host and start time.
TMP_MARKER = ".cfdkit-tmp.json"
#: A stale temporary folder of another host is swept only after this long (its process cannot be checked).
STALE_OTHER_HOST_S = 7 * 24 * 3600.0


def _read_marker(folder: Path, name: str = MARKER):
    """The JSON marker ``name`` of ``folder`` as a dict, or None (absent, unreadable, not cfdkit's)."""
    f = folder / name
    try:
        if f.is_symlink() or not f.is_file():
            return None
        d = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and d.get("tool") == "cfdkit" else None


def _listed_files(folder: Path, marker) -> dict:
    """The files a marker lists, restricted to plain relative paths inside ``folder`` (path -> sha256)."""
    files = marker.get("files") if isinstance(marker, dict) else None
    out = {}
    if not isinstance(files, dict):
        return out
    root = folder.resolve()
    for rel, sha in files.items():
        if not isinstance(rel, str) or not isinstance(sha, str) or not rel or rel.startswith(("/", "\\")):
            continue
        parts = Path(rel).parts
        if ".." in parts or rel in (MARKER, TMP_MARKER):
            continue
        if (root / rel).resolve().parent.is_relative_to(root):
            out[rel] = sha
    return out


def _sha256(f: Path) -> str:
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _user_entries(p: Path) -> list:
    """Entries of an existing folder other than cfdkit's markers and temporary folders."""
    return sorted(e.name for e in p.iterdir()
                  if e.name not in (MARKER, TMP_MARKER) and not e.name.startswith(".cfdkit.tmp-"))


def _check_out(path: str, overwrite: bool = False) -> Path:
    """The --out argument, checked before any work starts.

    Refused: an empty path; the working directory, the root or any folder that contains the working directory;
    an existing file; an existing non-empty folder that is not a cfdkit output folder (no :data:`MARKER`) unless
    ``overwrite``; a folder (or, for a new one, a parent) that cannot be written.
    """
    if not isinstance(path, str) or not path.strip():
        raise CLIError("--out is empty; give the output folder, e.g. --out results/audit")
    p = Path(path).expanduser()
    rp, cwd = p.resolve(), Path.cwd().resolve()
    if rp == Path(rp.anchor):
        raise CLIError(f"--out {path!r} is the root folder; give a folder of its own, e.g. --out results/audit")
    if rp == cwd or rp in cwd.parents:
        raise CLIError(f"--out {path!r} is the working directory or contains it; give a folder of its own, "
                       "e.g. --out results/audit")
    if p.exists() and not p.is_dir():
        raise CLIError(f"--out {str(p)!r} exists and is not a folder; choose another path")
    if p.is_dir():
        try:
            entries = _user_entries(p)
        except OSError as e:
            raise CLIError(f"cannot read output folder {str(p)!r}: {e.strerror or e}") from None
        if entries and _read_marker(p) is None and not overwrite:
            shown = ", ".join(repr(e) for e in entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise CLIError(f"--out {str(p)!r} already holds files cfdkit did not write ({shown}); choose a new or "
                           "empty folder, or pass --overwrite to write into it (files with the names of cfdkit's "
                           "outputs are replaced, every other file stays)")
    try:
        where = rp if p.is_dir() else rp.parent
        where.mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkdtemp(prefix=".cfdkit.probe-", dir=where))
        probe.rmdir()
    except OSError as e:
        raise CLIError(f"cannot write to output folder {str(p)!r}: {e.strerror or e}") from None
    return p


def _pid_alive(pid) -> bool:
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:             # EPERM: it exists, owned by someone else
        return True
    return True


def _is_stale(tmp: Path, now: float) -> bool:
    """A temporary folder of a killed cfdkit run: it holds :data:`TMP_MARKER`, and either its process (same host)
    is gone or it was started on another host more than :data:`STALE_OTHER_HOST_S` seconds ago."""
    if tmp.is_symlink() or not tmp.is_dir():
        return False
    m = _read_marker(tmp, TMP_MARKER)
    if m is None:
        return False                                        # not provably cfdkit's: never touched
    if m.get("host") == socket.gethostname():
        return not _pid_alive(m.get("pid"))
    started = m.get("started")
    return isinstance(started, (int, float)) and now - float(started) > STALE_OTHER_HOST_S


def _sweep_stale(path: Path) -> list:
    """Remove the stale temporary folders of killed runs into ``path``: ``.NAME.tmp-*`` beside it and
    ``.cfdkit.tmp-*`` inside it, each only when :func:`_is_stale`. Returns the folders removed."""
    now, gone = time.time(), []
    places = [(path.parent, f".{path.name}.tmp-")] + ([(path, ".cfdkit.tmp-")] if path.is_dir() else [])
    for where, prefix in places:
        try:
            cands = [e for e in where.iterdir() if e.name.startswith(prefix)]
        except OSError:
            continue
        for e in cands:
            if _is_stale(e, now):
                shutil.rmtree(e, ignore_errors=True)
                gone.append(e)
    return gone


def _move_file(src: Path, dst: Path) -> None:
    """Move one finished file into place atomically (copy to a hidden name first across file systems)."""
    try:
        os.replace(src, dst)
        return
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    part = dst.parent / f".{dst.name}.cfdkit-part-{os.getpid()}"
    shutil.copy2(src, part)
    os.replace(part, dst)
    src.unlink()


def _install_files(tmp: Path, path: Path, files: dict, overwrite: bool) -> None:
    """Move the files of a finished run from ``tmp`` into the existing folder ``path``, one by one.

    A file of ``path`` is replaced only when the previous marker lists it (cfdkit wrote it) or ``overwrite``;
    files the previous run wrote that this one did not are removed only while unchanged (same sha256);
    every other file stays. The marker moves in last.
    """
    old = _listed_files(path, _read_marker(path) or {})
    clash = [rel for rel in files if os.path.lexists(path / rel) and rel not in old and not overwrite]
    clash += [rel for rel in files if (path / rel).is_dir() and not (path / rel).is_symlink()]
    if clash:
        keep = path / f"cfdkit-run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        (tmp / TMP_MARKER).unlink(missing_ok=True)
        os.rename(tmp, keep)
        raise CLIError(f"{str(path)!r} holds {', '.join(repr(c) for c in clash[:3])} that cfdkit did not write, so "
                       f"the finished run was left in {str(keep)!r}; move those files away (or pass --overwrite) "
                       "and run again")
    for rel in files:
        dst = path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        _move_file(tmp / rel, dst)
    for rel, sha in old.items():
        f = path / rel
        if rel not in files and f.is_file() and not f.is_symlink():
            try:
                if _sha256(f) == sha:
                    f.unlink()
            except OSError:
                pass
    _move_file(tmp / MARKER, path / MARKER)


@contextlib.contextmanager
def _atomic_dir(path: Path, overwrite: bool = False, command: str = "audit"):
    """Write a run into a temporary folder; move it into place only when the run completes.

    Where the output goes:

    * a new ``path``: the run is written to ``.NAME.tmp-*`` beside it and that folder is renamed to ``path``;
    * an existing folder (a previous cfdkit output, an empty folder, a mount point, or with ``--overwrite`` any
      folder): the run is written to ``.cfdkit.tmp-*`` inside it, then moved in file by file
      (:func:`_install_files`): only cfdkit's own files are replaced, every other file stays.

    Every output folder gets :data:`MARKER`, listing the files cfdkit wrote (path -> sha256). A run that fails
    leaves ``path`` exactly as it was and removes its temporary folder (on SIGTERM and SIGHUP too, before the
    process dies of the signal); one killed by SIGKILL leaves it behind with :data:`TMP_MARKER`, and the next run
    into the same ``path`` sweeps it (:func:`_sweep_stale`).
    """
    path = path.resolve()
    _sweep_stale(path)
    existed = path.is_dir()
    tmp = Path(tempfile.mkdtemp(prefix=".cfdkit.tmp-" if existed else f".{path.name}.tmp-",
                                dir=path if existed else path.parent))
    from .data._atomic import cleanup_on_terminate

    with cleanup_on_terminate():                # SIGTERM/SIGHUP: remove the temporary folder, then die of the signal
        try:
            (tmp / TMP_MARKER).write_text(json.dumps({"tool": "cfdkit", "pid": os.getpid(),
                                                      "host": socket.gethostname(), "started": time.time()}) + "\n",
                                          encoding="utf-8")
            yield tmp
            files = {f.relative_to(tmp).as_posix(): _sha256(f) for f in sorted(tmp.rglob("*"))
                     if f.is_file() and f.name not in (MARKER, TMP_MARKER)}
            (tmp / MARKER).write_text(json.dumps({"tool": "cfdkit", "command": command, "written": time.time(),
                                                  "files": files}, indent=1) + "\n", encoding="utf-8")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if not existed:
        os.chmod(tmp, 0o777 & ~_umask())
        try:
            os.rename(tmp, path)
            (path / TMP_MARKER).unlink(missing_ok=True)
            return
        except OSError:                 # appeared meanwhile, or cannot be renamed: move the files in one by one
            path.mkdir(parents=True, exist_ok=True)
    _install_files(tmp, path, files, overwrite)
    shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _require(module: str, what: str, extra: str) -> None:
    """Check an optional dependency before any work starts."""
    if importlib.util.find_spec(module) is None:
        raise CLIError(f"{what} needs the Python package {module!r}, which is not installed; "
                       f"pip install 'cfdkit[{extra}]' (or pass another option), then run again")


#: Numeric options: dest -> (option, limits of check_number). argparse only reads the text as a number; the
#: range check runs after the first line is printed (it loads cfdkit's core, torch with it).
_NUMERIC = {
    "n_test": ("--n-test", dict(low=1, integer=True, allow_none=True, fix="Pass e.g. --n-test 100.")),
    "seed": ("--seed", dict(low=0, high=2**32 - 1, integer=True, fix="Pass e.g. --seed 0.")),
    "threshold": ("--threshold", dict(low=0.0, high=1.0, low_inclusive=False, high_inclusive=False,
                                      allow_none=True, fix="Pass e.g. --threshold 0.5.")),
    "l2": ("--l2", dict(low=0.0, low_inclusive=False, allow_none=True, fix="Pass e.g. --l2 10.")),
    "n_jobs": ("--n-jobs", dict(low=1, high=1024, integer=True, fix="Pass e.g. --n-jobs 2.")),
}

#: The defaults --help states (the paper's values, as in :data:`cfdkit.data.prepare.L2` / ``THRESHOLD``; a test
#: checks that they agree).
DEFAULT_L2_HELP = "hate-speech 10, sst2 1000 (bow) or 500 (embeddings), loan 100, synthetic 1"
DEFAULT_THRESHOLD_HELP = "0.25 for hate-speech (the paper's choice), 0.5 for the others"


def _number(option: str):
    """An argparse ``type``: the text read as a number (int where it is one); the range is checked later."""
    def parse(text: str):
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                fix = _NUMERIC[option.lstrip("-").replace("-", "_")][1]["fix"]
                raise argparse.ArgumentTypeError(f"{option} must be a number; got {text!r}. {fix}") from None
    parse.__name__ = option.lstrip("-").replace("-", "_")       # argparse names the type in some messages
    return parse


def _check_numbers(args) -> None:
    """Every numeric option through :func:`cfdkit.core.validation.check_number` (finite, in range, integer where
    one is due); a bad one is a one-line error naming the option."""
    from .core.validation import check_number

    for dest, (option, limits) in _NUMERIC.items():
        if hasattr(args, dest):
            try:
                setattr(args, dest, check_number(getattr(args, dest), option, **limits))
            except (TypeError, ValueError) as e:
                raise CLIError(str(e)) from None



def _output_args(p) -> None:
    """``--out`` and ``--overwrite``, the same for every command that writes a folder."""
    p.add_argument("--out", required=True, help="output folder (created; see --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an existing folder that cfdkit did not create: files with the names of "
                        "cfdkit's outputs are replaced, every other file stays (without it such a folder is "
                        "refused; a folder cfdkit wrote before is reused without it: only the files it wrote "
                        "there are replaced)")

def _parser(studies: bool = True) -> argparse.ArgumentParser:
    """The command line. ``studies=False`` leaves ``reproduce --only`` unchecked, so that ``cfdkit audit`` is parsed
    without importing the studies (its first line comes within a second)."""
    study_order = None
    if studies:
        from .studies.reproduce import STUDY_ORDER as study_order

    ap = _Parser(prog="cfdkit", description="Counterfactual datasets: which training labels, relabeled, flip a "
                                            "prediction (Yang, Xu & Yu 2024).")
    sub = ap.add_subparsers(dest="command", parser_class=_Parser, required=True)
    a = sub.add_parser("audit", help="for every test point of a data set, the fewest training labels whose "
                                     "relabeling flips its prediction (minimal set, verified by retraining), "
                                     "beside Algorithm 1's estimate")
    a.add_argument("--dataset", required=True, help="hate-speech, sst2, loan or synthetic (no data needed)")
    a.add_argument("--features", default=None,
                   help="bow or embeddings (text; 'embeddings' = all-MiniLM-L6-v2, the paper's 'BERT'), "
                        "tabular (loan), dense or bow (synthetic); default: the first")
    _output_args(a)
    a.add_argument("--n-test", type=_number("--n-test"), default=None,
                   help="audit a seeded random subset of N test points (default: all)")
    a.add_argument("--threshold", type=_number("--threshold"), default=None,
                   help="decision threshold tau in (0, 1): the model predicts 1 when P(y=1) > tau "
                        f"(default: {DEFAULT_THRESHOLD_HELP})")
    a.add_argument("--l2", type=_number("--l2"), default=None,
                   help="L2 regularization of the logistic regression, > 0 (objective: sum of the losses + "
                        f"l2/2 |w|^2; default: the paper's value, {DEFAULT_L2_HELP})")
    a.add_argument("--no-verify", action="store_true",
                   help="do not retrain to check Algorithm 1's estimated sets (minimal sets are always verified)")
    a.add_argument("--device", nargs="?", const="cuda", default=None,
                   help="torch device (default: CUDA when available, else CPU; '--device' alone = cuda)")
    a.add_argument("--seed", type=_number("--seed"), default=0,
                   help="seeds the test subset (--n-test) and the solvers (default: 0)")
    a.add_argument("--no-plots", action="store_true", help="do not write the PNG figures")
    a.add_argument("--estimate-only", action="store_true",
                   help="skip the search for minimal sets and report Algorithm 1's estimated sets only (faster; "
                        "by default every test row gets its minimal set: the fewest training labels found whose "
                        "relabeling, verified by retraining, flips the prediction)")
    a.add_argument("--minimal", action="store_true", help=argparse.SUPPRESS)   # the default now; accepted
    r = sub.add_parser("reproduce", help="run the paper's studies; write REPRODUCTION.md and reproduction.json")
    _output_args(r)
    r.add_argument("--only", nargs="+", metavar="STUDY", choices=study_order,
                   help="studies: " + ", ".join(study_order or ()))
    r.add_argument("--fast", action="store_true", help="small sizes (a few minutes)")
    r.add_argument("--synthetic", action="store_true", help="replace every data set by synthetic data (no files needed)")
    r.add_argument("--n-jobs", type=_number("--n-jobs"), default=1, help="joblib workers for the sweeps (default 1)")
    r.add_argument("--no-plots", action="store_true")
    return ap


def _round(v, digits: int = 1):
    """A number for the printed summary: rounded, '—' for none."""
    if v is None:
        return "—"
    v = float(v)
    return f"{v:.0f}" if v.is_integer() else f"{v:.{digits}f}"


def _audit(args) -> int:
    settings = ", ".join(f"{k} {'default' if v is None else v}" for k, v in
                         (("features", args.features), ("threshold", args.threshold), ("l2", args.l2),
                          ("n-test", args.n_test), ("seed", args.seed)))
    print(f"cfdkit audit: {args.dataset} ({settings}) -> {args.out}; loading cfdkit, the data and the model ...",
          flush=True)
    _check_numbers(args)
    target = _check_out(args.out, args.overwrite)
    if (args.features or "").lower() in ("embeddings", "embedding", "bert"):
        _require("sentence_transformers", "--features embeddings", "embeddings")
    if not args.no_plots:
        _require("matplotlib", "the figures (drop them with --no-plots)", "plots")
    with _atomic_dir(target, args.overwrite, "audit") as out:
        summary = _audit_into(args, out)
    fr = summary["flip_rate"]
    print(f"{summary['dataset']}/{summary['features']}: {summary['n_test']} test points (threshold "
          f"{summary['threshold']:g}, l2 {summary['l2']:g}), {summary['seconds']:.1f} s -> {target}")
    if "minimal_found_rate" in summary:
        print(f"  verified minimal sets (the answer): found "
              f"{100 * summary['minimal_found_rate']:.1f} %, median size {_round(summary['median_verified_size'])} "
              f"(Algorithm 1: {_round(summary['median_estimated_size'])}), median certified lower bound "
              f"{_round(summary['median_lower_bound'])}, proven minimal "
              f"{_pct(summary.get('proven_minimal_rate'))}, {summary['seconds_minimal']:.1f} s")
    print(f"  estimated sets (Algorithm 1, a linear estimate): found {100 * summary['found_rate']:.1f} %"
          + ("" if fr is None else f", flipped when retrained {100 * fr:.1f} %")
          + f", mean |S_t| {_round(summary['mean_size'])}, median {_round(summary['median_size'])}")
    return 0


def _pct(v) -> str:
    return "—" if v is None else f"{100 * float(v):.1f} %"


def _joined(ix) -> str:
    return " ".join(map(str, ix))


def _audit_into(args, out: Path) -> dict:
    import numpy as np
    import pandas as pd

    from .studies import audit_points, summarize_points

    t0 = time.perf_counter()
    df = audit_points(args.dataset, args.features, n_test=args.n_test, seed=args.seed, verify=not args.no_verify,
                      device=args.device, progress=True, cache=False, l2=args.l2, threshold=args.threshold)
    s = summarize_points(df)
    summary = {
        "dataset": s["dataset"], "features": s["features"], "n_train": int(s["n_train"]), "n_test": int(s["n_test"]),
        "threshold": float(s["threshold"]), "found_rate": s["found_rate"], "flip_rate": s.get("flip_rate"),
        "mean_size": s["mean_size"], "median_size": s["median_size"], "seconds": time.perf_counter() - t0,
        "l2": s["l2"], "accuracy": s["accuracy"], "success_ratio": s.get("success_ratio"),
        "seconds_algorithm1": s["seconds_algorithm1"], "seconds_verify": s["seconds_verify"],
        "n_not_converged": s.get("n_not_converged"),
        "verified": not args.no_verify, "seed": args.seed, "notes": df.attrs.get("notes", []),
        "threshold_from": "--threshold" if args.threshold is not None else "default (the paper's, for this data set)",
        "l2_from": "--l2" if args.l2 is not None else "default (the paper's, for this data set)",
        "minimal": not args.estimate_only,
    }
    # sets.csv speaks the vocabulary of the API (cfdkit.linear.results: ROW_COLUMNS, MINIMAL_COLUMNS,
    # ESTIMATED_COLUMNS): the minimal set's columns as MinimalSets.to_frame() names them (minimal_size,
    # minimal_status, lower_bound, ...), Algorithm 1's estimated set's as Verification.to_frame() names them
    # (estimated_size, estimated_refit_prob, ...)
    from .linear.results import MINIMAL_COLUMNS

    sets = pd.DataFrame({"test_index": df["test_index"], "prob": df["prob"],
                         "predicted_label": df["predicted_label"]})
    if not args.estimate_only:
        from .studies.linear import minimal_points, summarize_minimal

        mdf = minimal_points(args.dataset, args.features, n_test=args.n_test, seed=args.seed, device=args.device,
                             l2=args.l2, threshold=args.threshold, progress=True)
        if not np.array_equal(mdf["test_index"].to_numpy(), df["test_index"].to_numpy()):
            raise RuntimeError("the minimal-set search ran on other test rows than the audit (same seed and "
                               "--n-test expected); please report this.")
        minimal = {c: (list(mdf[c]) if c == "minimal_indices" else mdf[c].to_numpy()) for c in MINIMAL_COLUMNS
                   if c in mdf}
        df = df.assign(**minimal)  # the report's frame: the same names
        for c, v in minimal.items():
            if c != "minimal_indices":
                sets[c] = v
        proven = minimal["proven_minimal"].astype(bool)
        ms = summarize_minimal(mdf)
        summary.update({k: ms[k] for k in ("minimal_found_rate", "median_estimated_size", "median_verified_size",
                                           "median_lower_bound", "seconds_minimal")})
        found = mdf["minimal_status"].to_numpy() == "verified"
        summary["proven_minimal_rate"] = float(proven[found].mean()) if found.any() else None
        summary["n_minimal_found"] = int(found.sum())
    sets["estimated_size"] = df["size"].to_numpy()
    sets["estimated_refit_prob"] = df["new_prob"].to_numpy() if "new_prob" in df else np.nan
    sets["estimated_flipped"] = df["flipped"].to_numpy() if "flipped" in df else pd.NA
    sets["estimated_converged"] = df["converged"].to_numpy() if "converged" in df else pd.NA
    if not args.estimate_only:
        sets["minimal_indices"] = [_joined(ix) for ix in df["minimal_indices"]]
    sets["estimated_indices"] = [_joined(ix) for ix in df["indices"]]
    sets.to_csv(out / "sets.csv", index=False)
    if not args.no_plots:
        from . import plots

        plots.save(plots.size_distribution(df), out / "size_distribution.png")
        if df["found"].sum() > 2:
            plots.save(plots.size_vs_confidence(df), out / "size_vs_confidence.png")
        if "minimal_size" in df and ((df["minimal_size"] > 0) & (df["size"] > 0)).sum() > 0:
            plots.save(plots.estimated_vs_minimal(df), out / "estimated_vs_minimal.png")
    # NaN (a median over no rows, say) is not JSON and reads badly: None (null, "—"), the minimal keys included
    summary = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in summary.items()}
    from .report import write_audit_report  # report.html: plain-language summary, metrics, telling cases, figures

    summary["seconds"] = time.perf_counter() - t0              # the total, the minimal search included, before
    write_audit_report(out / "report.html", df, summary, dataset=args.dataset, features=args.features,  # the report
                       seed=args.seed, n_test=args.n_test, figures=sorted(out.glob("*.png")))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    return summary


def _reproduce(args) -> int:
    from .studies.reproduce import run_reproduction

    _check_numbers(args)
    target = _check_out(args.out, args.overwrite)
    studies = set(args.only or ())
    if not args.synthetic and (not studies or studies & {"table2", "figure4"}):
        _require("sentence_transformers", "the embedding rows of table2/figure4 (or --only other studies)", "embeddings")
    if not args.no_plots:
        _require("matplotlib", "the figures (drop them with --no-plots)", "plots")
    with _atomic_dir(target, args.overwrite, "reproduce") as out:
        run_reproduction(out, only=args.only, fast=args.fast, synthetic=args.synthetic, n_jobs=args.n_jobs,
                         plot=not args.no_plots)
    print(f"wrote {target / 'REPRODUCTION.md'} and {target / 'reproduction.json'}")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``cfdkit`` command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    args = _parser(studies=first != "audit").parse_args(argv)
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
