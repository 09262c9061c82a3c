"""Write the notebooks from the cell sources below, then (optionally) execute them in place.

    python notebooks/build.py            # write only
    python notebooks/build.py --execute  # write and run (stores outputs and widget state)
    python notebooks/build.py --prose    # only update the markdown of already executed notebooks
                                         # (their code cells must be unchanged; outputs are kept)

Markdown cells start with "md:"; everything else is code.  Run from the repo root with
PYTHONPATH=.:.shim and CFDKIT_DATA_HOME set.  Which size produced the stored outputs is
controlled by CFDKIT_FAST (see each notebook's parameters cell).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent
NB = {}

PARAMS = '''# Parameters: CFDKIT_FAST=1 (CI) runs a reduced size; unset runs the full study.
import os
FAST = os.environ.get("CFDKIT_FAST", "0") == "1"
'''

SETUP = '''import numpy as np, pandas as pd, matplotlib.pyplot as plt
from cfdkit import RelabelAudit
from cfdkit.datasets import load, flip_labels
import cfdkit_widgets as cw
pd.set_option("display.precision", 4)
'''

NB["00_quickstart"] = [
"""md:# Quickstart: your first flip set in five minutes

**Question.** A model predicts a label for a test point $x_t$. Which *few training labels*, had they been
different, would have changed that prediction? The smallest such set $\\mathcal{S}_t$ is a *counterfactual
dataset*: evidence to contest a prediction, and its size $|\\mathcal{S}_t|$ is a measure of how robust the prediction is.

**Method** (Yang, Xu & Yu 2024). Fit an L2-regularised logistic regression $\\hat w$. Relabeling training point
$i$ changes the parameters by $\\Delta_i w = -H^{-1}\\nabla_w \\ell_i$ (with $\\ell_i$ the loss under the new label
minus the loss under the old one, $H$ the Hessian of the training objective), so the predicted probability of $x_t$ moves by

$$\\Delta_t f = \\nabla_w f_{\\hat w}(x_t)^\\top \\Delta_i w \\qquad \\text{(IP-relabel, Eq. 4)}.$$

Algorithm 1 sorts the training points by $\\Delta_t f$ in the direction that pushes the prediction across the
threshold $\\tau$, and adds them one by one until $f(x_t) + \\sum_{i\\in S}\\Delta_t f_i$ crosses $\\tau$: that prefix
is $\\mathcal{S}_t$. One Hessian factorisation serves every test point. We then **verify** by actually retraining
with $\\mathcal{S}_t$ relabeled.

This notebook uses synthetic two-Gaussian data with 10% of the training labels flipped; it runs in seconds,
so fast (CI) and full mode are the same size.""",
PARAMS + '''N_TRAIN, N_TEST, NOISE, SEED = 2000, 200, 0.1, 0   # small enough to be the full study in CI too
''',
SETUP,
"md:## Data and model",
'''# NBVAL_CHECK_OUTPUT
ds = load("synthetic", n_train=N_TRAIN, n_test=N_TEST, noise=NOISE, seed=SEED)
audit = RelabelAudit(l2=1.0, threshold=0.5).fit(ds.X_train, ds.y_train)
acc = ((audit.predict_proba(ds.X_test) > 0.5) == ds.y_test).mean()
print(ds)
print(f"test accuracy {acc:.3f}")
''',
"md:## Flip sets for every test point (Algorithm 1)",
'''# NBVAL_CHECK_OUTPUT
fs = audit.flip_sets(ds.X_test)
s = fs.summary()
print(f"S_t found for {s['found_rate']:.1%} of {s['n_test']} test points; "
      f"median |S_t| = {s['median_size']:.0f} ({s['median_size'] / N_TRAIN:.1%} of the training set), "
      f"mean {s['mean_size']:.1f}")
''',
'''fs.to_frame().head()''',
"md:## Verify: retrain with each set relabeled",
'''# NBVAL_CHECK_OUTPUT
ver = audit.verify(fs)
v = ver.summary()
print(f"retrained {int(fs.found.sum())} models: the prediction flipped for {v['success_ratio']:.1%} of the found sets; "
      f"corr(estimated, actual change) = {v['pearson_delta']:.3f}")
''',
'''fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
ax[0].hist(fs.size[fs.found], bins=30)
ax[0].set_xlabel("|S_t|"); ax[0].set_ylabel("test points"); ax[0].set_title("size of the flip sets")
i = int(np.argmin(np.where(fs.found, fs.size, 10**9)))
cw.path_figure(fs, i, ax=ax[1], title=f"smallest set: test point {i}")
plt.tight_layout(); plt.show()
''',
"""md:**What it means.** With 10% label noise, a flip set exists for nearly every test point, and retraining
confirms the estimate: relabeling $\\mathcal{S}_t$ really flips the prediction. Points near the decision boundary
need only a handful of labels changed; the confident ones need hundreds. The set size, not the probability
alone, tells how contestable a prediction is.

