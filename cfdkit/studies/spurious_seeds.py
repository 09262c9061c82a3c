"""Error bars for the spurious-bias studies: the same study over several seeds, mean ± 95 % interval.

Every seeded record carries ``cfdkit`` (the mean over seeds), ``ci_low``/``ci_high`` (a Student-t 95 % interval
of the mean over seeds), ``n_seeds`` and ``values`` (one per seed).  A difference between two methods is called a
*win* only where their intervals do not overlap (:func:`separated`).

* :func:`cf_alignment_seeded_records` — :func:`cfdkit.studies.cf_alignment.cf_alignment_records` per seed.
* :func:`neurontune_seeded_records` — NeuronTune and its controls on binary coloured digits (DigitCNN from
  scratch and with a trunk pretrained on grey digits, the feature-extractor regime of the paper) per seed.
"""
from __future__ import annotations

import math
import time

import numpy as np

__all__ = ["mean_ci", "separated", "aggregate", "cf_alignment_seeded_records", "neurontune_seeded_records",
           "cf_alignment_augmented_records",
           "fmt_ci", "verdict", "seeded_table_markdown", "alignment_vs_outcome", "merge_seeded",
           "N_SEEDS"]

#: Seeds per study (the error-bar standard: at least five).
N_SEEDS = 5


def mean_ci(values, level: float = 0.95):
    """``(mean, low, high)``: Student-t interval of the mean of ``values`` (NaN-free; NaN bounds for n < 2)."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return (float("nan"),) * 3
    m = float(v.mean())
    if len(v) < 2:
        return (m, float("nan"), float("nan"))
    h = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return (m, m - h, m + h)


def separated(a: dict, b: dict) -> bool:
    """True when the 95 % intervals of records ``a`` and ``b`` do not overlap (a difference one can call)."""
    return bool(a["ci_low"] > b["ci_high"] or b["ci_low"] > a["ci_high"])


def _clip_to_range(metric, values, lo, hi):
    """Clip an interval to the metric's range: [0, 1] for accuracies, AUCs and shares, >= 0 for counts."""
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v or not np.isfinite(lo):
        return lo, hi
    if metric.startswith(("wga", "mean_acc", "auc", "acc", "minority")) or metric.endswith("share"):
        if min(v) >= 0 and max(v) <= 1:
            return max(lo, 0.0), min(hi, 1.0)
    if metric.startswith("n_") and min(v) >= 0:
        return max(lo, 0.0), hi
    return lo, hi


def aggregate(runs: list[list[dict]]) -> list[dict]:
    """Merge per-seed record lists (same keys in each) into mean ± interval records.

    Intervals of accuracies, AUCs and shares are clipped to [0, 1], those of counts (``n_*``) at 0.
    """
    by = {}
    order = []
    for recs in runs:
        for r in recs:
            key = (r["study"], r["dataset"], r["features"], r["metric"])
            if key not in by:
                by[key] = {**r, "values": []}
                order.append(key)
            by[key]["values"].append(r["cfdkit"])
    out = []
    for key in order:
        r = by[key]
        m, lo, hi = mean_ci(r["values"])
        lo, hi = _clip_to_range(key[3], r["values"], lo, hi)
        out.append({**r, "cfdkit": m, "ci_low": lo, "ci_high": hi, "n_seeds": len(r["values"]),
                    "values": [None if v is None or not np.isfinite(v) else float(v) for v in r["values"]]})
    return out


def cf_alignment_seeded_records(fast: bool, seed: int = 0, progress: bool = False, n_seeds: int = N_SEEDS,
                                on_seed=None) -> list:
    """:func:`~cfdkit.studies.cf_alignment.cf_alignment_records` at seeds ``seed .. seed + n_seeds - 1``, aggregated.

    ``on_seed(records_so_far)``, if given, is called with the aggregate after every seed (to save partial runs).
    """
    from .cf_alignment import cf_alignment_records

    from tqdm.auto import tqdm

    runs = []
    for s in tqdm(range(seed, seed + n_seeds), desc="cf-alignment seeds", disable=not progress):
        runs.append(cf_alignment_records(fast, seed=s))
        if on_seed is not None:
            on_seed(aggregate(runs))
    return aggregate(runs)


