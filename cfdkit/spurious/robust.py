"""Robust training to compare with CF alignment (Cohen et al., TMLR, §4.4, Tables 1–3).

One small MLP classifier (flattened inputs -> hidden ReLU layers -> one logit), trained by

* ``"erm"`` -- plain empirical risk minimisation (mini-batch Adam, binary cross-entropy);
* ``"groupdro"`` -- Sagawa et al. (ICLR 2020), Alg. 1: per mini-batch, the group losses ℓ_g update
  exponentiated weights ``q_g ← q_g · exp(η ℓ_g)`` (normalised) and the model minimises ``Σ_g q_g ℓ_g``;
  groups must be given (e.g. ``g = 2y + a``);
* ``"jtt"`` -- Just Train Twice (Liu et al., ICML 2021): train ERM for ``jtt_epochs``, collect the
  misclassified training points E, retrain from the same initial weights on the data with E
  upsampled ``jtt_upweight`` times;
* ``"flac"`` -- a FLAC-style representation penalty (Sarridis et al. 2023; not their code): with a
  bias-capturing classifier's scores ``b`` (e.g. the colour classifier's P(green)) and the model's
  L2-normalised penultimate features ``h``, similarities ``s^h_ij = (1 + cos(h_i, h_j)) / 2`` and
  ``s^b_ij = 1 − |b_i − b_j|``, the loss adds
  ``α · [ mean_{y_i = y_j} (1 − s^b_ij)(1 − s^h_ij) + mean_{y_i ≠ y_j} s^b_ij s^h_ij ]``:
  same-class samples with different bias attribute are pulled together, different-class samples
  with the same bias attribute pushed apart.  α is on our loss scale (FLAC's 30000 is on theirs).

:class:`RobustClassifier` follows scikit-learn conventions; :meth:`RobustClassifier.torch_proba`
returns the differentiable ``x -> P(y = 1 | x)`` that Latent Shift needs.

Metrics: :func:`group_metrics` (AUC, worst-group accuracy, per-group accuracy).
"""
from __future__ import annotations

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

from ..core.arrays import resolve_device
from ..core.validation import check_batch, check_number
from .nets import MLP

__all__ = ["RobustClassifier", "METHODS", "group_metrics"]

METHODS = ("erm", "groupdro", "jtt", "flac")


