"""Cells of notebooks 02-05 and explorer.ipynb (see build.py)."""

PARAMS = '''# Parameters: CFDKIT_FAST=1 (CI) runs a reduced size; unset runs the full study.
import os
FAST = os.environ.get("CFDKIT_FAST", "0") == "1"
'''
SETUP = '''import numpy as np, pandas as pd, matplotlib.pyplot as plt
import cfdkit_widgets as cw
import studies   # notebooks/studies.py: the studies on the public cfdkit API (stand-in for cfdkit.experiments)
pd.set_option("display.precision", 3)
'''

NB = {}

NB["02_loan_tag_bias"] = [
"""md:# Does $\\mathcal{S}_t$ reveal group attribution bias? (§3.4)

**Question.** If a training set teaches the model to link an arbitrary group attribute to a bad outcome, do the
flip sets of that group's misclassified people point at the biased training rows?

**Method.** As in the paper, we take the loan-default data (here the *partial* 20k-row stand-in, see its notes),
add a random "tag" feature — 40% tag X, 60% tag Y — and relabel 90% of the *qualified* (non-default) tag-X
training rows as "default". These relabeled rows are the biased set $\\mathcal{B}$. We fit a logistic regression
on the one-hot/standardised features plus the tag, run Algorithm 1 (IP-relabel, Eq. 4:
$\\Delta_t f = \\nabla_w f_{\\hat w}(x_t)^\\top \\Delta_i w$, $\\Delta_i w = -H^{-1}\\nabla_w \\ell_i$) on every
misclassified test row, and measure the share of each $\\mathcal{S}_t$ that lies in $\\mathcal{B}$, separately for
tag X and tag Y.

The whole study takes about 30 s, so CI (`CFDKIT_FAST=1`) and the stored outputs use the same size.""",
PARAMS + '''BIAS_RATE, TAG_X_SHARE, SEED = 0.9, 0.4, 0
N_TEST = None   # all 2,342 test rows in both modes (cheap)
''',
SETUP,
'''# NBVAL_CHECK_OUTPUT
ds, Xtr, Xte, y_biased, B, tag_tr, tag_te, names = studies.loan_with_tags(BIAS_RATE, TAG_X_SHARE, SEED)
print(ds)
print(f"{len(names)} features; |B| = {len(B)} qualified tag-X rows relabeled as default "
      f"({len(B) / ds.n_train:.1%} of the training set)")
''',
'''# NBVAL_CHECK_OUTPUT
df = studies.tag_bias(BIAS_RATE, TAG_X_SHARE, n_test=N_TEST, seed=SEED)
summary = cw.summarize_tag_bias(df)
print(f"{len(df)} misclassified test rows")
print(summary.round(3).to_string(index=False))
''',
'''fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
ex_plot = cw.GroupBiasExplorer(result=df)   # reuse its figure code
ex_plot.draw(summary, ax[0])
for tag, g in df[df["size"] > 0].groupby("tag"):
    ax[1].hist(g["share_in_B"], bins=20, alpha=0.6, label=f"tag {tag}")
ax[1].set_xlabel("share of S_t in B"); ax[1].set_ylabel("misclassified rows"); ax[1].legend()
plt.tight_layout(); plt.show()
''',
"""md:**What it means.** For misclassified tag-X rows, a large share of $\\mathcal{S}_t$ comes from the biased set
$\\mathcal{B}$; for tag-Y rows almost none does (the paper reports 60% vs 23% on the full data). The composition
of the flip set separates errors caused by the group-linked label bias from errors with other causes (the
model is simply weak on this partial, heavily duplicated data: about half the test rows are misclassified, and
tag-X sets are large because the bias pushed them far across the threshold).

## Explore
Change the bias rate or the tag-X share and press **Run** (about 30 s).""",
'''explorer = cw.GroupBiasExplorer(run=studies.tag_bias, result=df, bias_rate=BIAS_RATE, tag_x_share=TAG_X_SHARE,
                                n_test=500)
explorer
''',
]

