"""Bad-input suite for the command line, the linear family's entry points, data and studies.

Every case ends either in a correct answer (asserted) or in a ValueError / TypeError whose message names the
argument (and, for the command line, exit status 2 and one line naming the option). Each runs under a time
limit, so a hang fails. Case ids start with ``err-`` or ``ok-``; ``test_counts`` prints tried / clear error /
correct answer. Covered: the one numeric check (``check_number``), the command line's numeric options and its
output folder (a populated folder, an ancestor of the working directory, ``--overwrite``), ``prepare`` and
``resolve_l2``, ``group_report`` / ``group_metric_frame`` group labels, ``RelabelAudit.from_sklearn`` on
genuine fits with a very small ``tol``.
"""

import functools
import hashlib
import signal

import numpy as np
import pandas as pd
import pytest

from cfdkit import RelabelAudit
from cfdkit.cli import main

from conftest import make_problem

LIMIT_S = 120


@functools.lru_cache(maxsize=None)
def fitted():
    X, y, Xt, _ = make_problem(n=200, d=5, n_test=30, seed=4, noise=1.0)
    a = RelabelAudit(l2=1.0, device="cpu").fit(X, y)
    fs = a.flip_sets(Xt)
    return X, y, Xt, a, fs


CASES = {}
#: ``expect`` of a command-line case that asserts its own refusal (exit status 2, one line naming the option).
REFUSED = "refused"


def case(cid, expect=None, *needles):
    """Register a case: ``expect`` an exception type (the message must hold every needle), :data:`REFUSED` (the
    case asserts its own clear refusal) or None (the case asserts its own correct answer)."""
    def deco(fn):
        assert cid.startswith("err-" if expect else "ok-"), cid
        CASES[cid] = (fn, expect, needles)
        return fn
    return deco


# ------------------------------------------------------------------------------------------ check_number itself

def _cn(value, **kw):
    from cfdkit.core.validation import check_number

    return check_number(value, "max_size", **kw)


for _v, _t in [(True, TypeError), (np.bool_(False), TypeError), ("3", TypeError), (None, TypeError),
               (1 + 2j, TypeError), (float("nan"), ValueError), (np.float32("nan"), ValueError),
               (float("inf"), ValueError), (-float("inf"), ValueError)]:
    case(f"err-check_number-{_v!r}", _t, "max_size", "Pass")(functools.partial(_cn, _v, low=1, fix="Pass 16."))
case("err-check_number-fraction-for-int", TypeError, "max_size", "integer")(
    functools.partial(_cn, 2.5, low=1, integer=True))
case("err-check_number-below", ValueError, "max_size", ">= 1")(functools.partial(_cn, 0, low=1, integer=True))
case("err-check_number-above", ValueError, "max_size", "<= 10")(functools.partial(_cn, 11, high=10))
case("err-check_number-open-low", ValueError, "max_size", "> 0")(
    functools.partial(_cn, 0.0, low=0, low_inclusive=False))
case("err-check_number-open-high", ValueError, "max_size", "< 1")(
    functools.partial(_cn, 1.0, high=1, high_inclusive=False))


@case("ok-check_number-values")
def _():
    from cfdkit.core.validation import check_number

    assert check_number(np.int64(3), "k", low=1, integer=True) == 3
    assert type(check_number(4.0, "k", integer=True)) is int
    assert check_number(np.float32(0.25), "t", low=0, high=1) == 0.25
    assert check_number(None, "k", allow_none=True) is None
    assert check_number(2**70, "k", integer=True) == 2**70


# ----------------------------------------------------------------------------------- command line: numeric options

def _cli(tmp_path, *argv):
    (tmp_path / "file").write_text("x")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        rc = main(list(argv))
    except SystemExit as e:
        rc = e.code
    return rc


_AUDIT = ("audit", "--dataset", "synthetic", "--out", "{tmp}/o", "--no-plots", "--no-verify")
CLI_BAD = [
    (_AUDIT + ("--seed", "-1"), "--seed"),
    (_AUDIT + ("--seed", "4294967296"), "--seed"),
    (_AUDIT + ("--seed", "nan"), "--seed"),
    (_AUDIT + ("--seed", "1.5"), "--seed"),
    (_AUDIT + ("--n-test", "nan"), "--n-test"),
    (_AUDIT + ("--n-test", "inf"), "--n-test"),
    (_AUDIT + ("--n-test", "2.5"), "--n-test"),
    (_AUDIT + ("--n-test", "0.0"), "--n-test"),
    (_AUDIT + ("--threshold", "1"), "--threshold"),
    (_AUDIT + ("--threshold", "0"), "--threshold"),
    (_AUDIT + ("--threshold", "nan"), "--threshold"),
    (_AUDIT + ("--threshold", "half"), "--threshold"),
    (_AUDIT + ("--l2", "0"), "--l2"),
    (_AUDIT + ("--l2", "-1"), "--l2"),
    (_AUDIT + ("--l2", "inf"), "--l2"),
    (_AUDIT + ("--l2", "nan"), "--l2"),
    (("reproduce", "--out", "{tmp}/r", "--n-jobs", "100000"), "--n-jobs"),
    (("reproduce", "--out", "{tmp}/r", "--n-jobs", "inf"), "--n-jobs"),
    (("reproduce", "--out", "{tmp}/r", "--n-jobs", "-1"), "--n-jobs"),
]
for _argv, _needle in CLI_BAD:
    def _run(tmp_path, capsys, _argv=_argv, _needle=_needle):
        rc = _cli(tmp_path, *_argv)
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and _needle in err and "Traceback" not in err, (rc, err)
        assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()
    case("err-cli " + " ".join(_argv[-2:]), REFUSED)(_run)