class _Proba(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        p = next(self.net.parameters())
        return torch.sigmoid(self.net(x.to(p.device, p.dtype)))


def _check_Xy(X, y=None, name="X"):
    A = check_batch(X, name)
    if y is None:
        return A
    yy = np.asarray(y)
    if yy.shape != (len(A),):
        raise ValueError(f"y must have shape ({len(A)},); got {yy.shape}.")
    if not np.isin(yy, (0, 1)).all():
        raise ValueError("y must be binary 0/1.")
    return A, yy.astype(np.float64)


class RobustClassifier(BaseEstimator, ClassifierMixin):
    """Binary MLP classifier trained with ERM, GroupDRO, JTT or a FLAC-style penalty.

    Parameters
    ----------
    method : {'erm', 'groupdro', 'jtt', 'flac'}
    hidden : tuple of int
    epochs, batch_size, lr, weight_decay :
        Mini-batch Adam (batches reshuffled each epoch from the seed).
    eta : float
        GroupDRO step size for the group weights q.
    jtt_epochs : int
        JTT's first (identification) run length; ``jtt_upweight`` the upsampling of its errors.
    alpha : float
        FLAC-style penalty weight.
    seed : int
    device : torch device or None (CUDA if available)

    Attributes
    ----------
    net_ : MLP
    classes_ : ndarray [0, 1]
    n_features_in_ : int
    input_shape_ : tuple
    group_weights_ : ndarray (GroupDRO only), the final q
    error_set_ : ndarray of int (JTT only), the upsampled training indices
    """

    def __init__(self, method: str = "erm", hidden=(64, 32), epochs: int = 60, batch_size: int = 64,
                 lr: float = 1e-3, weight_decay: float = 0.0, eta: float = 0.01, jtt_epochs: int = 10,
                 jtt_upweight: int = 20, alpha: float = 1.0, seed: int = 0, device=None):
        self.method = method
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.eta = eta
        self.jtt_epochs = jtt_epochs
        self.jtt_upweight = jtt_upweight
        self.alpha = alpha
        self.seed = seed
        self.device = device

    # ------------------------------------------------------------------------------------------
    def fit(self, X, y, groups=None, bias=None) -> "RobustClassifier":
        """Train.

        Parameters
        ----------
        X : array (n, ...)
        y : array (n,) of 0/1
        groups : array (n,) of ints, required for ``method='groupdro'``
        bias : array (n,) in [0, 1], required for ``method='flac'`` (bias-capturing classifier's scores)

        Returns
        -------
        self
        """
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} is unknown; use one of {METHODS}.")
        for name, hi, ex in (("epochs", 100_000, 60), ("batch_size", None, 64), ("jtt_epochs", 100_000, 10),
                             ("jtt_upweight", 10_000, 20)):
            check_number(getattr(self, name), name, low=1, high=hi, integer=True, fix=f"Pass e.g. {name}={ex}.")
        check_number(self.lr, "lr", low=0, high=1, low_inclusive=False, fix="Pass e.g. lr=1e-3 (Adam's step size).")
        check_number(self.weight_decay, "weight_decay", low=0, high=1e3, fix="Pass e.g. weight_decay=0.0.")
        check_number(self.eta, "eta", low=0, high=1e3, fix="Pass e.g. eta=0.01 (GroupDRO's step on q).")
        check_number(self.alpha, "alpha", low=0, high=1e6, fix="Pass e.g. alpha=1.0 (FLAC penalty weight).")
        check_number(self.seed, "seed", low=0, high=2 ** 63 - 2, integer=True, fix="Pass e.g. seed=0.")
        A, yy = _check_Xy(X, y)
        n = len(A)
        if self.method == "groupdro":
            if groups is None:
                raise ValueError("method='groupdro' needs groups=<int array (n,)>, e.g. 2*y + attribute.")
            groups = np.asarray(groups)
            if groups.shape != (n,):
                raise ValueError(f"groups must have shape ({n},); got {groups.shape}.")
        if self.method == "flac":
            if bias is None:
                raise ValueError("method='flac' needs bias=<scores (n,) in [0, 1]> from a bias-capturing classifier.")
            bias = np.asarray(bias, dtype=np.float64)
            if bias.shape != (n,) or np.any(bias < 0) or np.any(bias > 1):
                raise ValueError(f"bias must have shape ({n},) with values in [0, 1].")
        dev = resolve_device(self.device)
        self.device_ = dev
        self.input_shape_ = tuple(A.shape[1:])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        self.classes_ = np.array([0, 1])
        Xt = torch.as_tensor(A.reshape(n, -1), dtype=torch.float32, device=dev)
        yt = torch.as_tensor(yy, dtype=torch.float32, device=dev)
        # seeded; the global RNG (the MLP constructors draw from it) is restored afterwards
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seed))
            init = MLP(self.n_features_in_, tuple(self.hidden), n_classes=1).to(dev).state_dict()
            init = {k: v.clone() for k, v in init.items()}
            if self.method == "jtt":
                first = self._train(init, Xt, yt, np.arange(n), int(self.jtt_epochs))
                with torch.no_grad():
                    wrong = ((first(Xt) > 0).float() != yt).cpu().numpy()
                self.error_set_ = np.flatnonzero(wrong)
                index = np.concatenate([np.arange(n)] + [self.error_set_] * (int(self.jtt_upweight) - 1))
                self.net_ = self._train(init, Xt, yt, index, int(self.epochs))
            else:
                g = None if groups is None else torch.as_tensor(np.unique(groups, return_inverse=True)[1], device=dev)
                b = None if bias is None else torch.as_tensor(bias, dtype=torch.float32, device=dev)
                self.net_ = self._train(init, Xt, yt, np.arange(n), int(self.epochs), groups=g, bias=b)
        self.net_.eval()
        return self

    def _train(self, init, Xt, yt, index, epochs, groups=None, bias=None):
        dev = Xt.device
        net = MLP(self.n_features_in_, tuple(self.hidden), n_classes=1).to(dev)
        net.load_state_dict(init)
        opt = torch.optim.Adam(net.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay))
        gen = torch.Generator().manual_seed(int(self.seed) + 1)
        index = torch.as_tensor(index, dtype=torch.long)
        q = None
        if self.method == "groupdro" and groups is not None:
            n_g = int(groups.max()) + 1
            q = torch.full((n_g,), 1.0 / n_g, device=dev)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        bs = int(self.batch_size)
        for _ in range(epochs):
            perm = index[torch.randperm(len(index), generator=gen)].to(dev)
            for s in range(0, len(perm), bs):
                ib = perm[s:s + bs]
                xb, yb = Xt[ib], yt[ib]
                if self.method == "flac" and bias is not None:
                    h = net.embed(xb)
                    logit = net.head(h)[:, 0]
                    loss = bce(logit, yb) + float(self.alpha) * _flac_penalty(h, yb, bias[ib])
                elif q is not None:
                    li = bce(net(xb), yb, reduction="none")
                    gb = groups[ib]
                    n_g = len(q)
                    cnt = torch.bincount(gb, minlength=n_g).float()
                    lg = torch.zeros(n_g, device=dev).index_add(0, gb, li) / cnt.clamp(min=1)
                    with torch.no_grad():
                        q = q * torch.exp(float(self.eta) * lg.detach() * (cnt > 0))
                        q = q / q.sum()
                    loss = (q * lg).sum()
                else:
                    loss = bce(net(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
        if q is not None:
            self.group_weights_ = q.cpu().numpy()
        return net

    def _check_fitted(self):
        if not hasattr(self, "net_"):
            raise NotFittedError("This RobustClassifier is not fitted yet; call fit(X, y) first.")

    def decision_function(self, X) -> np.ndarray:
        """Logits, float64 (n,)."""
        self._check_fitted()
        A = _check_Xy(X)
        if tuple(A.shape[1:]) != self.input_shape_:
            raise ValueError(f"X has per-input shape {A.shape[1:]}; fitted on {self.input_shape_}.")
        with torch.no_grad():
            out = self.net_(torch.as_tensor(A.reshape(len(A), -1), dtype=torch.float32, device=self.device_))
        return out.double().cpu().numpy()

    def predict_proba(self, X) -> np.ndarray:
        """(n, 2) class probabilities."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.c_[1 - p, p]

    def predict(self, X) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(np.int64)

    def torch_proba(self) -> torch.nn.Module:
        """Differentiable ``x -> P(y = 1 | x)`` (n,), for :func:`cfdkit.spurious.latent_shift.latent_shift`."""
        self._check_fitted()
        return _Proba(self.net_).eval()


def _flac_penalty(h, y, b):
    h = torch.nn.functional.normalize(h, dim=1)
    sh = (1.0 + h @ h.T) / 2.0
    sb = 1.0 - (b[:, None] - b[None, :]).abs()
    same = (y[:, None] == y[None, :]).float()
    eye = torch.eye(len(y), device=h.device)
    pos = same - eye
    neg = 1.0 - same
    lp = ((1 - sb) * (1 - sh) * pos).sum() / pos.sum().clamp(min=1)
    ln = (sb * sh * neg).sum() / neg.sum().clamp(min=1)
    return lp + ln


def group_metrics(proba, y, groups, auc_mask=None) -> dict:
    """AUC, mean and worst-group accuracy.

    Parameters
    ----------
    proba : array (n,), P(y = 1)
    y : array (n,) of 0/1
    groups : array (n,) of ints
    auc_mask : bool array (n,) or None
        Rows used for the AUC (the paper evaluates on bias-conflicting samples); None: all.

    Returns
    -------
    dict with ``auc``, ``acc``, ``wga`` and ``group_acc`` ({group: accuracy}).
    """
    from sklearn.metrics import roc_auc_score

    proba, y, groups = np.asarray(proba, float), np.asarray(y), np.asarray(groups)
    if not (len(proba) == len(y) == len(groups)) or len(y) == 0:
        raise ValueError("proba, y and groups must be non-empty with the same length.")
    m = np.ones(len(y), bool) if auc_mask is None else np.asarray(auc_mask, bool)
    if len(np.unique(y[m])) < 2:
        raise ValueError("the AUC rows contain a single class; widen auc_mask.")
    pred = (proba > 0.5).astype(int)
    ga = {int(g): float(np.mean(pred[groups == g] == y[groups == g])) for g in np.unique(groups)}
    return {"auc": float(roc_auc_score(y[m], proba[m])), "acc": float(np.mean(pred == y)),
            "wga": float(min(ga.values())), "group_acc": ga}