NB["03_noise_sweep"] = [
"""md:# How does $|\\mathcal{S}_t|$ change with label noise? (§3.3, Figure 6)

**Question.** The paper observes that as the share of wrong training labels grows from 0 to 0.5, the flip sets
shrink sharply while test accuracy barely moves up to about 0.3. If so, $|\\mathcal{S}_t|$ is a robustness signal
that accuracy misses.

**Method.** For each noise ratio $r$ we flip exactly $r \\cdot N$ training labels at random (synthetic two-Gaussian
data, $N = 2000$, 20 features), fit the L2 logistic regression, and run Algorithm 1 on 100 clean test points:
training points are taken in the order of their IP-relabel estimate
$\\Delta_t f = \\nabla_w f_{\\hat w}(x_t)^\\top \\Delta_i w$ (Eq. 4) until the estimated probability crosses
$\\tau = 0.5$. We report the mean $|\\mathcal{S}_t|$ over points with a set, and the test accuracy.

Full study: seeds 0–4 (stored outputs); `CFDKIT_FAST=1` runs seed 0 only. The checked cell prints seed 0, the
same in both modes.""",
PARAMS + '''NOISE = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
SEEDS = [0] if FAST else [0, 1, 2, 3, 4]
N_TEST = 100
''',
SETUP,
'''df = studies.noise_sweep(NOISE, SEEDS, n_test=N_TEST)
summary = cw.summarize_noise_sweep(df)
summary.round(3)
''',
'''# NBVAL_CHECK_OUTPUT  (seed 0: identical in fast and full mode)
print(df[df.seed == 0][["noise_ratio", "mean_size", "found_rate", "accuracy"]].round(3).to_string(index=False))
''',
'''fig, ax = plt.subplots(figsize=(6, 3.4))
cw.NoiseSweepExplorer(result=df).draw(summary, ax)
ax.set_title(f"mean |S_t| and accuracy vs noise ({len(SEEDS)} seed(s))")
plt.tight_layout(); plt.show()
''',
"""md:**What it means.** From 0 to 0.3 noise the mean flip set shrinks several-fold while accuracy stays within a
couple of points: the model has become much easier to overturn without looking any worse. Beyond 0.5 the labels
are mostly inverted, the model learns the flipped rule, and the sets grow again. $|\\mathcal{S}_t|$ complements
accuracy as a measure of how trustworthy the training labels are.

## Explore""",
'''explorer = cw.NoiseSweepExplorer(run=studies.noise_sweep, result=df, noise_ratios=NOISE[:6], seeds=1, n_test=50)
explorer
''',
]

NB["04_relabel_vs_remove"] = [
"""md:# Relabel or remove? (§3.5, Table 4)

**Question.** To flip a prediction we can change training labels or delete training points. Which needs fewer
points, and how many of them are the noisy ones we would want to find?

**Method.** With 30% of the training labels flipped (the noise set $\\mathcal{N}$; synthetic data, 1,000 training
points), we take misclassified test points and find (i) the relabel set by Algorithm 1 with IP-relabel (Eq. 4,
$\\Delta_t f = \\nabla_w f_{\\hat w}(x_t)^\\top \\Delta_i w$), (ii) the removal set of Removal Alg1 (greedy over
IP-remove, $\\Delta_t f = \\nabla_w f_{\\hat w}(x_t)^\\top H^{-1}\\nabla_w L_i$), and (iii) Removal Alg2 (Alg1
re-estimated on the shrinking set). Each set splits into $\\mathcal{S}_{t1} = \\mathcal{S}_t\\cap\\mathcal{N}$ and
$\\mathcal{S}_{t2} = \\mathcal{S}_t\\setminus\\mathcal{N}$.

Full study: 100 misclassified test points (stored outputs); `CFDKIT_FAST=1`: 30. The checked cell prints the
first 30 points, the same in both modes.""",
PARAMS + '''NOISE_RATIO, SEED = 0.3, 0
N_TEST = 30 if FAST else 100
''',
SETUP,
'''df = studies.relabel_vs_remove(NOISE_RATIO, n_test=N_TEST, seed=SEED)
cw.summarize_relabel_remove(df).round(2)
''',
'''# NBVAL_CHECK_OUTPUT  (first 30 misclassified points: identical in fast and full mode)
first = df[df.test_index.isin(df.test_index.unique()[:30])]
print(cw.summarize_relabel_remove(first).round(2).to_string(index=False))
''',
'''fig, ax = plt.subplots(figsize=(5.5, 3.2))
cw.RelabelRemoveExplorer(result=df).draw(cw.summarize_relabel_remove(df), ax)
ax.set_title("mean |S_t|: noisy vs clean points"); plt.tight_layout(); plt.show()
''',
"""md:**What it means.** Relabeling needs about half as many points as either removal algorithm, and the saving is
in the noisy points: removal has to delete several mislabeled points where flipping one or two labels does,
while both touch a similar number of clean points (the paper's Table 4 finds relabel sets smaller on both parts).
A relabel set is the shorter list of suspects to re-examine.

## Explore""",
'''explorer = cw.RelabelRemoveExplorer(run=studies.relabel_vs_remove, result=df, noise=NOISE_RATIO, n_test=30)
explorer
''',
]