@case("ok-cli-n-test-written-as-float")
def _(tmp_path, capsys):
    import json

    assert _cli(tmp_path, *_AUDIT, "--n-test", "1e1") == 0            # 10, written the way a shell might
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["n_test"] == 10


# --------------------------------------------------------------------------------- command line: the output folder

def _tree(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _user_folder(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "paper.tex").write_text("mine")
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "data.csv").write_bytes(b"1,2,3\n" * 50)
    return _tree(folder)


@case("err-cli-out-populated-folder", REFUSED)
def _(tmp_path, capsys):
    before = _user_folder(tmp_path / "o")
    assert _cli(tmp_path, *_AUDIT) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "paper.tex" in err
    assert _tree(tmp_path / "o") == before


@case("ok-cli-out-populated-folder-overwrite-keeps-user-files")
def _(tmp_path, capsys):
    before = _user_folder(tmp_path / "o")
    assert _cli(tmp_path, *_AUDIT, "--overwrite") == 0
    after = _tree(tmp_path / "o")
    assert {k: after[k] for k in before} == before and "summary.json" in after


for _rel in ("..", "../..", "../../.."):
    def _anc(tmp_path, capsys, monkeypatch, _rel=_rel):
        work = tmp_path / "x" / "y" / "z"
        work.mkdir(parents=True)
        (work / "keep.py").write_text("keep")
        (tmp_path / "file").write_text("x")
        before = _tree(tmp_path)
        monkeypatch.chdir(work)
        assert _cli(tmp_path, "audit", "--dataset", "synthetic", "--out", _rel, "--no-plots", "--no-verify",
                    "--overwrite") == 2
        assert "working directory" in capsys.readouterr().err
        assert _tree(tmp_path) == before
    case(f"err-cli-out-ancestor-{_rel}", REFUSED)(_anc)


# ------------------------------------------------------------------------------------- data.prepare, resolve_l2

def _prep(**kw):
    from cfdkit.data.prepare import prepare

    return prepare("synthetic", **kw)


for _name in ("n_test", "n_train"):
    for _v, _t in [(float("nan"), ValueError), (float("inf"), ValueError), (True, TypeError), (2.5, TypeError),
                   ("3", TypeError), (0, ValueError), (-2, ValueError)]:
        case(f"err-prepare-{_name}={_v!r}", _t, _name)(functools.partial(_prep, **{_name: _v}))
for _v, _t in [(float("nan"), ValueError), (float("inf"), ValueError), (1.5, ValueError), (-0.1, ValueError),
               (True, TypeError)]:
    case(f"err-prepare-noise={_v!r}", _t, "noise")(functools.partial(_prep, noise=_v))


@case("ok-prepare-n_test-integral-float")
def _():
    p = _prep(n_test=7.0, n_train=50, noise=0.1)
    assert len(p.y_test) == 7 and len(p.y_train) == 50 and len(p.info["noisy_idx"]) == 5


def _rl2(v):
    from cfdkit.studies.linear import resolve_l2

    return resolve_l2(v, 100, "mean")


for _v, _t in [(float("nan"), ValueError), (float("inf"), ValueError), (0.0, ValueError), (-1.0, ValueError),
               (True, TypeError), ("10", TypeError)]:
    case(f"err-resolve_l2-l2={_v!r}", _t, "l2")(functools.partial(_rl2, _v))


# ------------------------------------------------------------------------------------------------ group labels