## Explore
Move the slider to pick a test point, read its $\\mathcal{S}_t$ (the features of each training point, its label
and the label it would get), watch the estimated probability cross $\\tau$, and press **Verify** to retrain.""",
'''train_desc = cw.describe_rows(ds.X_train, ds.feature_names, max_items=3)
explorer = cw.FlipExplorer(audit, ds.X_test, labels=ds.y_test, train_texts=train_desc, result=fs)
explorer
''',
]

NB["01_hate_speech"] = [
"""md:# Case study: contesting a hate-speech ban (§2.2, Table 1)

**Question.** A moderation model flags a post as hate speech and the author is banned. Can the author point at
a few training labels that, if corrected, would reverse the decision? Following the paper we train a bag-of-words
logistic regression on the Stormfront corpus (de Gibert et al. 2018; 9,632 train / 1,071 test) after deliberately
mislabeling 1,000 training posts, and look at misclassified test posts.

**Method.** For each test post $x_t$, IP-relabel estimates the change of $P(\\text{hate}\\mid x_t)$ from flipping
training label $i$: $\\Delta_t f = \\nabla_w f_{\\hat w}(x_t)^\\top \\Delta_i w$ with $\\Delta_i w = -H^{-1}\\nabla_w\\ell_i$
(Eq. 4). Algorithm 1 takes the training posts in order of their push across $\\tau=0.5$ until the cumulative estimate
crosses it; that prefix is $\\mathcal{S}_t$. We then retrain with $\\mathcal{S}_t$ relabeled to check.