def neurontune_seeded_records(fast: bool, seed: int = 0, progress: bool = False, n_seeds: int = N_SEEDS,
                              rhos=(0.95, 0.99), pretrained=(False, True), augmented: bool = False,
                              on_seed=None) -> list:
    """NeuronTune beside its controls on binary coloured digits, one model per seed, aggregated over seeds.

    ``pretrained=True``: the DigitCNN trunk is first trained on the grey training digits (10 classes), then the
    whole model on the coloured ones, then NeuronTune retrains the head: the paper's setting of a pretrained
    feature extractor with a linear head.  ``augmented``: the augmented 16x16 digits
    (:func:`~cfdkit.spurious.data.augmented_colored_digits`, >= 100 minority images per group at ρ = 0.99)
    instead of the 8x8 ones (dataset ``augmented-digits``).  Metric names as in
    :func:`cfdkit.studies.neurontune.neurontune_records` (``<metric>`` with ``rule=...`` in ``features``).
    ``on_seed(records_so_far)``, if given, is called after every seed (to save partial runs).
    """
    import torch
    from tqdm.auto import tqdm

    from ..spurious.data import augmented_colored_digits, colored_digits
    from .neurontune import PAPER_CONTEXT, PAPER_WGA, digits_model, neurontune_study

    ctx = PAPER_WGA[PAPER_CONTEXT["colored-digits"]]
    paper = {"wga_erm": ctx[0] / 100, "wga_neurontune": ctx[1] / 100, "wga_neurontune_dagger": ctx[2] / 100}
    seeds = list(range(seed, seed + n_seeds))
    jobs = [(rho, pre) for rho in rhos for pre in pretrained]
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    recs = []
    try:
        for rho, pre in tqdm(jobs, desc="neurontune seeds", disable=not progress):
            runs = []
            t0 = time.perf_counter()
            for s in seeds:
                d = augmented_colored_digits(rho, seed=s, **({"copies": 2, "eval_copies": 1} if fast else {})) \
                    if augmented else colored_digits("binary", rho=rho, seed=s)
                out = neurontune_study(digits_model(d, pre, seed=s), d, seed=s, head_epochs=20 if fast else 50)
                feats = f"DigitCNN {'grey-pretrained' if pre else 'scratch'}, rho={rho}"
                rr = []
                for k, v in out.items():
                    metric, _, rule = k.partition("@")
                    rr.append({"study": "neurontune", "dataset": "augmented-digits" if augmented else "colored-digits",
                               "features": feats + (f", rule={rule}" if rule else ""), "metric": metric,
                               "paper": paper.get(metric), "cfdkit": float(v)})
                runs.append(rr)
                if on_seed is not None:
                    on_seed(recs + aggregate(runs))
            agg = aggregate(runs)
            for r in agg:
                r["seconds"] = time.perf_counter() - t0
            recs += agg
    finally:
        torch.set_num_threads(old)
    return recs


def fmt_ci(r: dict | None) -> str:
    """``"0.213 [0.180, 0.246]"`` for a seeded record (``–`` when missing)."""
    if r is None or r.get("cfdkit") is None or not np.isfinite(r["cfdkit"]):
        return "–"
    lo, hi = r.get("ci_low"), r.get("ci_high")
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{r['cfdkit']:.3g}"
    return f"{r['cfdkit']:.3f} [{lo:.3f}, {hi:.3f}]"


def verdict(a: dict | None, b: dict | None) -> str:
    """``"win"`` / ``"loss"`` when ``a``'s interval lies above / below ``b``'s, else ``"no separable difference"``."""
    if not a or not b or any(x.get(k) is None for x in (a, b) for k in ("ci_low", "ci_high")):
        return "–"
    if a["ci_low"] > b["ci_high"]:
        return "win"
    if a["ci_high"] < b["ci_low"]:
        return "loss"
    return "no separable difference"


def seeded_table_markdown(records: list[dict], metrics, compare=None) -> str:
    """A markdown table: one row per ``(dataset, features)``, one column per metric (mean [95 % interval]).

    ``compare``: optional list of ``(label, metric_a, metric_b)``; each adds a column with :func:`verdict`.
    """
    compare = list(compare or [])
    rows = {}
    for r in records:
        rows.setdefault((r["dataset"], r["features"]), {})[r["metric"]] = r
    head = ["dataset", "setting", "seeds"] + [f"`{m}`" for m in metrics] + [c[0] for c in compare]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (ds, feats), rr in rows.items():
        if not any(m in rr for m in metrics):
            continue
        n = max((r.get("n_seeds", 1) for r in rr.values()), default=1)
        cells = [ds, feats, str(n)] + [fmt_ci(rr.get(m)) for m in metrics]
        cells += [verdict(rr.get(a), rr.get(b)) for _, a, b in compare]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cf_alignment_augmented_records(fast: bool, seed: int = 0, progress: bool = False, n_seeds: int = N_SEEDS,
                                   rho: float = 0.99, on_seed=None) -> list:
    """CF alignment on the augmented coloured digits (16x16, >= 100 minority images per group at ρ = 0.99).

    Per seed: :func:`~cfdkit.studies.cf_alignment.digit_setup` on
    :func:`~cfdkit.spurious.data.augmented_colored_digits`, the unbiased / biased / composed alignment
    (``rc_unbiased``, ``rc_biased``, ``rc_composed``) and ERM, GroupDRO, JTT, FLAC (``rc_<m>``, ``auc_<m>``,
    ``wga_<m>``); aggregated over seeds.  ``fast``: 2 copies per digit (no minority guarantee), for tests.
    ``on_seed(records_so_far)``, if given, is called with the aggregate after every seed (to save partial runs).
    """
    from tqdm.auto import tqdm

    from .cf_alignment import PAPER, digit_setup, induced_correlation, robust_comparison
    from ..spurious.data import augmented_colored_digits

    runs = []
    for s in tqdm(range(seed, seed + n_seeds), desc="cf-alignment augmented", disable=not progress):
        d = augmented_colored_digits(rho, seed=s, **({"copies": 2, "eval_copies": 1} if fast else {}))
        setup = digit_setup(seed=s, fast=fast, data=d)
        ds = f"augmented-digits-rho{rho}"
        rr = []
        ind = induced_correlation(setup)
        for k in ("unbiased", "biased", "composed"):
            rr.append({"study": "alignment", "dataset": ds, "features": "augmented digits 3x16x16, MLP AE latent 16",
                       "metric": f"rc_{k}", "paper": PAPER.get(f"rc_{k}"), "cfdkit": float(ind.loc[k, "rc"])})
        comp = robust_comparison(setup, seed=s)
        for m in comp.index:
            for met in ("rc", "auc", "wga"):
                rr.append({"study": "alignment", "dataset": ds, "features": "augmented digits 3x16x16, MLP AE latent 16",
                           "metric": f"{met}_{m}", "paper": PAPER.get(f"{met}_{m}"), "cfdkit": float(comp.loc[m, met])})
        rr.append({"study": "alignment", "dataset": ds, "features": "augmented digits 3x16x16, MLP AE latent 16",
                   "metric": "minority_train_images", "paper": None,
                   "cfdkit": float(min(d.info["minority_counts"].values()))})
        runs.append(rr)
        if on_seed is not None:
            on_seed(aggregate(runs))
    return aggregate(runs)