NB["05_method_comparison"] = [
"""md:# Which ranking moves the prediction most? (§3.2, Figure 2)

**Question.** Algorithm 1 ranks training points by IP-relabel. Would other attribution scores — IP-remove,
influence functions, RelatIF, gradient dot product / cosine, or random — find points whose relabeling moves a
prediction as much?

**Method.** For each method we rank the training points for each test point by how strongly the score says they
push the prediction toward the other class (for IP-relabel: the estimated change
$\\Delta_t f = \\nabla_w f_{\\hat w}(x_t)^\\top \\Delta_i w$ of Eq. 4 in the flipping direction; for the
similarity scores: the most supportive points first), relabel the top $k$, **retrain**, and report the mean
absolute change $|\\Delta p|$ of the predicted probability. Synthetic two-Gaussian data, 2,000 training points.

Full study: 50 random test points (stored outputs); `CFDKIT_FAST=1`: 20. The checked cell runs a fixed small
case (10 points, $k \\in \\{5, 10\\}$), the same in both modes.""",
PARAMS + '''KS = [5, 10, 20, 40]
N_TEST = 20 if FAST else 50
''',
SETUP,
'''# NBVAL_CHECK_OUTPUT  (fixed small case, independent of FAST)
small = studies.figure2(ks=[5, 10], n_test=10)
print(cw.summarize_method_comparison(small).round(3).to_string())
''',
'''df = studies.figure2(ks=KS, n_test=N_TEST)
table = cw.summarize_method_comparison(df)
table.round(3)
''',
'''fig, ax = plt.subplots(figsize=(6, 3.4))
cw.MethodComparisonExplorer(result=df).draw(table, ax)
ax.set_title(f"mean |Δp| over {N_TEST} test points"); plt.tight_layout(); plt.show()
''',
"""md:**What it means.** For small $k$ — the regime of flip sets — IP-relabel moves the prediction most, as in the
paper's Figure 2; IP-remove and the influence function rank identically here (same direction, different scale)
and move it about half as much. The similarity scores (RelatIF, gradient cosine) catch up for larger $k$, and
random relabeling barely moves anything.

## Explore""",
'''explorer = cw.MethodComparisonExplorer(run=studies.figure2, result=df, ks=KS[:3], n_test=10)
explorer
''',
]

NB["explorer"] = [
"""md:# cfdkit explorers

Serve this notebook as an app: `voila notebooks/explorer.ipynb`. Pick a test point and verify its flip set;
run the studies with your own sizes and seeds. (Synthetic data, so it starts in seconds.)""",
'''import os
import cfdkit_widgets as cw
import studies
from cfdkit import RelabelAudit
from cfdkit.datasets import load
ds = load("synthetic", n_train=2000, n_test=200, noise=0.1, seed=0)
audit = RelabelAudit(l2=1.0).fit(ds.X_train, ds.y_train)
''',
"md:## Flip sets of single test points",
'''cw.FlipExplorer(audit, ds.X_test, labels=ds.y_test, train_texts=cw.describe_rows(ds.X_train, ds.feature_names, 3))''',
"md:## Label noise and $|\\mathcal{S}_t|$",
'''cw.NoiseSweepExplorer(run=studies.noise_sweep, result=studies.noise_sweep([0, 0.1, 0.2, 0.3, 0.4, 0.5], [0], n_test=50),
                      noise_ratios=[0, 0.1, 0.2, 0.3, 0.4, 0.5], seeds=1, n_test=50)''',
"md:## Relabel vs remove",
'''cw.RelabelRemoveExplorer(run=studies.relabel_vs_remove, result=studies.relabel_vs_remove(0.3, n_test=20), n_test=20)''',
"md:## Method comparison",
'''cw.MethodComparisonExplorer(run=studies.figure2, result=studies.figure2(ks=[5, 10, 20], n_test=5), ks=[5, 10, 20], n_test=5)''',
"md:## Group attribution bias (loan data; Run takes about 30 s)",
'''cw.GroupBiasExplorer(run=studies.tag_bias, n_test=300)''',
]