*Content warning: the texts are hateful and offensive.* Data: CC BY-SA 3.0 Spain.""",
PARAMS + '''N_NOISE, MAX_FEATURES = 1000, 2000
N_VERIFY = 20 if FAST else 100     # retraining is the slow part (about 0.5 s per refit here)
''',
SETUP + "from cfdkit.features import bag_of_words\n",
'''# NBVAL_CHECK_OUTPUT
ds = load("hate-speech")
y_noisy, noisy_idx = flip_labels(ds.y_train, N_NOISE / ds.n_train, seed=0)
Xtr, Xte, vocab = bag_of_words(ds.X_train, ds.X_test, max_features=MAX_FEATURES)
audit = RelabelAudit(l2=1.0).fit(Xtr, y_noisy)
pred = (audit.predict_proba(Xte) > 0.5).astype(int)
print(ds)
print(f"{len(noisy_idx)} training labels flipped; test accuracy {(pred == ds.y_test).mean():.3f}, "
      f"misclassified {(pred != ds.y_test).sum()}")
''',
'''# NBVAL_CHECK_OUTPUT
fs = audit.flip_sets(Xte)
s = fs.summary()
noisy = np.zeros(ds.n_train, bool); noisy[noisy_idx] = True
wrong = np.nonzero((pred != ds.y_test) & fs.found)[0]
share = np.mean([noisy[fs.indices(i)].mean() for i in wrong])
print(f"S_t found for {s['found_rate']:.1%} of test posts; median |S_t| = {s['median_size']:.0f} "
      f"({s['median_size'] / ds.n_train:.2%} of the training set)")
print(f"misclassified posts: mean share of S_t among the 1,000 mislabeled training posts = {share:.1%} "
      f"(base rate {noisy.mean():.1%})")
''',
"md:## Two misclassified posts and their $\\mathcal{S}_t$ (cf. Table 1)",
'''small = wrong[np.argsort(fs.size[wrong])][:2]
names = ("noHate", "hate")
for i in small:
    print(f"test post {i}: true {names[ds.y_test[i]]}, predicted {names[pred[i]]}, P(hate)={fs.prob[i]:.3f}, |S_t|={fs.size[i]}")
    print("   ", ds.X_test[i][:200])
    t = cw.flip_set_table(fs, int(i), y_noisy, ds.X_train, names, max_rows=5)
    t["mislabeled"] = noisy[t["train_index"]]
    display(t)
''',
"md:## Verification by retraining (a subset; its size depends on `CFDKIT_FAST`)",
'''sub = np.nonzero(fs.found)[0][:N_VERIFY]
new = audit.retrain_probabilities(Xte[sub], [fs.indices(i) for i in sub])
flipped = (new > 0.5) != (fs.prob[sub] > 0.5)
print(f"{N_VERIFY} test posts retrained: flipped {flipped.mean():.0%}")
''',
"""md:**What it means.** Relabeling well under 2% of the training posts flips most predictions, and for
misclassified posts $\\mathcal{S}_t$ holds about twice as many of the posts we mislabeled as their base rate — the
sets point at training data a moderator should re-examine before upholding the ban (many sets are a single post:
those predictions sit right at the threshold). The stored outputs above are from
the full study (`N_VERIFY = 100`); CI runs `N_VERIFY = 20` (only the unchecked verification cell differs).

## Explore
Search for words in the test posts, pick one, read the training posts in its $\\mathcal{S}_t$, and verify.""",
'''explorer = cw.FlipExplorer(audit, Xte, texts=ds.X_test, labels=ds.y_test, train_texts=ds.X_train,
                            train_labels=y_noisy, result=fs, label_names=("noHate", "hate"),
                            index=int(small[0]))
explorer
''',
]


def write(name, cells):
    nb = nbf.v4.new_notebook()
    for c in cells:
        if c.startswith("md:"):
            nb.cells.append(nbf.v4.new_markdown_cell(c[3:]))
        else:
            nb.cells.append(nbf.v4.new_code_cell(c.rstrip("\n")))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path = HERE / f"{name}.ipynb"
    nbf.write(nb, path)
    return path


def refresh_markdown(name, cells):
    """Replace the markdown cells of an executed notebook; refuses if any code cell differs."""
    path = HERE / f"{name}.ipynb"
    nb = nbf.read(path, as_version=4)
    if len(nb.cells) != len(cells):
        raise SystemExit(f"{path.name}: cell count changed; rebuild with --execute")
    for cell, src in zip(nb.cells, cells):
        if src.startswith("md:"):
            if cell.cell_type != "markdown":
                raise SystemExit(f"{path.name}: cell kinds changed; rebuild with --execute")
            cell.source = src[3:]
        elif cell.cell_type != "code" or cell.source != src.rstrip("\n"):
            raise SystemExit(f"{path.name}: code changed; rebuild with --execute")
    nbf.write(nb, path)
    return path


def execute(path):
    from nbclient import NotebookClient

    nb = nbf.read(path, as_version=4)
    NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(HERE)}},
                   store_widget_state=True).execute()
    nbf.write(nb, path)


if __name__ == "__main__":
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    from extra_notebooks import NB as MORE  # noqa: E402  (02..05, explorer)

    NB.update(MORE)
    for name, cells in NB.items():
        if only and name not in only:
            continue
        if "--prose" in sys.argv:
            print("updated markdown of", refresh_markdown(name, cells).name)
            continue
        p = write(name, cells)
        if "--execute" in sys.argv:
            import time
            t = time.time()
            execute(p)
            print(f"executed {p.name} in {time.time() - t:.0f}s (CFDKIT_FAST={os.environ.get('CFDKIT_FAST', '0')})")
        else:
            print("wrote", p)
