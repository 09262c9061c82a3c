"""One shape for every family: scikit-learn's estimator contract, plain results, one score registry, rooms that
import one way, no import circles and no private names across modules (package and benchmarks)."""

import ast
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


def test_predict_proba_has_one_column_per_class_for_both_engines():
    """As scikit-learn: (n, n_classes) in the order of ``classes_``; the binary audit's ``P(y=1)`` is its own accessor."""
    X, y = _problem()
    a = RelabelAudit(l2=1.0).fit(X, y)
    P = a.predict_proba(X[:7])
    assert P.shape == (7, 2) and a.classes_.tolist() == [0, 1] and a.n_classes_ == 2
    np.testing.assert_array_equal(P[:, 1], a.positive_proba(X[:7]))
    np.testing.assert_array_equal(P[:, 0], 1.0 - P[:, 1])
    y3 = np.digitize(X[:, 1], [-0.5, 0.5])
    b = RelabelAudit(l2=1.0).fit(X, y3)
    P3 = b.predict_proba(X[:7])
    assert P3.shape == (7, 3) and b.classes_.tolist() == [0, 1, 2]
    np.testing.assert_allclose(P3.sum(1), 1.0, atol=1e-14)
    with pytest.raises(ValueError, match="positive_proba is for two classes"):
        b.positive_proba(X[:7])


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


#: ``obj._name`` reads in files others are rewriting; each entry names the file and the attribute, so a new read
#: anywhere (or another one in the same file) still fails.
PRIVATE_ATTRIBUTE_READS_ALLOWED = {
    # the benchmark reports the block size RelabelAudit picks; linear/audit.py has no public accessor for it yet
    ("benchmarks/bench_dask.py", "audit._block_rows"),
}


def _python_files():
    """Every source file the guards read: the package (all rooms, the spurious family included) and benchmarks/."""
    return sorted((ROOT / "cfdkit").rglob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))


def test_no_module_reads_another_modules_private_attributes():
    """``obj._name`` on an object of another module (e.g. a solver's factor, a result's hidden state) is not used."""
    bad = []
    for path in _python_files():
        text = path.read_text()
        rel = path.relative_to(ROOT).as_posix()
        own = set(re.findall(r"def (_\w+)", text)) | set(re.findall(r"self\.(_\w+)\s*[:=]", text)) \
            | set(re.findall(r"^\s+(_\w+)\s*:", text, flags=re.M))      # the module's own classes' privates
        for i, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            for m in re.finditer(r"(?<![\w.])(\w+)\.(_[a-zA-Z]\w*)\b", code):
                obj, attr = m.group(1), m.group(2)
                if obj in ("self", "cls", "torch", "np", "sp", "os", "sys", "pd", "warnings", "F", "scipy") \
                        or obj[0].isupper() or attr in own or (rel, m.group(0)) in PRIVATE_ATTRIBUTE_READS_ALLOWED:
                    continue
                bad.append(f"{rel}:{i}: {m.group(0)}")
    assert not bad, "private attributes read across objects:\n" + "\n".join(bad)


# -- the import graph ------------------------------------------------------------------------------------------
def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in (ROOT / "cfdkit").rglob("*.py")}


def _imports(path: pathlib.Path):
    """``(target module, imported name or None, line, lazy)`` for every ``cfdkit`` import in ``path``.

    ``lazy`` is True inside a function (run when called, not when the module is imported).  A ``from x import
    y`` whose ``x.y`` is a module counts as an import of ``x.y``.
    """
    name = _module_name(path) if path.is_relative_to(ROOT / "cfdkit") else path.stem
    is_pkg = path.name == "__init__.py"
    out = []

    def visit(node, lazy):
        for ch in ast.iter_child_nodes(node):
            inner = lazy or isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(ch, ast.ImportFrom):
                if ch.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - (ch.level - 1)]
                    tgt = ".".join(base + ([ch.module] if ch.module else []))
                else:
                    tgt = ch.module or ""
                if tgt.split(".")[0] == "cfdkit":
                    for a in ch.names:
                        full = f"{tgt}.{a.name}"
                        out.append((full, None, ch.lineno, inner) if full in MODULES
                                   else (tgt, a.name, ch.lineno, inner))
            elif isinstance(ch, ast.Import):
                out.extend((a.name, None, ch.lineno, inner) for a in ch.names if a.name.split(".")[0] == "cfdkit")
            visit(ch, inner)

    visit(ast.parse(path.read_text()), False)
    return out


def _graph(lazy: bool) -> dict:
    """Module → set of cfdkit modules it imports (module level only, or module level and inside functions)."""
    g = {}
    for mod, path in MODULES.items():
        g[mod] = {t for t, _, _, lz in _imports(path) if (lazy or not lz) and t in MODULES and t != mod}
    return g


def _circles(g: dict) -> list:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v); on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(tuple(sorted(comp)))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


