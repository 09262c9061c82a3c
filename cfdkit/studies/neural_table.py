"""Paper Tables 1-3 for cfdkit's neural CFD search (Kim, Mitchell, Wang, NLDL 2026).

``neural_cfd_table`` runs Algorithm 1 (:class:`cfdkit.neural.NeuralCFD`) per dataset × ranking
and reports: CFDs found out of the test cases (Table 1), ranking overhead per test input
(Table 2) and runtime including retraining per test input (Table 3), next to the paper's
numbers as read from the authors' slides (their §8).  The paper's
hyper-parameters (m, widths, epochs, split, test-case selection) are unknown, so the columns are
comparable in spirit only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["load_arrays", "neural_cfd_table", "subsample_train", "PAPER"]

from ..data.prepare import load_arrays
from .paper import NEURAL_PAPER as PAPER, NEURAL_PAPER_TOTAL as PAPER_TOTAL

_PAPER_COL = {"combined": 0, "random": 1, "l2_distance": 2}


def subsample_train(X, y, max_train: int | None, seed: int = 0):
    """Seeded, class-stratified subsample of at most ``max_train`` training rows (sorted indices).

    Returns ``(X_sub, y_sub, idx)``; the full set (``idx = arange(n)``) if ``max_train`` is None
    or ``>= n``.  Each class keeps ``round(max_train * share)`` rows (at least 1).
    """
    n = len(y)
    if max_train is None or max_train >= n:
        return X, y, np.arange(n)
    rng = np.random.default_rng(seed)
    parts = []
    for c in np.unique(y):
        ic = np.flatnonzero(y == c)
        parts.append(rng.choice(ic, size=max(1, int(round(max_train * len(ic) / n))), replace=False))
    idx = np.sort(np.concatenate(parts))
    return X[idx], y[idx], idx


def _rows_for(name, Xtr, ytr, Xte, n_test, budget, rankings, seed, hidden, epochs, progress, n_train_full=None,
              num_threads=None, placebo_draws=20):
    import time
    from cfdkit.neural import NeuralCFD
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(Xte))[: min(n_test, len(Xte))])
    Xq = Xte[idx]
    cfd = NeuralCFD(hidden=hidden, budget=min(budget, len(ytr)), seed=seed, epochs=epochs, progress=progress,
                    num_threads=num_threads, placebo_draws=placebo_draws,
                    stop_beta=None).fit(Xtr, ytr)   # the stop rule of its recorded numbers (Adam's first moment)
    plc = {}
    if placebo_draws:
        t0 = time.perf_counter()
        pf = cfd.placebo(Xq, sizes=tuple(sorted({1, cfd.budget})), n_draws=placebo_draws)
        plc = {f"placebo_{c}": float(pf[c].mean()) for c in pf.columns if c.startswith("flip_rate_")}
        plc["placebo_s_per_test"] = (time.perf_counter() - t0) / len(Xq)
        plc["placebo_not_converged"] = pf.attrs["n_not_converged"]
    rows = []
    for r in rankings:
        t0 = time.perf_counter()
        res = cfd.search(Xq, ranking=r)
        wall = time.perf_counter() - t0
        n = len(Xq)
        paper = PAPER.get(name)
        j = _PAPER_COL.get(r)
        rows.append({
            "dataset": name, "ranking": r, "n_train": len(ytr),
            "n_train_full": len(ytr) if n_train_full is None else n_train_full,
            "subsampled": n_train_full is not None and n_train_full > len(ytr),
            "test_cases": n, "budget": res.budget, "epochs": epochs, "hidden": "x".join(map(str, hidden)),
            "found": res.n_found, "found_rate": res.n_found / n,
            "mean_k": float(res.k[res.found].mean()) if res.n_found else np.nan,
            "rank_s_per_test": res.rank_seconds / n,
            "runtime_s_per_test": (res.rank_seconds + res.retrain_seconds) / n,
            "fit_seconds": cfd.fit_seconds_, "fit_steps": cfd.convergence_["steps"],
            "findings": res.n_findings,
            "mean_specificity": float(np.nanmean(res.specificity)) if res.n_found else np.nan,
            "specificity_s_per_test": res.placebo_seconds / n,
            "specificity_vs_search": res.placebo_seconds / max(res.rank_seconds + res.retrain_seconds, 1e-12),
            "retrain_not_converged": res.info["retrain_not_converged"], **plc,
            "networks_trained": res.info["n_trained"], "wall_s": wall,
            "paper_test_cases": paper[0] if paper else np.nan,
            "paper_found": paper[1][j] if paper and j is not None else np.nan,
            "paper_rank_s_per_test": paper[2][j] if paper and j is not None else np.nan,
            "paper_runtime_s_per_test": paper[3][j] if paper and j is not None else np.nan,
        })
    return rows


def neural_cfd_table(datasets=("salary", "student", "german"), n_test: int = 200, budget: int = 10,
                     rankings=("combined", "lr_surrogate", "activation_pattern", "random", "l2_distance"),
                     seed: int = 0, fast: bool = False, data_home=None, hidden=(8, 8), epochs: int | None = None,
                     progress: bool = False, max_train=None, skip=None, num_threads: int | None = None,
                     verbose: bool = False, placebo_draws: int | None = 20) -> pd.DataFrame:
    """Tables 1-3 of the paper, per dataset × ranking.

    Parameters
    ----------
    datasets : names for :func:`load_arrays`.
    n_test : at most this many test inputs per dataset (seeded sample; the paper used ≤ 200).
    budget : bias budget m (the paper's m is unknown; its example uses m = 10).
    rankings : names in ``cfdkit.neural.RANKINGS``; ``combined``/``random``/``l2_distance`` get
        the paper's "Our Method"/"Random Sampling"/"L2 Distance" numbers alongside.
    fast : small settings for smoke tests (``n_test <= 20``).
    epochs : largest number of Adam steps (default: NeuralCFD's, 3000 with the stable recipe,
        which stops on the averaged gradient norm).
    placebo_draws : random label sets per CFD size for the specificity, and draws for the
        placebo columns ``placebo_flip_rate_random_k1/k<m>`` and ``placebo_flip_rate_seed``
        (mean over the test rows); ``findings`` counts CFDs with specificity >= 0.9 (they beat
        their placebo).  None: no placebo.
    max_train : None, int, or dict name → int.  Training sets larger than this are replaced by a
        seeded, class-stratified subsample (:func:`subsample_train`); the rows say so
        (``n_train``, ``n_train_full``, ``subsampled``).  Test inputs are not affected.
    skip : optional dict name → iterable of rankings not to run on that dataset (e.g. the
        exact-Hessian ``influence`` ranking on large sets).
    num_threads : torch intra-op threads during fit/search (None: torch's setting).
    verbose : print one line per (dataset, ranking) as it finishes.

    Returns
    -------
    DataFrame, one row per (dataset, ranking): ``found``, ``rank_s_per_test`` (Table 2),
    ``runtime_s_per_test`` (Table 3, ranking + batched retraining, amortised over the test
    inputs) and the ``paper_*`` columns.
    """
    if fast:
        n_test = min(n_test, 20)
    epochs = epochs or 3000
    rows = []
    for name in datasets:
        Xtr, ytr, Xte, _ = load_arrays(name, data_home, seed)
        cap = max_train.get(name) if isinstance(max_train, dict) else max_train
        n_full = len(ytr)
        Xtr, ytr, _ = subsample_train(Xtr, ytr, cap, seed)
        rk = [r for r in rankings if r not in set((skip or {}).get(name, ()))]
        new = _rows_for(name, Xtr, ytr, Xte, n_test, budget, rk, seed, tuple(hidden), epochs, progress,
                        n_train_full=n_full, num_threads=num_threads, placebo_draws=placebo_draws)
        if verbose:
            for r in new:
                print(f"{r['dataset']:8s} {r['ranking']:20s} n_train={r['n_train']:6d}/{r['n_train_full']:6d} "
                      f"found {r['found']:4d}/{r['test_cases']} findings {r['findings']:4d} nets {r['networks_trained']:5d} "
                      f"rank {r['rank_s_per_test']:.4f} s/test  wall {r['wall_s']:7.1f} s", flush=True)
        rows += new
    return pd.DataFrame(rows)


ALL_RANKINGS = ("combined", "lr_surrogate", "activation_pattern", "activation_gradient", "l2_distance",
                "random", "influence")
FAIRNESS = ("salary", "student", "german", "compas", "default", "bank", "adult")


def table_markdown(df: pd.DataFrame) -> str:
    """Markdown: Table 1 (found per ranking, paper side by side, totals) and Tables 2-3
    (ranking overhead / runtime per test input for combined, random, l2_distance vs the paper)."""
    rk = [r for r in ALL_RANKINGS if r in set(df.ranking)] + sorted(set(df.ranking) - set(ALL_RANKINGS))
    ds = [d for d in FAIRNESS if d in set(df.dataset)] + sorted(set(df.dataset) - set(FAIRNESS))
    piv = df.pivot_table(index="dataset", columns="ranking", values="found", aggfunc="first")
    meta = df.groupby("dataset").first()
    head = ["dataset", "n_train used / full", "tests"] + rk + ["paper tests", "paper ours", "paper random", "paper L2"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    tot = {r: 0 for r in rk}; tot_missing = {r: False for r in rk}; ntest = 0
    for d in ds:
        m = meta.loc[d]; p = PAPER.get(d)
        cells = [d, f"{m.n_train} / {m.n_train_full}" + (" (sub)" if m.subsampled else ""), str(m.test_cases)]
        for r in rk:
            v = piv.loc[d].get(r, np.nan)
            if pd.isna(v):
                cells.append("–"); tot_missing[r] = True
            else:
                cells.append(str(int(v))); tot[r] += int(v)
        ntest += int(m.test_cases)
        cells += [str(p[0]), str(p[1][0]), str(p[1][1]), str(p[1][2])] if p else ["–"] * 4
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["**total**", "", str(ntest)] + [f"**{tot[r]}**" + ("*" if tot_missing[r] else "") for r in rk]
    cells += [str(PAPER_TOTAL["test_cases"]), str(PAPER_TOTAL["combined"]), str(PAPER_TOTAL["random"]),
              str(PAPER_TOTAL["l2_distance"])]
    lines.append("| " + " | ".join(cells) + " |")
    out = ["### Table 1: CFDs found (test inputs with a flip within budget m)", ""] + lines
    if any(tot_missing.values()):
        out += ["", "\\* total over the datasets where the ranking was run."]
    if "findings" in df.columns:
        out += ["", "### Table 1 restricted to CFDs that beat their placebo (specificity >= 0.9), and placebo flip rates",
                "", "Cell: findings / found (mean specificity).  Placebo columns: mean over the test rows of the share "
                "of random label sets of size 1 / m from the candidate pool, and of other seeds, that flip the "
                "prediction.", ""]
        pc = [c for c in df.columns if c.startswith("placebo_flip_rate_")]
        head = ["dataset"] + rk + [c.replace("placebo_flip_rate_", "placebo ") for c in pc] + \
            ["paper ours / random / L2 (of tests)"]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        ftot = {r: [0, 0] for r in rk}
        for d in ds:
            cells = [d]
            for r in rk:
                row = df[(df.dataset == d) & (df.ranking == r)]
                if not len(row):
                    cells.append("–"); continue
                row = row.iloc[0]; ftot[r][0] += int(row.findings); ftot[r][1] += int(row.found)
                ms = "" if pd.isna(row.mean_specificity) else f" ({row.mean_specificity:.2f})"
                cells.append(f"{int(row.findings)} / {int(row.found)}{ms}")
            first = df[df.dataset == d].iloc[0]
            cells += [f"{first[c]:.3f}" if c in first and not pd.isna(first[c]) else "–" for c in pc]
            p = PAPER.get(d)
            cells.append(f"{p[1][0]} / {p[1][1]} / {p[1][2]} ({p[0]})" if p else "–")
            out.append("| " + " | ".join(cells) + " |")
        out.append("| **total** | " + " | ".join(f"**{ftot[r][0]}** / {ftot[r][1]}" for r in rk) + " |" + " |" * len(pc)
                   + f" {PAPER_TOTAL['combined']} / {PAPER_TOTAL['random']} / {PAPER_TOTAL['l2_distance']} "
                   f"({PAPER_TOTAL['test_cases']}) |")
    out += ["", "### Tables 2-3: seconds per test input, ours (paper)", "",
            "Rank = ranking overhead; runtime = ranking + batched retraining (early-stop rounds), amortised "
            "over the test inputs.", ""]
    cols = [r for r in rk if r != "random" and r != "l2_distance" and r != "combined"]
    head = ["dataset"] + [f"{r} rank / runtime" for r in ("combined", "random", "l2_distance")] + \
           [f"{r} rank / runtime" for r in cols]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in ds:
        cells = [d]
        for r in ("combined", "random", "l2_distance") + tuple(cols):
            row = df[(df.dataset == d) & (df.ranking == r)]
            if not len(row):
                cells.append("–"); continue
            row = row.iloc[0]
            s = f"{row.rank_s_per_test:.4f} / {row.runtime_s_per_test:.2f}"
            j = _PAPER_COL.get(r)
            if d in PAPER and j is not None:
                s += f" ({PAPER[d][2][j]:.2f} / {PAPER[d][3][j]:.2f})"
            cells.append(s)
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def ordering_sentence(df: pd.DataFrame) -> str:
    """A plain sentence: does the paper's ordering (its method ahead of L2 distance and random) hold among the
    CFDs that beat their placebo (``findings``)?  Totals over the data sets where all three rankings ran, plus
    the number of data sets where ``combined`` is strictly ahead of both."""
    need = ("combined", "l2_distance", "random")
    if "findings" not in df.columns or not set(need) <= set(df.ranking):
        return "The paper's ordering cannot be checked: the run lacks combined, l2_distance or random findings."
    ds = [d for d in df.dataset.unique() if set(need) <= set(df[df.dataset == d].ranking)]
    sub = df[df.dataset.isin(ds)]
    tot = sub.groupby("ranking")["findings"].sum()
    fnd = sub.groupby("ranking")["found"].sum()
    piv = sub.pivot_table(index="dataset", columns="ranking", values="findings", aggfunc="first")
    ahead = int(((piv["combined"] > piv["l2_distance"]) & (piv["combined"] > piv["random"])).sum())
    holds = tot["combined"] > tot["l2_distance"] and tot["combined"] > tot["random"]
    best = tot.drop(labels=[r for r in tot.index if r not in set(ALL_RANKINGS)], errors="ignore").idxmax()
    verdict = "holds" if holds else "does not hold"
    s = (f"Counting only CFDs that beat their placebo, the paper's ordering (its method ahead of L2 distance and "
         f"random) **{verdict}** under stable training: combined {int(tot['combined'])}, l2_distance "
         f"{int(tot['l2_distance'])}, random {int(tot['random'])} (of {int(fnd['combined'])}, "
         f"{int(fnd['l2_distance'])}, {int(fnd['random'])} found) over {len(ds)} data sets; combined is strictly "
         f"ahead of both on {ahead} of {len(ds)} data sets.")
    ratio = tot["combined"] / max(tot["l2_distance"], 1)
    pr = PAPER_TOTAL["combined"] / PAPER_TOTAL["l2_distance"]
    if holds and ratio < 1.2:
        s += (f" The margin is small: combined / l2_distance = {ratio:.2f} here against {pr:.1f} in the paper "
              f"({PAPER_TOTAL['combined']} / {PAPER_TOTAL['l2_distance']}), so the paper's clear lead is not reproduced.")
    elif holds:
        s += f" combined / l2_distance = {ratio:.2f} here, {pr:.1f} in the paper."
    if best != "combined":
        s += f" The most findings come from `{best}` ({int(tot[best])})."
    return s


def reproduction_section(df: pd.DataFrame, meta: dict | None = None) -> str:
    """The REPRODUCTION.md section for a neural-table run (records of :func:`neural_cfd_table` with placebo
    columns): command and settings, Table 1 with the paper's numbers, the table restricted to CFDs that beat
    their placebo with the placebo flip rates, Tables 2-3, and the ordering sentence (:func:`ordering_sentence`).
    ``meta``: optional ``{"command", "seconds" {name: s}, "started", "finished", "host"}`` of the run."""
    meta = meta or {}
    secs = meta.get("seconds", {})
    tot_min = sum(secs.values()) / 60 if secs else float("nan")
    first = df.iloc[0]
    sub = [f"{r.dataset} {int(r.n_train)} / {int(r.n_train_full)}" for r in df.drop_duplicates("dataset").itertuples()]
    lines = ["## Neural networks — CFDs found, ranking overhead, runtime (Kim, Mitchell & Wang, NLDL 2026, Tables 1–3)",
             "",
             f"Command: `{meta.get('command', 'python benchmarks/run_neural_table.py OUT')}` (the settings of "
             "`cfdkit reproduce --only neural-table`, one data set at a time, records written after each; "
             f"{tot_min:.1f} min on 2 CPU cores shared with other jobs, {meta.get('started', '?')} – "
             f"{meta.get('finished', '?')}; per data set: "
             + ", ".join(f"{k} {v / 60:.1f} min" for k, v in secs.items()) + "). "
             "Rendered by `cfdkit.studies.neural_table.reproduction_section`.",
             "",
             f"Settings (cfdkit's choices; the paper's m, widths, epochs, splits and test-case selection are not "
             f"public): budget m = {int(first.budget)}, ({first.hidden.replace('x', ', ')}) ReLU network, the "
             "**stable recipe** (NeuralCFD defaults: weight decay `auto` = clip(3e-2, 2.4/n, 24/n), full-batch Adam "
             "with lr 1e-2 decaying along a cosine to 1e-4, stop once the averaged gradient norm is <= 3e-3, at most "
             f"{int(first.epochs)} steps), seed 0, ψ = training points with the predicted label, up to "
             f"{int(df.test_cases.max())} seeded test inputs per data set, 20 placebo draws per CFD size. Training "
             "rows used / available: " + "; ".join(sub) + " (larger sets subsampled, seeded and stratified). "
             "Paper columns (\"Our Method\", \"Random Sampling\", \"L2 Distance\") are read from the authors' "
             "slides (their §8) and compared with `combined`, `random`, `l2_distance`. "
             "A CFD *beats its placebo* when its specificity (one minus the share of 20 random label sets of the "
             "same size from the same candidate pool that also flip the prediction) is >= 0.9; placebo columns: "
             "mean over the test rows of the share of random size-1 / size-m label sets, and of 20 other seeds, "
             "that flip the prediction.",
             ""]
    missing = [d for d in FAIRNESS if d not in set(df.dataset)]
    if missing and set(df.dataset) <= set(FAIRNESS):
        lines += [f"**Partial run: {len(FAIRNESS) - len(missing)} of {len(FAIRNESS)} data sets** (missing: "
                  + ", ".join(missing) + "); the totals below cover only the sets shown.", ""]
    nc = int(df.retrain_not_converged.sum()) if "retrain_not_converged" in df.columns else 0
    pnc = int(df.drop_duplicates("dataset").placebo_not_converged.sum()) if "placebo_not_converged" in df.columns else 0
    body = table_markdown(df).replace("### ", "#### ")
    lines += [body, "",
              f"Convergence: {nc} search retrains and {pnc} placebo networks did not meet the stop rule "
              "(reported, not dropped; a CFD from a non-converged retrain is labelled \"not converged\").", "",
              "**Does the paper's ordering hold?** " + ordering_sentence(df), ""]
    return "\n".join(lines) + "\n"
