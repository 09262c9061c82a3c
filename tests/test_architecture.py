"""Issue 9: one shape for every family — scikit-learn's estimator contract, plain results, one score registry."""

import dataclasses
import pathlib
import re

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone

from cfdkit import NotFittedError, RelabelAudit
from cfdkit.linear import scores as S

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _problem(seed=0, n=120, d=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    return X, y


def test_relabel_audit_follows_the_sklearn_contract():
    a = RelabelAudit(l2=2.0, threshold=0.4, tol=1e-8, memory_budget="64MB")
    b = clone(a)
    assert b is not a and b.get_params() == a.get_params()
    assert repr(a) == "RelabelAudit(l2=2.0, memory_budget='64MB', threshold=0.4, tol=1e-08)"
    a.set_params(l2=3.0)
    assert a.l2 == 3.0 and not hasattr(a, "coef_")
    with pytest.raises(NotFittedError):
        a.predict_proba(np.zeros((1, 4)))
    X, y = _problem()
    a.fit(X, y)
    assert a.n_features_in_ == 4 and a.coef_.shape == (4,)
    c = clone(a)                      # unfitted copy with the same parameters
    assert not hasattr(c, "coef_") and c.l2 == 3.0
    # __init__ stores parameters as given; validation happens in fit
    bad = RelabelAudit(l2=-1.0)
    assert bad.l2 == -1.0
    with pytest.raises(ValueError, match="l2"):
        bad.fit(X, y)


def test_queries_do_not_change_the_estimator():
    X, y = _problem()
    a = RelabelAudit(l2=1.0).fit(X, y)
    before = {k: v for k, v in vars(a).items()}
    a.scores(X[:5], "relatif")
    a.verify(a.flip_sets(X[:5]))
    assert set(vars(a)) == set(before)


@pytest.mark.parametrize("sparse", [False, True])
def test_results_are_plain_data(sparse):
    X, y = _problem()
    Xs = sp.csr_matrix(X) if sparse else X
    a = RelabelAudit(l2=1.0).fit(Xs, y)
    res = a.flip_sets(Xs[:6])
    for f in dataclasses.fields(res):
        v = getattr(res, f.name)
        assert not isinstance(v, torch.Tensor), f.name
    assert (sp.issparse(res.X_test) if sparse else isinstance(res.X_test, np.ndarray))
    ver = a.verify(res)
    for name in ("flipped", "new_prob", "converged"):
        assert isinstance(getattr(ver, name), np.ndarray)


def test_adding_a_score_touches_one_place():
    @S.register_score("neg_ip_relabel_test", "toward_flip")
    def _neg(ctx):
        K, diag = S._REGISTRY["ip_relabel"][0](ctx)
        return -K, diag

    try:
        assert "neg_ip_relabel_test" in S.METHODS and S.RANK_DIRECTION["neg_ip_relabel_test"] == "toward_flip"
        from cfdkit import METHODS
        from cfdkit.studies import RANK_DIRECTION

        assert "neg_ip_relabel_test" in METHODS and "neg_ip_relabel_test" in RANK_DIRECTION
        X, y = _problem()
        a = RelabelAudit(l2=1.0).fit(X, y)
        np.testing.assert_array_equal(a.scores(X[:3], "neg_ip_relabel_test"), -a.scores(X[:3], "ip_relabel"))
    finally:
        S._REGISTRY.pop("neg_ip_relabel_test"); S.METHODS.remove("neg_ip_relabel_test")
        S.RANK_DIRECTION.pop("neg_ip_relabel_test")
    with pytest.raises(ValueError, match="direction"):
        S.register_score("x", "sideways")


def test_no_module_reads_another_modules_private_attributes():
    """``obj._name`` on an object of another module (e.g. a solver's factor, a result's hidden state) is not used."""
    bad = []
    for path in (ROOT / "cfdkit").rglob("*.py"):
        text = path.read_text()
        own = set(re.findall(r"def (_\w+)", text)) | set(re.findall(r"self\.(_\w+)\s*[:=]", text)) \
            | set(re.findall(r"^\s+(_\w+)\s*:", text, flags=re.M))      # the module's own classes' privates
        for i, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            for m in re.finditer(r"(?<![\w.])(\w+)\.(_[a-zA-Z]\w*)\b", code):
                obj, attr = m.group(1), m.group(2)
                if obj in ("self", "cls", "torch", "np", "sp", "os", "sys", "pd", "warnings", "F", "scipy") \
                        or obj[0].isupper() or attr in own:
                    continue
                bad.append(f"{path.relative_to(ROOT)}:{i}: {m.group(0)}")
    assert not bad, "private attributes read across objects:\n" + "\n".join(bad)


def test_the_layout_has_one_room_per_family():
    pkg = ROOT / "cfdkit"
    for room in ("core", "linear", "neural", "data", "studies"):
        assert (pkg / room / "__init__.py").exists(), room
    for gone in ("experiments", "datasets", "model.py", "solvers.py", "audit.py", "_backend.py", "_validation.py",
                 "features.py"):
        assert not (pkg / gone).exists(), f"{gone} should live in its family's room"
    assert not list((ROOT / "notebooks").glob("*.py")), "the .ipynb files are the only notebook source"