def alignment_vs_outcome(records: list[dict], dataset: str, methods=("erm", "groupdro", "jtt", "flac"),
                         outcome: str = "wga") -> dict:
    """Is lower alignment with the colour classifier tied to a better ``outcome`` (``"wga"`` or ``"auc"``)?

    From seeded records (``values`` per seed): per seed, the Spearman correlation over the methods between
    ``rc_<m>`` and ``<outcome>_<m>`` (−1: the less aligned, the better, in exact order); then its mean with a
    Student-t 95 % interval over seeds (clipped to [−1, 1]), and the pooled Spearman over all (method, seed) pairs.
    The tie is read as "lower alignment goes with a better outcome" only where the interval lies below 0.

    Returns
    -------
    dict with ``per_seed`` (list), ``mean``, ``ci_low``, ``ci_high``, ``pooled``, ``n_seeds``, ``n_pairs``.
    """
    from scipy import stats

    by = {r["metric"]: r for r in records if r["dataset"] == dataset}
    missing = [f"{k}_{m}" for m in methods for k in ("rc", outcome) if f"{k}_{m}" not in by]
    if missing:
        raise ValueError(f"records of {dataset!r} lack {missing}; pass seeded CF-alignment records.")
    rc = np.array([by[f"rc_{m}"]["values"] for m in methods], dtype=np.float64)
    out = np.array([by[f"{outcome}_{m}"]["values"] for m in methods], dtype=np.float64)
    per = []
    for s in range(rc.shape[1]):
        a, b = rc[:, s], out[:, s]
        ok = np.isfinite(a) & np.isfinite(b)
        per.append(float(stats.spearmanr(a[ok], b[ok])[0]) if ok.sum() >= 3 and np.ptp(b[ok]) > 0 else float("nan"))
    m, lo, hi = mean_ci(per)
    lo, hi = (max(lo, -1.0), min(hi, 1.0)) if np.isfinite(lo) else (lo, hi)     # a correlation lies in [-1, 1]
    ok = np.isfinite(rc.ravel()) & np.isfinite(out.ravel())
    pooled = float(stats.spearmanr(rc.ravel()[ok], out.ravel()[ok])[0])
    return {"per_seed": per, "mean": m, "ci_low": lo, "ci_high": hi, "pooled": pooled,
            "n_seeds": int(rc.shape[1]), "n_pairs": int(ok.sum())}


def merge_seeded(*record_lists: list[dict]) -> list[dict]:
    """Merge seeded record lists computed for disjoint seeds (e.g. two processes, seeds 0-2 and 3-4) into one.

    Each list holds :func:`aggregate` records with ``values`` (one per seed); the merged records hold the
    concatenated values, in the order given, and mean / interval recomputed exactly as :func:`aggregate` does
    (same keys in every list, else ``ValueError``).  Other fields are taken from the first list.
    """
    keyed = []
    for recs in record_lists:
        keyed.append({(r["study"], r["dataset"], r["features"], r["metric"]): r for r in recs})
    keys = list(keyed[0])
    if any(set(k) != set(keys) for k in keyed[1:]):
        raise ValueError("the record lists hold different metrics; merge runs of the same study only.")
    n = [len(next(iter(k.values()))["values"]) for k in keyed]
    runs = []
    for k, m in zip(keyed, n):
        for j in range(m):
            runs.append([{**{f: v for f, v in k[key].items() if f not in ("values", "ci_low", "ci_high", "n_seeds")},
                          "cfdkit": float("nan") if k[key]["values"][j] is None else k[key]["values"][j]}
                         for key in keys])
    return aggregate(runs)
