"""Bad-input suite (issue 8, section 4) for datasets, features, cfdkit.neural and the widgets.

Every case ends in a correct answer (asserted) or a ``ValueError`` /
``TypeError`` whose message names the argument.  Never a raw exception from
numpy, torch or Python internals, never a silently wrong answer.  The counts
(tried / clear error / correct answer) are printed by ``test_case_counts``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from cfdkit.data import load, make_synthetic
from cfdkit.data.features import EMBEDDING_DIM, bag_of_words, sentence_embeddings, tabular_features
from cfdkit.neural import NeuralCFD, exhaustive_cfd, ranking_recall

W = pytest.importorskip("cfdkit_widgets")

# ------------------------------------------------------------------ shared inputs
_rng = np.random.default_rng(0)
X = _rng.normal(size=(24, 3))
Y = (X[:, 0] > 0).astype(int)
XT = _rng.normal(size=(4, 3))
TRAIN = ["the cat sat", "the dog sat down", "a cat and a dog"]
TEST = ["the zebra sat", "unseen words only"]
TR = pd.DataFrame({"age": [20.0, 30, 40, 50], "color": ["red", "blue", "red", "blue"]})
TE = pd.DataFrame({"age": [25.0, 60], "color": ["green", "blue"]})


def _cfd(**kw):
    return NeuralCFD(**{"hidden": (3, 3), "budget": 2, "epochs": 5, "tol": None, "weight_decay": 0.0, "lr_min": None, "progress": False, **kw})


_FITTED: dict = {}


def fitted():
    if "m" not in _FITTED:
        _FITTED["m"] = _cfd().fit(X, Y)
    return _FITTED["m"]


class FakeFlipSets:
    """The public surface of cfdkit.FlipSets the widgets read (3 test points)."""

    kind = "relabel"
    threshold = 0.5

    def __init__(self):
        self.size = np.array([2, 0, 1])
        self.prob = np.array([0.7, 0.2, 0.6])
        self._idx = [np.array([5, 20]), np.array([], dtype=np.int64), np.array([3])]

    def indices(self, i):
        return self._idx[i]

    def effects(self, i):
        return -0.1 * np.ones(self._idx[i].size)

    def path(self, i):
        return self.prob[i] + np.concatenate([[0.0], np.cumsum(self.effects(i))])


class FakeAudit:
    y_train_ = Y

    def flip_sets(self, X_test):
        return FakeFlipSets()


class FakeResult:
    logit = np.array([0.5, -0.3])
    new_logit = np.array([-0.1, 0.0])
    found = np.array([True, False])
    k = np.array([1, 0])
    budget = 2
    ranking = "combined"
    n_candidates = np.array([10, 10])
    searched = np.array([True, True])

    def indices(self, j):
        return np.array([3]) if j == 0 else np.array([], dtype=np.int64)


# ------------------------------------------------------------------ the cases
CASES: list = []


def err(case_id, fn, exc, word):
    CASES.append(pytest.param(fn, ("error", exc, word), id=case_id))


def ok(case_id, fn, check):
    CASES.append(pytest.param(fn, ("ok", check, None), id=case_id))


# ---- load: names
for i, name in enumerate([3, None, b"sst2", ["sst2"], 1.5]):
    err(f"load-name-type-{i}", lambda name=name: load(name), TypeError, "name")
for i, name in enumerate(["mnist", "", "  ", "sst3", "hate speech 2"]):
    err(f"load-name-unknown-{i}", lambda name=name: load(name), ValueError, "name")
ok("load-name-case", lambda: load("Synthetic", n_train=10, n_test=2), lambda d: d.X_train.shape == (10, 20))
ok("load-name-underscore", lambda: load(" synthetic ", n_train=10, n_test=2), lambda d: d.name == "synthetic")

# ---- load: synthetic kwargs
_SYN_BAD = [
    ("n_train", -1, ValueError), ("n_train", 1, ValueError), ("n_train", 1.5, TypeError), ("n_train", "10", TypeError),
    ("n_train", True, TypeError), ("n_train", None, TypeError), ("n_test", 0, ValueError), ("n_test", 2.0, TypeError),
    ("n_features", 0, ValueError), ("n_features", "3", TypeError), ("noise", -0.1, ValueError),
    ("noise", 1.5, ValueError), ("noise", "0.1", ValueError), ("noise", float("nan"), ValueError),
    ("noise", True, ValueError), ("seed", -1, ValueError), ("seed", 1.5, ValueError), ("seed", "0", ValueError),
    ("seed", True, ValueError), ("seed", None, ValueError), ("class_sep", float("nan"), ValueError),
    ("class_sep", float("inf"), ValueError), ("class_sep", -1.0, ValueError), ("class_sep", "3", TypeError),
    ("class_sep", None, TypeError), ("doc_length", 0, ValueError), ("doc_length", 2.5, TypeError),
    ("sparse", "yes", TypeError), ("sparse", 1.0, TypeError),
]
for k, v, exc in _SYN_BAD:
    err(f"load-synthetic-{k}={v!r}", lambda k=k, v=v: load("synthetic", **{"n_train": 10, "n_test": 2, k: v}), exc, k)
err("load-synthetic-unknown-kwarg", lambda: load("synthetic", foo=1), TypeError, "foo")
err("load-synthetic-data_home", lambda: load("synthetic", data_home="/tmp"), TypeError, "data_home")
ok("load-synthetic-np-int", lambda: load("synthetic", n_train=np.int64(12), n_test=np.int32(3)),
   lambda d: (d.n_train, d.n_test) == (12, 3))
ok("load-synthetic-np-float-noise", lambda: load("synthetic", n_train=20, n_test=2, noise=np.float32(0.1)),
   lambda d: d.meta["flipped_idx"].size == 2)
ok("load-synthetic-sparse-np-bool", lambda: load("synthetic", n_train=20, n_test=2, sparse=np.bool_(True)),
   lambda d: sp.issparse(d.X_train) and np.isfinite(d.X_train.data).all())
ok("load-synthetic-class_sep-0", lambda: load("synthetic", n_train=20, n_test=2, class_sep=0),
   lambda d: np.isfinite(d.X_train).all())
ok("load-synthetic-huge-finite", lambda: load("synthetic", n_train=20, n_test=2, class_sep=1e300),
   lambda d: np.isfinite(d.X_train).all())

# ---- load: data_home / mirror / loader arguments (checked before any file is read)
for nm in ("sst2", "hate-speech", "loan", "german", "adult"):
    err(f"load-{nm}-data_home-int", lambda nm=nm: load(nm, data_home=3), TypeError, "data_home")
    err(f"load-{nm}-data_home-empty", lambda nm=nm: load(nm, data_home=""), ValueError, "data_home")
for nm in ("sst2", "german"):
    err(f"load-{nm}-mirror-ftp", lambda nm=nm, tmp=None: load(nm, data_home="/nonexistent-cfdkit-home",
                                                            mirror="ftp://example"), ValueError, "mirror")
for i, ts in enumerate([0, 1, 1.5, -0.2, float("nan")]):
    err(f"load-german-test_size-{i}", lambda ts=ts: load("german", test_size=ts), ValueError, "test_size")
err("load-german-test_size-str", lambda: load("german", test_size="0.2"), TypeError, "test_size")
err("load-german-seed-neg", lambda: load("german", seed=-1), ValueError, "seed")
err("load-loan-test_size", lambda: load("loan", test_size=2.0), ValueError, "test_size")

# ---- bag_of_words
for i, (tr, te, word, exc) in enumerate([
    ("one string", TEST, "train_texts", TypeError), (TRAIN, "one string", "test_texts", TypeError),
    (None, TEST, "train_texts", TypeError), ([1, 2], TEST, r"train_texts\[0\]", TypeError),
    (TRAIN, ["ok", None], r"test_texts\[1\]", TypeError), ([], TEST, "train_texts", ValueError),
    (b"bytes", TEST, "train_texts", TypeError), (3, TEST, "train_texts", TypeError),
]):
    err(f"bow-texts-{i}", lambda tr=tr, te=te: bag_of_words(tr, te), exc, word)
for v in (0, -1, 1.5, "5", True):
    err(f"bow-max_features={v!r}", lambda v=v: bag_of_words(TRAIN, TEST, max_features=v), ValueError, "max_features")
for v in ("no", None, 1):
    err(f"bow-binary={v!r}", lambda v=v: bag_of_words(TRAIN, TEST, binary=v), TypeError, "binary")
err("bow-dtype", lambda: bag_of_words(TRAIN, TEST, dtype=np.float32), TypeError, "dtype")
ok("bow-max_features-None", lambda: bag_of_words(TRAIN, TEST, max_features=None), lambda r: r[0].shape[0] == 3)
ok("bow-max_features-np", lambda: bag_of_words(TRAIN, TEST, max_features=np.int64(2)), lambda r: len(r[2]) == 2)
ok("bow-empty-test", lambda: bag_of_words(TRAIN, []), lambda r: r[1].shape[0] == 0)
ok("bow-tuple-texts", lambda: bag_of_words(tuple(TRAIN), tuple(TEST)), lambda r: "cat" in r[2])


# ---- tabular_features
def _tab(tr=TR, te=TE, cat=("color",), num=("age",)):
    return tabular_features((tr, te, list(cat), list(num)))


def _with(df, col, values):
    df = df.copy()
    df[col] = values
    return df


err("tab-not-tuple", lambda: tabular_features(TR), TypeError, "tabular_features")
err("tab-tuple-3", lambda: tabular_features((TR, TE, ["color"])), TypeError, "tabular_features")
err("tab-train-array", lambda: tabular_features((TR.to_numpy(), TE, ["color"], [])), TypeError, "train")
err("tab-test-list", lambda: tabular_features((TR, [1, 2], ["color"], [])), TypeError, "test")
err("tab-missing-col", lambda: _tab(cat=("nope",)), ValueError, "nope")
err("tab-overlap", lambda: _tab(cat=("age",), num=("age",)), ValueError, "age")
err("tab-no-columns", lambda: _tab(cat=(), num=()), ValueError, "categorical")
err("tab-text-numeric", lambda: _tab(cat=(), num=("color",)), ValueError, "numeric")
err("tab-inf-train", lambda: _tab(tr=_with(TR, "age", [1, np.inf, 3, 4])), ValueError, "age")
err("tab-ninf-test", lambda: _tab(te=_with(TE, "age", [-np.inf, 2])), ValueError, "age")
err("tab-empty-train", lambda: _tab(tr=TR.iloc[:0]), ValueError, "training")
err("tab-complex-train", lambda: _tab(tr=_with(TR, "age", TR["age"] + 1j)), TypeError, "age")
err("tab-complex-test", lambda: _tab(te=_with(TE, "age", TE["age"] + 2j)), TypeError, "age")
err("tab-synthetic-dataset", lambda: tabular_features(make_synthetic(n_train=10, n_test=2)), ValueError, "tabular")
ok("tab-empty-test", lambda: _tab(te=TE.iloc[:0]), lambda r: r[1].shape == (0, r[0].shape[1]))
ok("tab-nan-imputed", lambda: _tab(tr=_with(TR, "age", [20, np.nan, 40, 50])),
   lambda r: np.isfinite(r[0]).all() and r[0][1, 0] == pytest.approx((40 - 37.5) / np.std([20, 40, 40, 50])))
ok("tab-huge", lambda: _tab(tr=_with(TR, "age", [1e308, -1e308, 0, 5e307])),
   lambda r: np.isfinite(r[0]).all() and abs(r[0][:, 0].std() - 1) < 1e-12)
ok("tab-constant", lambda: _tab(tr=_with(TR, "age", [5.0] * 4)), lambda r: (r[0][:, 0] == 0).all())
ok("tab-bool-numeric", lambda: _tab(tr=_with(TR, "age", [True, False, True, False]), te=_with(TE, "age", [True, True])),
   lambda r: np.allclose(r[0][:, 0], [1, -1, 1, -1]))

# ---- sentence_embeddings (argument checks that run before the model is needed)
for i, (kw, exc, word) in enumerate([
    ({"texts": "one"}, TypeError, "texts"), ({"texts": [1]}, TypeError, r"texts\[0\]"),
    ({"texts": None}, TypeError, "texts"), ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": -3}, ValueError, "batch_size"), ({"batch_size": 1.5}, ValueError, "batch_size"),
    ({"batch_size": "8"}, ValueError, "batch_size"), ({"batch_size": True}, ValueError, "batch_size"),
    ({"device": 3}, TypeError, "device"), ({"device": None}, TypeError, "device"),
    ({"cache_key": 3}, TypeError, "cache_key"), ({"cache_dir": 3}, TypeError, "cache_dir"),
    ({"cache_dir": ""}, ValueError, "cache_dir"), ({"use_cache": "yes"}, TypeError, "use_cache"),
    ({"show_progress": None}, TypeError, "show_progress"),
]):
    args = {"texts": ["a text"], **kw}
    err(f"emb-{i}-{list(kw)[0]}", lambda args=args: sentence_embeddings(**args), exc, word)
ok("emb-empty", lambda: sentence_embeddings([], use_cache=False), lambda e: e.shape == (0, EMBEDDING_DIM))

# ---- NeuralCFD parameters (stored by __init__, checked in fit)
_NEURAL_PARAMS = [
    ("hidden", (4,), ValueError), ("hidden", (4, 4, 4), ValueError), ("hidden", "88", ValueError),
    ("hidden", (4.5, 4), ValueError), ("hidden", (0, 4), ValueError), ("hidden", (True, 4), ValueError),
    ("hidden", None, ValueError), ("hidden", 4, ValueError), ("hidden", (4, "4"), ValueError),
    ("budget", 0, ValueError), ("budget", -1, ValueError), ("budget", 1.5, ValueError), ("budget", "3", ValueError),
    ("budget", True, ValueError), ("budget", None, ValueError),
    ("ranking", "nope", ValueError), ("ranking", 3, TypeError), ("ranking", ["combined"], TypeError),
    ("ranking", None, TypeError),
    ("seed", -1, ValueError), ("seed", "3", TypeError), ("seed", "abc", TypeError), ("seed", 1.5, TypeError),
    ("seed", True, TypeError), ("seed", None, TypeError), ("seed", 2**64, ValueError),
    ("epochs", 0, ValueError), ("epochs", -1, ValueError), ("epochs", 1.5, ValueError), ("epochs", "300", ValueError),
    ("epochs", True, ValueError),
    ("lr", 0, ValueError), ("lr", -1.0, ValueError), ("lr", float("nan"), ValueError), ("lr", float("inf"), ValueError),
    ("lr", "0.01", ValueError), ("lr", True, ValueError), ("lr", None, ValueError),
    ("dtype", torch.float16, ValueError), ("dtype", "float64", ValueError), ("dtype", np.float64, ValueError),
    ("dtype", torch.int64, ValueError),
    ("device", "mps", ValueError), ("device", "meta", ValueError), ("device", "xyz", ValueError),
    ("device", 3.5, TypeError), ("device", True, TypeError), ("device", [0], TypeError),
    ("max_batch", 0, ValueError), ("max_batch", 1.5, ValueError), ("num_threads", 0, ValueError),
    ("num_threads", "2", ValueError), ("schedule", "x", ValueError), ("schedule", None, ValueError),
    ("cache", "yes", TypeError), ("progress", "no", TypeError), ("ranking_options", [1], TypeError),
]
if not torch.cuda.is_available():
    _NEURAL_PARAMS += [("device", "cuda", ValueError), ("device", "cuda:1", ValueError)]
else:
    _NEURAL_PARAMS += [("device", f"cuda:{torch.cuda.device_count()}", ValueError)]
for k, v, exc in _NEURAL_PARAMS:   # __init__ only stores (scikit-learn contract); fit validates
    err(f"neural-init-{k}={v!r}", lambda k=k, v=v: _cfd(**{k: v}).fit(X, Y), exc, k)


def _set_then_fit(k, v):
    m = _cfd()
    setattr(m, k, v)
    return m.fit(X, Y)


for k, v, exc in [("hidden", "88", ValueError), ("budget", 0, ValueError), ("seed", "3", TypeError),
                  ("ranking", "nope", ValueError), ("device", "meta", ValueError), ("psi", "same", TypeError),
                  ("phi", 3, TypeError), ("schedule", "x", ValueError), ("max_batch", -2, ValueError)]:
    err(f"neural-set-then-fit-{k}={v!r}", lambda k=k, v=v: _set_then_fit(k, v), exc, k)

ok("neural-np-params", lambda: _cfd(budget=np.int64(2), seed=np.int64(3), epochs=np.int32(5),
                                    lr=np.float32(0.01), hidden=[3, np.int64(3)]).fit(X, Y),
   lambda m: m.model_.hidden == (3, 3) and m.seed == 3)
ok("neural-float32", lambda: _cfd(dtype=torch.float32).fit(X, Y), lambda m: m.model_.dtype == torch.float32)
ok("neural-cpu-device-obj", lambda: _cfd(device=torch.device("cpu")).fit(X, Y), lambda m: m.device_.type == "cpu")
err("neural-diverging-lr", lambda: _cfd(lr=1e300, epochs=20).fit(X * 1e150, Y), ValueError, "lr")

# ---- NeuralCFD.fit inputs
_Xn = X.copy(); _Xn[0, 0] = np.nan
_Xi = X.copy(); _Xi[1, 1] = np.inf
for i, (Xb, exc, word) in enumerate([
    (_Xn, ValueError, "X_train"), (_Xi, ValueError, "X_train"), (X + 1j, TypeError, "X_train"),
    (sp.csr_matrix(X), TypeError, "X_train"), (sp.csc_matrix(X), TypeError, "X_train"),
    (torch.as_tensor(X).to_sparse(), TypeError, "X_train"), (X[:, 0], ValueError, "X_train"),
    (X[None], ValueError, "X_train"), (X[:0], ValueError, "X_train"), (X[:, :0], ValueError, "X_train"),
    (np.array([["a", "b", "c"]] * 24), TypeError, "X_train"), ([[1, 2, 3], [1, 2]] * 12, ValueError, "X_train"),
    (pd.DataFrame({"a": ["x"] * 24, "b": 1.0, "c": 2.0}), TypeError, "X_train"), ("X", TypeError, "X_train"),
    (None, ValueError, "X_train"),
]):
    err(f"neural-fit-X-{i}", lambda Xb=Xb: _cfd().fit(Xb, Y), exc, word)
for i, (yb, exc, word) in enumerate([
    (np.where(Y == 1, 2, 0), ValueError, "y_train"), (np.array(["a", "b"] * 12), ValueError, "y_train"),
    (np.where(Y == 1, np.nan, 0.0), ValueError, "y_train"), (np.full(24, 0.5), ValueError, "y_train"),
    (Y[:, None], ValueError, "y_train"), (Y[:-1], ValueError, "y_train"), (Y + 1j, TypeError, "y_train"),
    (sp.csr_matrix(Y), TypeError, "y_train"), (None, ValueError, "y_train"),
]):
    err(f"neural-fit-y-{i}", lambda yb=yb: _cfd().fit(X, yb), exc, word)
err("neural-fit-budget-gt-n", lambda: _cfd(budget=30).fit(X, Y), ValueError, "budget")
ok("neural-fit-bool-y", lambda: _cfd().fit(X, Y.astype(bool)), lambda m: m.y_train_.dtype == np.int64)
ok("neural-fit-dataframe", lambda: _cfd().fit(pd.DataFrame(X), pd.Series(Y)),
   lambda m: np.array_equal(m.X_train_, X))
ok("neural-fit-torch", lambda: _cfd().fit(torch.as_tensor(X), torch.as_tensor(Y)),
   lambda m: np.array_equal(m.X_train_, X))
ok("neural-fit-complex-zero-imag-refused-not-dropped", lambda: pytest.raises(TypeError, _cfd().fit, X + 0j, Y),
   lambda r: "complex" in str(r.value))

# ---- NeuralCFD.search / rank / retrain inputs
_XTn = XT.copy(); _XTn[0, 0] = np.inf
for i, (call, exc, word) in enumerate([
    (lambda m: m.search(XT[:, :2]), ValueError, "X_test"), (lambda m: m.search(_XTn), ValueError, "X_test"),
    (lambda m: m.search(XT + 1j), TypeError, "X_test"), (lambda m: m.search(sp.csr_matrix(XT)), TypeError, "X_test"),
    (lambda m: m.search(XT[0]), ValueError, "X_test"), (lambda m: m.search(XT, budget=0), ValueError, "budget"),
    (lambda m: m.search(XT, budget=1.5), TypeError, "budget"), (lambda m: m.search(XT, budget=100), ValueError, "budget"),
    (lambda m: m.search(XT, ranking="unknown"), ValueError, "ranking"),
    (lambda m: m.search(XT, ranking=5), TypeError, "ranking"),
    (lambda m: m.search(XT, sequential="yes"), TypeError, "sequential"),
    (lambda m: m.rank(XT, mask=np.ones((2, 2), bool)), ValueError, "mask"),
    (lambda m: m.rank(XT, mask=np.ones((4, 24))), ValueError, "mask"),
    (lambda m: m.retrain([100]), ValueError, "flip"), (lambda m: m.retrain([-1]), ValueError, "flip"),
    (lambda m: m.retrain([0.5]), TypeError, "flip"), (lambda m: m.retrain(np.ones(24, bool)), TypeError, "flip"),
    (lambda m: m.retrain([1, 1]), ValueError, "flip"), (lambda m: m.retrain("0"), TypeError, "flip"),
]):
    err(f"neural-after-fit-{i}", lambda call=call: call(fitted()), exc, word)
err("neural-not-fitted-search", lambda: _cfd().search(XT), ValueError, "fit")
err("neural-not-fitted-rank", lambda: _cfd().rank(XT), ValueError, "fit")
ok("neural-retrain-integral-floats", lambda: fitted().retrain([0.0, 3.0]).logit(XT),
   lambda lg: np.array_equal(lg, fitted().retrain([0, 3]).logit(XT)))
ok("neural-retrain-empty", lambda: fitted().retrain([]).logit(XT),
   lambda lg: np.allclose(lg, fitted().model_.logit(XT), atol=1e-12))
ok("neural-search-one-row", lambda: fitted().search(XT[:1], budget=1), lambda r: r.found.shape == (1,))

# ---- NeuralCFD(model=module): any torch classifier (issue 15 part 2)
def _mlp(out=1, d=3):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(d, 3), torch.nn.ReLU(), torch.nn.Linear(3, out)).double()


def _frozen():
    m = _mlp()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def _dropout_train():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5), torch.nn.Linear(3, 1)).double().train()


def _mcfd(model, **kw):
    return _cfd(**{"model": model, "hidden": (8, 8), "placebo_draws": None, **kw})


err("neural-module-output-3-logits", lambda: _mcfd(_mlp(out=3)).fit(X, Y), ValueError, "output.*shape")
err("neural-module-output-per-feature", lambda: _mcfd(torch.nn.Linear(3, 3).double()).fit(X, Y), ValueError, "shape")
err("neural-module-no-parameters", lambda: _mcfd(torch.nn.ReLU()).fit(X, Y), ValueError, "no parameters")
err("neural-module-all-frozen", lambda: _mcfd(_frozen()).fit(X, Y), ValueError, "trainable")
err("neural-module-not-a-module", lambda: _mcfd("mlp").fit(X, Y), TypeError, "model")
err("neural-module-wrong-input-width", lambda: _mcfd(_mlp(d=5)).fit(X, Y), ValueError, "model")
err("neural-module-with-hidden", lambda: _mcfd(_mlp(), hidden=(4, 4)).fit(X, Y), ValueError, "hidden")
err("neural-module-with-dtype", lambda: _mcfd(_mlp(), dtype=torch.float32).fit(X, Y), ValueError, "dtype")
err("neural-module-with-validation-fraction", lambda: _mcfd(_mlp(), validation_fraction=0.2).fit(X, Y), ValueError,
    "validation_fraction")
err("neural-module-dropout-train-mode", lambda: _mcfd(_dropout_train()).fit(X, Y), TypeError, "eval")
err("neural-module-bad-layer", lambda: _mcfd(_mlp(), layer="nope").fit(X, Y), ValueError, "layer")
err("neural-module-optimizer", lambda: _mcfd(_mlp(), optimizer="rmsprop").fit(X, Y), ValueError, "optimizer")
err("neural-module-batch-size-0", lambda: _mcfd(_mlp(), batch_size=0).fit(X, Y), ValueError, "batch_size")
err("neural-module-batch-size-float", lambda: _mcfd(_mlp(), batch_size=2.5).fit(X, Y), ValueError, "batch_size")
err("neural-builtin-with-batch-size", lambda: _cfd(batch_size=8).fit(X, Y), ValueError, "batch_size.*model=")
err("neural-builtin-with-optimizer", lambda: _cfd(optimizer="sgd").fit(X, Y), ValueError, "optimizer.*model=")
err("neural-builtin-with-layer", lambda: _cfd(layer="0").fit(X, Y), ValueError, "layer.*model=")
err("neural-module-not-converging", lambda: _mcfd(_mlp(), epochs=5, tol=1e-8).fit(X, Y), ValueError, "converge")
err("neural-module-three-class-labels", lambda: _mcfd(_mlp(out=3)).fit(X, np.arange(len(X)) % 3), ValueError,
    "y_train")
err("neural-module-float16-params", lambda: _mcfd(torch.nn.Linear(3, 1).to(torch.float16)).fit(X, Y), ValueError,
    "float")


def _nonconverged_members():
    from cfdkit.neural.module import check_module, module_config, train_module_ensemble
    spec = check_module(_mlp(), torch.as_tensor(X), "cpu")
    cfg, _ = module_config(5, 1e-2, 0.0, None, 1e-8, 0, torch.float64, len(X), None)
    return train_module_ensemble(spec, torch.as_tensor(X), torch.as_tensor(np.stack([Y, 1 - Y]), dtype=torch.float64),
                                 cfg)[1]


ok("neural-module-nonconverged-reported-per-member", _nonconverged_members,
   lambda info: info["converged"].tolist() == [False, False] and (info["grad_norm"] > 1e-8).all())
ok("neural-module-one-logit", lambda: _mcfd(_mlp(), epochs=5).fit(X, Y), lambda m: m.model_.predict(XT).shape == (4,))
ok("neural-module-two-logits", lambda: _mcfd(_mlp(out=2), epochs=5).fit(X, Y),
   lambda m: m.module_spec_.n_outputs == 2 and m.search(XT[:1], budget=1).found.shape == (1,))
ok("neural-module-batch-size-ge-n-is-full-batch", lambda: _mcfd(_mlp(), epochs=5, batch_size=100).fit(X, Y),
   lambda m: m.batch_size_ is None)

# ---- neural ground truth
for i, (kw, exc, word) in enumerate([
    ({"max_k": 0}, ValueError, "max_k"), ({"max_k": True}, ValueError, "max_k"), ({"max_k": 1.5}, ValueError, "max_k"),
    ({"candidates": [100]}, ValueError, "candidates"), ({"candidates": [0.5]}, TypeError, "candidates"),
    ({"candidates": []}, ValueError, "candidates"), ({"psi": "x"}, ValueError, "psi"),
    ({"max_subsets": 0}, ValueError, "max_subsets"), ({"max_k": 3, "max_subsets": 10}, ValueError, "max_subsets"),
    ({"max_batch": 0}, ValueError, "max_batch"),
]):
    err(f"gt-exhaustive-{i}", lambda kw=kw: exhaustive_cfd(fitted(), XT, **kw), exc, word)
err("gt-exhaustive-not-cfd", lambda: exhaustive_cfd("model", XT), TypeError, "cfd")
err("gt-exhaustive-X_test", lambda: exhaustive_cfd(fitted(), XT[:, :1]), ValueError, "X_test")
err("gt-recall-truth", lambda: ranking_recall(fitted(), XT, truth={"found": []}), TypeError, "truth")
ok("gt-exhaustive-small", lambda: exhaustive_cfd(fitted(), XT[:2], max_k=1, candidates=[0, 1, 2]),
   lambda g: g.n_subsets == 3 and g.found.shape == (2,))
ok("gt-recall-single-str", lambda: ranking_recall(fitted(), XT[:2], exhaustive_cfd(fitted(), XT[:2], max_k=1,
                                                                                    candidates=[0, 1]), "random"),
   lambda df: list(df["ranking"]) == ["random"])

# ---- widgets: pure helpers
RES = FakeFlipSets()
err("w-search-query-int", lambda: W.search_texts(["a"], 3), TypeError, "query")
err("w-search-limit-neg", lambda: W.search_texts(["a"], "a", limit=-1), ValueError, "limit")
ok("w-search-short-texts-digit", lambda: W.search_texts(["a b"], "5"), lambda r: r == [])
ok("w-search-none-texts", lambda: W.search_texts(None, "x"), lambda r: r == [])
ok("w-search-empty-query", lambda: W.search_texts(["a"], ""), lambda r: r == [])
err("w-summary-short-texts", lambda: W.point_summary(RES, 2, texts=["only one"]), ValueError, "texts")
err("w-summary-short-labels", lambda: W.point_summary(RES, 2, labels=[0]), ValueError, "labels")
err("w-summary-texts-int", lambda: W.point_summary(RES, 0, texts=5), ValueError, "texts")
for i, idx in enumerate([None, -1, 3, 1.5, "1", True]):
    err(f"w-summary-index-{i}", lambda idx=idx: W.point_summary(RES, idx), ValueError, "test point")
ok("w-summary-np-index", lambda: W.point_summary(RES, np.int64(0), texts=["a", "b", "c"]),
   lambda s: s["text"] == "a" and s["size"] == 2)
ok("w-summary-odd-label-names", lambda: W.point_summary(RES, 0, labels=[1, 0, 1], label_names=("only",)),
   lambda s: s["label_name"] == "1")
err("w-table-short-train-labels", lambda: W.flip_set_table(RES, 0, Y[:10]), ValueError, "train_labels")
err("w-table-short-train-texts", lambda: W.flip_set_table(RES, 0, Y, ["t"] * 5), ValueError, "train_texts")
err("w-table-max_rows-neg", lambda: W.flip_set_table(RES, 0, Y, max_rows=-1), ValueError, "max_rows")
ok("w-table-empty-set", lambda: W.flip_set_table(RES, 1, Y[:1]), lambda df: df.empty)
ok("w-table", lambda: W.flip_set_table(RES, 0, Y, [f"t{j}" for j in range(24)]),
   lambda df: list(df["train_index"]) == [5, 20] and list(df["text"]) == ["t5", "t20"])
for i, idx in enumerate([None, "abc", 2.5, True, -1, 7]):
    err(f"w-check_index-{i}", lambda idx=idx: W.check_index(idx, 7), ValueError, "test case")
ok("w-check_index-str", lambda: W.check_index("3", 7), lambda i: i == 3)
ok("w-check_index-float-whole", lambda: W.check_index(2.0, 7), lambda i: i == 2)
err("w-check_index-empty", lambda: W.check_index(0, 0), ValueError, "test case")
err("w-top_ranked-top0", lambda: W.top_ranked(np.arange(5.0), top=0), ValueError, "top")
err("w-top_ranked-mask-len", lambda: W.top_ranked(np.arange(5.0), np.ones(3, bool)), ValueError, "mask")
err("w-top_ranked-empty", lambda: W.top_ranked([]), ValueError, "scores")
ok("w-top_ranked", lambda: W.top_ranked(np.array([1.0, 3, 2]), top=2), lambda r: list(r[0]) == [1, 2])
err("w-ranking_table-idx", lambda: W.ranking_table([30], [1.0], Y), ValueError, "y_train")
err("w-ranking_table-names", lambda: W.ranking_table([0], [1.0], Y, label_names=("a",)), ValueError, "label_names")
err("w-ranking_table-scores", lambda: W.ranking_table([0, 1], [1.0], Y), ValueError, "scores")
err("w-ranking_table-rows", lambda: W.ranking_table([10], [1.0], Y, pd.DataFrame({"a": [1, 2]})),
    ValueError, "train_rows")
err("w-logit_summary-j", lambda: W.logit_summary(FakeResult(), 5), ValueError, "test row")
ok("w-logit_summary", lambda: W.logit_summary(FakeResult(), 0), lambda s: s["flipped_indices"] == [3] and s["found"])
err("w-flip_comparison-idx", lambda: W.flip_comparison(pd.Series({"a": 1}), pd.DataFrame({"a": [1, 2]}), [5], [0, 1]),
    ValueError, "training row")
ok("w-flip_comparison", lambda: W.flip_comparison(pd.Series({"a": 1}), pd.DataFrame({"a": [1, 2]}), [1], [0, 1]),
   lambda df: df.shape == (1, 2))
for i, txt in enumerate(["", "a, b", "2", "nan", "-0.1", "inf"]):
    err(f"w-parse_float_list-{i}", lambda txt=txt: W.parse_float_list(txt), ValueError, "")
ok("w-parse_float_list", lambda: W.parse_float_list("0, 0.1 0.2"), lambda v: v == [0.0, 0.1, 0.2])

# ---- widgets: verified minimal sets (issue 10)
err("w-minimal-point-index", lambda: W.minimal_point(FakeAudit(), XT, RES, 7), ValueError, "test point")
err("w-minimal-point-no-search", lambda: W.minimal_point(object(), XT, RES, 0), ValueError, "minimal-set search")
err("w-minimal-table-short-labels", lambda: W.minimal_set_table({"indices": np.array([5, 20])}, Y[:10]),
    ValueError, "train_labels")
err("w-minimal-table-short-texts", lambda: W.minimal_set_table({"indices": np.array([5, 20])}, Y, ["t"] * 5),
    ValueError, "train_texts")
ok("w-minimal-table-empty", lambda: W.minimal_set_table({"indices": np.array([], dtype=np.int64)}, Y),
   lambda df: df.empty and list(df.columns) == ["train_index", "label", "new_label"])

# ---- studies: l2 convention and the imbalanced case (issue 10)
from cfdkit import studies as _S  # noqa: E402

for i, conv in enumerate(["avg", "", None, 3, "SUM"]):
    err(f"study-l2-convention-{i}", lambda conv=conv: _S.resolve_l2(10.0, 100, conv), ValueError, "l2_convention")
for i, n in enumerate([0, -3, 2.5, True]):
    err(f"study-l2-n_train-{i}", lambda n=n: _S.resolve_l2(10.0, n), ValueError, "n_train")
ok("study-l2-per-sample", lambda: _S.resolve_l2(10.0, 100, "per_sample"), lambda v: v == 0.1)
err("study-table2-l2-convention", lambda: _S.table2(("synthetic",), l2_convention="C", progress=False),
    ValueError, "l2_convention")
err("study-minimal-l2-convention", lambda: _S.table2_minimal(("synthetic",), l2_convention="C", progress=False),
    ValueError, "l2_convention")
for k, v in [("dataset", "sst2"), ("positive_share", 0.0), ("positive_share", 0.5), ("positive_share", "3%"),
             ("n_train", 1), ("n_test", 0), ("n_test", 4.0), ("l2s", [0.0]), ("l2s", []), ("thresholds", [0.0])]:
    err(f"study-imbalanced-{k}-{v!r}", lambda k=k, v=v: _S.imbalanced_minimal(**{k: v}, progress=False), ValueError, k)

# ---- widgets: explorers
err("w-flip-explorer-short-texts", lambda: W.FlipExplorer(FakeAudit(), XT, texts=["one"]), ValueError, "texts")
err("w-flip-explorer-long-texts", lambda: W.FlipExplorer(FakeAudit(), XT, texts=["t"] * 9), ValueError, "texts")
err("w-flip-explorer-short-labels", lambda: W.FlipExplorer(FakeAudit(), XT, labels=[0]), ValueError, "labels")
err("w-flip-explorer-short-train-texts", lambda: W.FlipExplorer(FakeAudit(), XT, train_texts=["a"]),
    ValueError, "train_texts")
err("w-flip-explorer-index", lambda: W.FlipExplorer(FakeAudit(), XT, index=7), ValueError, "index")
err("w-flip-explorer-max_rows", lambda: W.FlipExplorer(FakeAudit(), XT, max_rows=-1), ValueError, "max_rows")


def _bad_selection():
    e = W.FlipExplorer(FakeAudit(), XT, texts=["a", "b", "c"], train_texts=[f"t{j}" for j in range(24)])
    e.show(99)
    e.run_verify(1)  # no set: a message, not a traceback
    return e


ok("w-flip-explorer-bad-selection-message", _bad_selection, lambda e: "does not exist" in e.message.value
   or "no flip set" in e.message.value)
for k, v in [("budget", 0), ("epochs", "300"), ("seed", -1), ("top", 0), ("index", -2), ("hidden", "88")]:
    err(f"w-neural-explorer-{k}", lambda k=k, v=v: W.NeuralCFDExplorer(("synthetic",), **{k: v}), ValueError, k)
err("w-neural-explorer-no-datasets", lambda: W.NeuralCFDExplorer(()), ValueError, "data set")
err("w-neural-explorer-cfd-no-data", lambda: W.NeuralCFDExplorer(cfd=fitted()), ValueError, "data")


def _neural_bad_index():
    e = W.NeuralCFDExplorer(cfd=fitted(), data=(X, Y, XT, (XT[:, 0] > 0).astype(int)), index=50)
    return e


ok("w-neural-explorer-bad-index-message", _neural_bad_index, lambda e: "does not exist" in e.message.value)


# ------------------------------------------------------------------ the test
@pytest.mark.parametrize("fn, expect", CASES)
def test_bad_input(fn, expect):
    kind, a, b = expect
    if kind == "ok":
        out = fn()
        assert a(out), f"wrong answer: {out!r}"
        return
    exc, word = a, b
    with pytest.raises((ValueError, TypeError)) as info:
        fn()
    assert isinstance(info.value, exc), f"{type(info.value).__name__} instead of {exc.__name__}: {info.value}"
    import re

    assert re.search(word, str(info.value), flags=re.I), f"message does not name {word!r}: {info.value}"


def test_case_counts(capsys):
    n_err = sum(1 for p in CASES if p.values[1][0] == "error")
    n_ok = sum(1 for p in CASES if p.values[1][0] == "ok")
    assert n_err + n_ok == len(CASES) >= 150
    with capsys.disabled():
        print(f"\nbad-input suite: tried {len(CASES)}, clear error {n_err}, correct answer {n_ok}")