#: Circles closed only by an import inside a function (lazy), in modules others are rewriting.  Each is one
#: documented exception: any other circle, or one of these closed at module level, fails.  (None is left.)
LAZY_CIRCLES_ALLOWED: set = set()


def test_no_import_circles_at_module_level():
    """Importing any cfdkit module never re-enters a module being imported (module-level imports)."""
    assert not _circles(_graph(lazy=False)), f"import circles: {_circles(_graph(lazy=False))}"


def test_no_import_circles_through_lazy_imports_except_the_documented_ones():
    """Imports inside functions do not close a circle either, except :data:`LAZY_CIRCLES_ALLOWED`."""
    found = set(_circles(_graph(lazy=True)))
    new = found - LAZY_CIRCLES_ALLOWED
    assert not new, f"new import circles (some import inside a function closes them): {sorted(new)}"


def test_the_circle_finder_finds_circles():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [("a", "b", "c")]
    assert _circles({"a": {"b"}, "b": set()}) == []


#: ``from .x import _name`` across modules in files others are rewriting (file, imported name); a new one fails.
PRIVATE_IMPORTS_ALLOWED = {
    # the benchmark times the linear refits' label/weight matrices; linear/retrain.py keeps the helper private
    ("benchmarks/bench_refit_alternatives.py", "cfdkit.linear.retrain._labels_and_weights"),
}


def test_no_private_names_imported_across_modules():
    """``from .x import _name`` (a name private to another module) is not used, in the package or benchmarks."""
    bad = []
    for path in _python_files():
        rel = path.relative_to(ROOT).as_posix()
        for tgt, nm, line, _ in _imports(path):
            if nm and nm.startswith("_") and not nm.startswith("__") and (rel, f"{tgt}.{nm}") \
                    not in PRIVATE_IMPORTS_ALLOWED:
                bad.append(f"{rel}:{line}: from {tgt} import {nm}")
    assert not bad, "private names imported from another module:\n" + "\n".join(bad)


#: Rooms in import order: a room imports only rooms of a lower rank (never sideways, never upward).
ROOM_RANK = {"core": 0, "plots": 0, "data": 1, "linear": 2, "neural": 2, "spurious": 3, "studies": 4, "report": 5,
             "cli": 6, "__main__": 7}


def _room(mod: str) -> str:
    return mod.split(".")[1] if "." in mod else "cfdkit"


def test_rooms_import_downward_only():
    """core/plots ← data ← linear, neural ← spurious ← studies ← report ← cli, module level and inside functions."""
    bad = []
    for mod, path in MODULES.items():
        a = _room(mod)
        for tgt, _, line, _ in _imports(path):
            b = _room(tgt)
            if a == b or a == "cfdkit" or b == "cfdkit" and a == "__main__":
                continue
            if b == "cfdkit" or ROOM_RANK.get(b, 99) >= ROOM_RANK.get(a, -1):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {a} imports {tgt}")
    assert not bad, "imports against the room order:\n" + "\n".join(bad)


def test_the_layout_has_one_room_per_family():
    pkg = ROOT / "cfdkit"
    for room in ("core", "linear", "neural", "spurious", "data", "studies"):
        assert (pkg / room / "__init__.py").exists(), room
    for gone in ("experiments", "datasets", "model.py", "solvers.py", "audit.py", "_backend.py", "_validation.py",
                 "features.py"):
        assert not (pkg / gone).exists(), f"{gone} should live in its family's room"
    assert not list((ROOT / "notebooks").glob("*.py")), "the .ipynb files are the only notebook source"


def test_spurious_room_holds_methods_and_nets_only():
    """cfdkit/spurious/ has no studies (no ``*_records``, no paper tables) and one file of MLPs; the studies live in
    cfdkit/studies/ and reproduce imports them by name, never by string."""
    spur = ROOT / "cfdkit" / "spurious"
    bad = []
    for path in sorted(spur.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.endswith("_records"):
                bad.append(f"{path.name}: study function {node.name}")
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name) and t.id.startswith("PAPER"):
                        bad.append(f"{path.name}: paper table {t.id}")
            if isinstance(node, ast.ClassDef) and path.name != "nets.py" and any(
                    isinstance(b, ast.Attribute) and b.attr == "Module" for b in node.bases) \
                    and ("MLP" in node.name or node.name in ("DigitCNN", "AutoencoderNet", "ReLUNetProba")):
                bad.append(f"{path.name}: network {node.name} outside nets.py")
    assert not bad, "studies, paper tables or nets in the method room:\n" + "\n".join(bad)
    assert not (spur / "study.py").exists()
    rep = (ROOT / "cfdkit" / "studies" / "reproduce.py").read_text()
    assert "importlib" not in rep, "reproduce reaches a study by string"
    for name in ("ifbid", "cf_alignment", "neurontune"):
        assert (ROOT / "cfdkit" / "studies" / f"{name}.py").exists(), name
