"""Result containers: flip sets and their verification.

Both hold plain numpy arrays with documented shapes, and turn into pandas
DataFrames a notebook can show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.validation import check_row_index


#: The words every per-row table uses (``to_frame()`` of the results, the ``sets.csv`` of ``cfdkit audit``):
#: columns about the row itself, about Algorithm 1's estimated set, and about the verified minimal set.
#: (K classes: the predicted class and its probability; the aimed, new and refit classes.)
ROW_COLUMNS = ("test_index", "prob", "predicted_label", "predicted_class", "prob_predicted")
ESTIMATED_COLUMNS = ("estimated_size", "estimated_found", "estimated_linear_prob", "estimated_indices",
                     "estimated_flipped", "estimated_converged", "estimated_decided_by", "estimated_refit_prob",
                     "estimated_refit_prob_low", "estimated_refit_prob_high", "estimated_linear_delta",
                     "estimated_refit_delta", "estimated_rel_error", "estimated_grad_norm", "estimated_prefix_size",
                     "estimated_prefix_refit_prob", "estimated_prefix_exact", "estimated_aimed_class",
                     "estimated_new_classes", "estimated_refit_class")
MINIMAL_COLUMNS = ("minimal_size", "minimal_status", "lower_bound", "minimal_new_prob", "minimal_decided_by",
                   "one_minimal", "proven_minimal", "minimal_indices", "lower_bound_reason", "minimal_new_class",
                   "minimal_new_classes")


class RaggedSets:
    """One set of training points per test row, stored flat — the layout every set result shares (flip sets,
    minimal sets; two classes or K).

    ``indices(i) == flat_indices[offsets[i]:offsets[i+1]]``; ``new_labels(i)`` (aligned) is each point's new label
    code when the set relabels: ``1 - y`` with two classes (the K = 2 case), any other class code with more.
    ``size`` (n_test,) counts each row's points.
    """

    def __len__(self) -> int:
        return int(self.size.shape[0])

    def _check(self, i) -> int:
        return check_row_index(i, len(self))

    def indices(self, i) -> np.ndarray:
        """Training indices of test row ``i``'s set (int64, in the set's order; empty where none)."""
        i = self._check(i)
        return self.flat_indices[self.offsets[i]:self.offsets[i + 1]].copy()

    def new_labels(self, i) -> np.ndarray:
        """The new label code of each point of ``indices(i)`` (int64, aligned): ``1 - y`` for two classes."""
        i = self._check(i)
        if self.flat_new_labels is None:
            raise ValueError("these sets carry no new labels (removal sets, or sets built by hand without "
                             "new_labels); use indices(i).")
        return self.flat_new_labels[self.offsets[i]:self.offsets[i + 1]].copy()


class MinimalResult(RaggedSets):
    """What every minimal-set result (two classes or K) answers from its fields ``status``, ``size``,
    ``lower_bound``, ``estimated_size``, ``one_minimal``, ``refits`` and ``seconds``."""

    @property
    def found(self) -> np.ndarray:
        """bool (n_test,): a verified set was found."""
        return self.status == "verified"

    @property
    def proven_minimal(self) -> np.ndarray:
        """bool (n_test,): the verified set is as small as any flipping set can be (``lower_bound == size``)."""
        return self.found & (self.lower_bound == self.size)

    def summary(self) -> dict:
        """found_rate, median sizes (estimated among Algorithm 1's found rows; verified among found rows), ..."""
        f = self.found
        est = self.estimated_size[self.estimated_size > 0]
        return {
            "n_test": len(self),
            "minimal_found_rate": float(f.mean()) if len(self) else float("nan"),
            "median_estimated_size": float(np.median(est)) if est.size else float("nan"),
            "median_verified_size": float(np.median(self.size[f])) if f.any() else float("nan"),
            "median_lower_bound": float(np.median(self.lower_bound)) if len(self) else float("nan"),
            "one_minimal_rate": float(self.one_minimal[f].mean()) if f.any() else float("nan"),
            "proven_minimal_rate": float(self.proven_minimal[f].mean()) if f.any() else float("nan"),
            "refits": int(self.refits),
            "seconds": float(self.seconds),
        }


@dataclass
class FlipSets(RaggedSets):
    """Flip sets ``S_t`` for a block of test points.

    Attributes
    ----------
    kind : {"relabel", "remove"}
        What is done to the training points of a set.
    method : str
        How the sets were found ("ip_relabel", "removal_alg1", "removal_alg2").
    threshold : float
        Decision threshold ``tau``: the prediction is ``prob > tau``.
    prob : np.ndarray[float64] (n_test,)
        ``P(y=1)`` before any change.
    size : np.ndarray[int64] (n_test,)
        ``|S_t|``; 0 where no set exists.
    predicted_prob : np.ndarray[float64] (n_test,)
        ``prob`` plus the summed estimated effects of the set (NaN where no set).
    offsets : np.ndarray[int64] (n_test + 1,)
        ``indices(i) == flat_indices[offsets[i]:offsets[i+1]]``.
    flat_indices : np.ndarray[int64] (size.sum(),)
    flat_effects : np.ndarray[float64] (size.sum(),)
        Estimated change of ``P(y=1)`` contributed by each set member.
    seconds : float
        Wall time spent finding the sets (scores and selection).
    diagnostics : object
        Inverse-Hessian solver diagnostics of the run.
    X_test : numpy.ndarray (n_test, n_features) float64 or scipy.sparse CSR
        The test features the sets were found for (plain host data);
        :meth:`RelabelAudit.verify` refits against them.
    fingerprint : str or None
        ``RelabelAudit.fit_fingerprint_`` of the fit that produced the sets
        (a hash of training data, labels, parameters and coefficients);
        :meth:`RelabelAudit.verify` refuses sets from another fit.
    n_train : int or None
        Number of training rows of the audit (``None`` for sets built by hand);
        :func:`~cfdkit.linear.group_report` checks training-row group labels against it.
    flat_new_labels : np.ndarray[int64] (size.sum(),) or None
        Relabel sets: each point's new label, ``1 - y`` (``new_labels(i)``); None for removal sets.
    """

    kind: str
    method: str
    threshold: float
    prob: np.ndarray
    size: np.ndarray
    predicted_prob: np.ndarray
    offsets: np.ndarray
    flat_indices: np.ndarray
    flat_effects: np.ndarray
    seconds: float = 0.0
    diagnostics: object = None
    X_test: object = field(default=None, repr=False)
    fingerprint: str | None = None
    n_train: int | None = None
    flat_new_labels: np.ndarray | None = None

    @classmethod
    def from_lists(cls, *, kind, method, threshold, prob, sets, deltas, seconds=0.0, diagnostics=None, X_test=None,
                   fingerprint=None, n_train=None, new_labels=None):
        size = np.array([len(s) for s in sets], dtype=np.int64)
        offsets = np.zeros(len(sets) + 1, dtype=np.int64)
        np.cumsum(size, out=offsets[1:])
        flat_i = np.concatenate(sets).astype(np.int64) if len(sets) else np.empty(0, np.int64)
        flat_e = np.concatenate(deltas).astype(np.float64) if len(deltas) else np.empty(0)
        prob = np.asarray(prob, dtype=np.float64)
        sums = np.zeros(len(sets))
        nz = size > 0
        if nz.any():
            sums[nz] = np.add.reduceat(flat_e, offsets[:-1][nz])
        pred = np.where(nz, prob + sums, np.nan)
        flat_l = None
        if new_labels is not None:
            flat_l = np.concatenate(new_labels).astype(np.int64) if len(new_labels) else np.empty(0, np.int64)
        return cls(kind, method, float(threshold), prob, size, pred, offsets, flat_i, flat_e, float(seconds), diagnostics,
                   X_test, fingerprint, None if n_train is None else int(n_train), flat_l)

    @property
    def found(self) -> np.ndarray:
        """bool (n_test,): a set exists."""
        return self.size > 0

    @property
    def predicted_label(self) -> np.ndarray:
        """int64 (n_test,): the prediction before any change, ``prob > threshold``."""
        return (self.prob > self.threshold).astype(np.int64)

    def effects(self, i) -> np.ndarray:
        """Estimated change of ``P(y=1)`` from each member of ``S_t`` (float64), greedy order."""
        i = self._check(i)
        return self.flat_effects[self.offsets[i]:self.offsets[i + 1]].copy()

    def path(self, i) -> np.ndarray:
        """Estimated probability after relabeling the first k members, k = 0..|S_t| (float64)."""
        i = self._check(i)
        return self.prob[i] + np.concatenate([[0.0], np.cumsum(self.effects(i))])

    def to_frame(self) -> pd.DataFrame:
        """One row per test point: ``test_index``, ``prob``, ``predicted_label``, then the estimated set's columns
        (:data:`ESTIMATED_COLUMNS`): ``estimated_size``, ``estimated_found``, ``estimated_linear_prob`` (the
        linear estimate of ``P(y=1)`` after the set) and ``estimated_indices``."""
        return pd.DataFrame({
            "test_index": np.arange(len(self)),
            "prob": self.prob,
            "predicted_label": self.predicted_label,
            "estimated_size": self.size,
            "estimated_found": self.found,
            "estimated_linear_prob": self.predicted_prob,
            "estimated_indices": [self.indices(i).tolist() for i in range(len(self))],
        })

    def summary(self) -> dict:
        s = self.size[self.size > 0]
        return {
            "n_test": len(self),
            "found_rate": float(self.found.mean()) if len(self) else float("nan"),
            "mean_size": float(s.mean()) if s.size else float("nan"),
            "median_size": float(np.median(s)) if s.size else float("nan"),
        }


def verification_rates(ver) -> dict:
    """The rates every verification reports (binary and K-class): the found sets' summary plus
    ``n_not_converged``, ``n_verified``, ``flip_rate``, ``success_ratio`` over the rows whose refit converged,
    and ``pearson_delta`` / ``median_rel_error`` of the estimated vs actual change where two or more exist."""
    found, known = ver.sets.found, ver.flip_known
    fl = np.nan_to_num(np.asarray(ver.flipped, dtype=float)) > 0
    out = dict(ver.sets.summary())
    out["n_not_converged"] = int((~known).sum())
    cert = getattr(ver, "certified", None)
    out["n_certified"] = int(np.asarray(cert, dtype=bool).sum()) if cert is not None else 0
    out["n_verified"] = int((found & known).sum())
    out["flip_rate"] = float(fl[known].mean()) if known.any() else float("nan")
    out["success_ratio"] = float(fl[found & known].mean()) if (found & known).any() else float("nan")
    ok = found & known & np.isfinite(ver.actual_delta)
    if ok.sum() >= 2:
        out["pearson_delta"] = float(np.corrcoef(ver.predicted_delta[ok], ver.actual_delta[ok])[0, 1])
        out["median_rel_error"] = float(np.median(ver.rel_error[ok]))
    return out


class VerificationResult:
    """What every verification (two classes or K) answers from its fields ``sets``, ``flipped``, ``converged``
    (and ``certified`` where sign certificates decided rows; ``verified_size`` with ``minimize=True``)."""

    @property
    def flip_known(self) -> np.ndarray:
        """bool (n_test,): rows with an answer (no set, a converged refit, or a sign certificate)."""
        known = np.asarray(self.converged, dtype=bool)
        cert = getattr(self, "certified", None)
        return known if cert is None else known | np.asarray(cert, dtype=bool)

    @property
    def decided_by(self) -> np.ndarray:
        """str (n_test,): how each row's answer was reached — ``"certified"`` (a sign certificate proved the
        side of the threshold before the refit converged), ``"converged"`` (a refit to ``tol``), ``"no_set"``
        (nothing to refit) or ``"undecided"`` (neither: no answer)."""
        out = np.where(np.asarray(self.converged, dtype=bool), "converged", "undecided").astype(object)
        cert = getattr(self, "certified", None)
        if cert is not None:
            out[np.asarray(cert, dtype=bool)] = "certified"
        out[np.asarray(self.sets.size) == 0] = "no_set"
        return out.astype(str)

    def summary(self) -> dict:
        """Rates over the rows with an answer.

        ``flip_rate`` is the share of flipped test points and
        ``success_ratio`` the share of flipped among the found sets, both over
        the rows whose refit converged (non-converged rows are neither flipped
        nor not flipped); ``n_not_converged`` counts those rows and
        ``n_verified`` the found sets with a converged refit.
        """
        out = verification_rates(self)
        if getattr(self, "verified_size", None) is not None:
            v = self.verified_size[self.verified_size > 0]
            kn = self.verified_size >= 0
            out["verified_found_rate"] = float((self.verified_size[kn] > 0).mean()) if kn.any() else float("nan")
            out["mean_verified_size"] = float(v.mean()) if v.size else float("nan")
            out["n_minimize_not_converged"] = int((~kn).sum())
        out["seconds"] = self.seconds
        return out


@dataclass
class Verification(VerificationResult):
    """What happened when each found set was applied and the model retrained.

    A refit that did not reach the gradient tolerance is not an answer: its
    row has ``converged=False`` and ``flipped`` unknown (NaN), and it is
    counted neither as flipped nor as not flipped.

    Attributes
    ----------
    flipped : np.ndarray (n_test,)
        The retrained model's prediction differs from the original; False
        where no set.  ``bool`` when every refit converged; otherwise
        ``float64`` with 1.0 / 0.0 and NaN where the refit did not converge
        (use :attr:`flip_known` to select the rows with an answer).
    new_prob : np.ndarray[float64] (n_test,)
        ``P(y=1)`` after retraining; NaN where ``size == 0``.  Where the refit
        did not converge it is the last iterate's value (not an answer).
    predicted_delta, actual_delta : np.ndarray[float64] (n_test,)
        Estimated (influence) and actual (refit) change of ``P(y=1)``; NaN where no set.
    rel_error : np.ndarray[float64] (n_test,)
        ``|predicted_delta - actual_delta| / |actual_delta|``.
    grad_norm : np.ndarray[float64] (n_test,)
        Final gradient norm of each refit (NaN where no set).
    converged : np.ndarray[bool] (n_test,)
        The refit reached the gradient tolerance; True where no set (nothing to refit).
    certified : np.ndarray[bool] (n_test,) or None
        The answer was proven by a sign certificate (:mod:`cfdkit.linear.certify`) before the refit
        converged; ``new_prob`` is then a probability inside ``[new_prob_low, new_prob_high]``, the proven
        range of the refit's ``P(y=1)`` (equal to ``new_prob`` where the refit converged).
    new_prob_low, new_prob_high : np.ndarray[float64] (n_test,) or None
    verified_size : np.ndarray[int64] (n_test,) or None
        With ``minimize=True``: a flipping prefix ``k`` of the greedy order,
        the smallest one where ``verified_size_exact`` (every shorter prefix
        was refit); 0 where none, -1 where a refit of the search did not
        converge (unknown).
    verified_new_prob : np.ndarray[float64] (n_test,) or None
    verified_size_exact : np.ndarray[bool] (n_test,) or None
        ``verified_size`` is the smallest flipping prefix (no monotonicity assumed).
    seconds : float
    fingerprint : str or None
        The fit fingerprint of the audit that verified (same as ``sets.fingerprint``).
    """

    sets: FlipSets
    flipped: np.ndarray
    new_prob: np.ndarray
    predicted_delta: np.ndarray
    actual_delta: np.ndarray
    rel_error: np.ndarray
    grad_norm: np.ndarray
    converged: np.ndarray
    verified_size: np.ndarray | None = None
    verified_new_prob: np.ndarray | None = None
    seconds: float = 0.0
    refits: int = 0
    fingerprint: str | None = None
    verified_size_exact: np.ndarray | None = None
    certified: np.ndarray | None = None
    new_prob_low: np.ndarray | None = None
    new_prob_high: np.ndarray | None = None

    def to_frame(self) -> pd.DataFrame:
        """One row per test point: :meth:`FlipSets.to_frame` plus the estimated set's refit.

        ``estimated_flipped`` is a nullable boolean column (``pd.NA`` where there is no answer),
        ``estimated_converged`` says which refits reached the tolerance, ``estimated_decided_by`` how each answer
        was reached and ``estimated_refit_prob`` is ``new_prob`` (with its proven range
        ``estimated_refit_prob_low``/``_high``): the names the ``sets.csv`` of ``cfdkit audit`` uses.  The
        estimate's accuracy: ``estimated_linear_delta`` (``predicted_delta``), ``estimated_refit_delta``
        (``actual_delta``), ``estimated_rel_error``, ``estimated_grad_norm``; with ``minimize=True``
        ``estimated_prefix_size``, ``estimated_prefix_refit_prob``, ``estimated_prefix_exact`` (``verified_size``,
        ``verified_new_prob``, ``verified_size_exact``).
        """
        df = self.sets.to_frame()
        known = self.flip_known
        flipped = pd.array(np.where(known, np.nan_to_num(np.asarray(self.flipped, dtype=float)) > 0, False),
                           dtype="boolean")
        flipped[~known] = pd.NA
        df["estimated_flipped"] = flipped
        df["estimated_converged"] = np.asarray(self.converged, dtype=bool)
        df["estimated_decided_by"] = self.decided_by
        df["estimated_refit_prob"] = self.new_prob
        if self.new_prob_low is not None:
            df["estimated_refit_prob_low"] = self.new_prob_low
            df["estimated_refit_prob_high"] = self.new_prob_high
        df["estimated_linear_delta"] = self.predicted_delta
        df["estimated_refit_delta"] = self.actual_delta
        df["estimated_rel_error"] = self.rel_error
        df["estimated_grad_norm"] = self.grad_norm
        if self.verified_size is not None:  # minimize=True: the shortest flipping prefix of the estimated order
            df["estimated_prefix_size"] = self.verified_size
            df["estimated_prefix_refit_prob"] = self.verified_new_prob
            if self.verified_size_exact is not None:
                df["estimated_prefix_exact"] = self.verified_size_exact
        return df