def _groups(kind):
    from cfdkit.linear import group_metric_frame, group_report

    X, y, Xt, a, fs = fitted()
    fn = group_metric_frame if kind.endswith("mf") else group_report
    g_test = np.where(Xt[:, 1] > 0, "a", "b")
    g_train = np.where(X[:, 0] > 0, "hi", "lo")
    if kind.startswith("train-too-long"):       # the groups of the whole data set (train + test) by mistake
        g_all = np.concatenate([g_train, np.where(Xt[:, 0] > 0, "hi", "lo")])
        return fn(fs, g_test, train_sensitive_features=g_all)
    if kind.startswith("train-too-short"):
        return fn(fs, g_test, train_sensitive_features=g_train[: len(g_train) - 3])
    if kind.startswith("test-too-long"):
        return fn(fs, np.concatenate([g_test, ["a"]]), train_sensitive_features=g_train)
    if kind.startswith("mixed-int-str"):
        return fn(fs, [1 if i % 2 else "1" for i in range(len(Xt))])
    if kind.startswith("mixed-bool-int"):
        return fn(fs, [True if i % 2 else 1 for i in range(len(Xt))])
    if kind.startswith("train-mixed"):
        return fn(fs, g_test, train_sensitive_features=[0 if i % 3 else "0" for i in range(len(X))])
    if kind.startswith("list-labels"):
        return fn(fs, pd.Series([[1, 2]] * len(Xt)))
    if kind.startswith("frame-mixed"):
        return fn(fs, pd.DataFrame({"sex": ["f", "m"] * (len(Xt) // 2), "age": [25, "25"] * (len(Xt) // 2)}))
    raise AssertionError(kind)


for _kind, _t, _needle in [("train-too-long", ValueError, "train_sensitive_features"),
                           ("train-too-long-mf", ValueError, "train_sensitive_features"),
                           ("train-too-short", ValueError, "train_sensitive_features"),
                           ("test-too-long", ValueError, "sensitive_features"),
                           ("mixed-int-str", TypeError, "sensitive_features"),
                           ("mixed-int-str-mf", TypeError, "sensitive_features"),
                           ("mixed-bool-int", TypeError, "sensitive_features"),
                           ("train-mixed", TypeError, "train_sensitive_features"),
                           ("list-labels", TypeError, "sensitive_features"),
                           ("frame-mixed", TypeError, "sensitive_features['age']")]:
    case(f"err-group_report-{_kind}", _t, _needle, "type" if _t is TypeError else "training row"
         if "train" in _kind else "test row")(functools.partial(_groups, _kind))


@case("ok-group_report-right-length-shares")
def _():
    from cfdkit.linear import group_report

    X, y, Xt, a, fs = fitted()
    g_train = np.where(X[:, 0] > 0, "hi", "lo")
    df = group_report(fs, np.where(Xt[:, 1] > 0, "a", "b"), train_sensitive_features=g_train)
    share = df.attrs["train_group_share"]
    assert share == pytest.approx({"hi": float(np.mean(g_train == "hi")), "lo": float(np.mean(g_train == "lo"))})
    ints = group_report(fs, (Xt[:, 1] > 0).astype(int))        # one type (ints) is fine
    assert list(ints.index) == [0, 1]


# ------------------------------------------------------------------------- from_sklearn with a very small tol

def _sk(tol, solver="lbfgs", weights=False):
    from sklearn.linear_model import LogisticRegression

    X, y, *_ = fitted()
    sw = np.random.default_rng(1).uniform(0.2, 2.0, len(y)) if weights else None
    clf = LogisticRegression(C=1.0, tol=tol, solver=solver, max_iter=10_000).fit(X, y, sample_weight=sw)
    return clf, RelabelAudit.from_sklearn(clf, X, y)


for _tol in (1e-10, 1e-12, 1e-14):
    for _solver in ("lbfgs", "newton-cg", "newton-cholesky"):
        def _genuine(_tol=_tol, _solver=_solver):
            clf, a = _sk(_tol, _solver)
            w = np.concatenate([clf.coef_[0], clf.intercept_])
            assert np.max(np.abs(np.concatenate([a.coef_, [a.intercept_]]) - w)) < 1e-5
        case(f"ok-from_sklearn-{_solver}-tol={_tol:g}")(_genuine)
case("err-from_sklearn-sample-weights-tol=1e-12", ValueError, "sample_weight", "X/y")(
    functools.partial(_sk, 1e-12, weights=True))


# ---------------------------------------------------------------------------------------------------- runner

def _alarm(*_):
    raise TimeoutError(f"case ran longer than {LIMIT_S} s (a hang)")


@pytest.mark.parametrize("cid", list(CASES))
def test_case(cid, request):
    fn, expect, needles = CASES[cid]
    import inspect

    kwargs = {n: request.getfixturevalue(n) for n in inspect.signature(fn).parameters
              if n in ("tmp_path", "capsys", "monkeypatch")}
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(LIMIT_S)
    try:
        if expect is None or expect is REFUSED:
            fn(**kwargs)
            return
        with pytest.raises(expect) as exc:
            fn(**kwargs)
        msg = str(exc.value)
        for needle in needles:
            assert needle in msg, f"{needle!r} not in: {msg}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_counts(capsys):
    errs = sum(c.startswith("err-") for c in CASES)
    with capsys.disabled():
        print(f"\nbad-input CLI/linear/data/studies: {len(CASES)} cases tried, {errs} clear errors, "
              f"{len(CASES) - errs} correct answers")
    assert errs and len(CASES) - errs
