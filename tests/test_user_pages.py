"""What a user reads: the README, the docs pages, the notebooks' text and the outputs' column names.

* user-facing pages speak of the product only: no issue numbers, branches, merges, or files outside the repository;
* the README is a short guide (≤ 150 lines) whose links all resolve to files in the repository;
* the words estimated / verified / converged / certified / minimal / proven minimal are defined once, in the same
  paragraph, in the README, the report and the first two notebooks;
* one vocabulary for columns: ``sets.csv`` of ``cfdkit audit`` and every ``to_frame()`` name a column about the
  minimal set ``minimal_*`` (or ``lower_bound``, ``one_minimal``, ``proven_minimal``) and one about Algorithm 1's
  estimated set ``estimated_*``, the same name for the same thing in every table.
"""
import html
import json
import re

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT

# the pages `cfdkit reproduce` writes (REPRODUCTION.md, its copy in docs/reproduction) are read too
PAGES_MD = ([ROOT / "README.md", ROOT / "notebooks" / "README.md", ROOT / "REPRODUCTION.md"]
            + sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "docs" / "reproduction").glob("*.md")))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

DEV_WORDS = [
    (r"\bissues?\s*#?\d+", "an issue number"),
    (r"\(issue\b", "an issue reference"),
    (r"#\d{2,}\b(?!\s*[:.]\d)", "a ticket number"),
    (r"\b(?:another|other|a|the|this|feature|main|dev) branch(?:es)?\b", "a branch"),
    (r"\bonce (?:that|this|the|it)\b[^.\n]{0,40}\bmerged\b", "a pending merge"),
    (r"\bshared/papers\b|/work/|\.\./shared/(?!data\b)", "a file outside the repository"),
]


def _markdown_of(nb_path):
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


def _texts():
    for p in PAGES_MD:
        if p.is_file():
            yield p.relative_to(ROOT).as_posix(), p.read_text(encoding="utf-8")
    for p in NOTEBOOKS:
        for k, text in enumerate(_markdown_of(p)):
            yield f"{p.relative_to(ROOT).as_posix()} (markdown cell {k})", text


def test_pages_speak_of_the_product_only():
    found = []
    for where, text in _texts():
        for rx, what in DEV_WORDS:
            for m in re.finditer(rx, text, flags=re.IGNORECASE):
                found.append(f"{where}: {what}: ...{text[max(0, m.start() - 40):m.end() + 40]!r}...")
    assert not found, "\n".join(found)


def test_the_grep_catches_what_it_should():
    """The patterns above find the sentences that were once on these pages (a test that cannot fail is no test)."""
    bad = ["## Verified minimal sets for the two posts (issue 10)",
           "The input counterfactual (Latent Shift) lives on another branch; its hook is",
           "(and its Latent Shift counterfactual once that module is merged: pass `counterfactual=`).",
           "reconstructed from a secondary source, see `shared/papers/spurious_design.md` §1",
           "the stable recipe of issue 16"]
    for text in bad:
        assert any(re.search(rx, text, flags=re.IGNORECASE) for rx, _ in DEV_WORDS), text
    fine = ["Install with `pip install -e .`; the data home is `../shared/data`; test point 3 of 12."]
    for text in fine:
        assert not any(re.search(rx, text, flags=re.IGNORECASE) for rx, _ in DEV_WORDS), text


def test_readme_is_a_short_guide_with_working_links():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    for needed in ("## Quick start", "## The words", "## Which question, which tool", "minimal_sets"):
        assert needed in readme
    # the quick start ends with the minimal set and says which answer to trust
    quick = readme.split("## Quick start")[1].split("## ")[0]
    assert "Trust the minimal set" in quick and "ms = audit.minimal_sets(" in quick
    broken = []
    for page in [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md")):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            path = (page.parent / target).resolve()
            if not path.exists() or not path.is_relative_to(ROOT.resolve()):
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def _plain(text: str) -> str:
    text = re.sub(r"<[^>]+>", "", html.unescape(text))
    return " ".join(text.replace("**", "").replace("*", "").split())


def test_one_paragraph_defines_the_words_everywhere():
    from cfdkit.report import VOCABULARY

    ref = _plain(VOCABULARY)
    for w in ("estimated set", "verified set", "converged", "certified", "minimal set", "proven minimal"):
        assert w in ref
    assert ref in _plain((ROOT / "README.md").read_text(encoding="utf-8"))
    for nb in ("00_quickstart.ipynb", "01_hate_speech.ipynb"):
        md = " ".join(_markdown_of(ROOT / "notebooks" / nb))
        # the notebooks word "run to its tolerance" a little shorter; every defined word and its gist is there
        p = _plain(md)
        for w in ("estimated set", "verified set", "converged", "certified", "minimal set", "proven minimal",
                  "a mathematical proof, from a partly finished retraining"):
            assert w in p, (nb, w)


def test_sets_csv_speaks_the_api_vocabulary(tmp_path):
    """One vocabulary: sets.csv's header is made of the column names of MinimalSets.to_frame() and
    Verification.to_frame() (each CSV column exists in the API under the same name, with the same values as
    minimal_points on the same rows); every to_frame() column (two classes and K) is a row column, an estimated_*
    column about Algorithm 1's set, or a column about the minimal set -- no bare ``size``/``new_prob`` that means one
    set in one table and the other in the next."""
    from cfdkit import RelabelAudit
    from cfdkit.cli import main
    from cfdkit.data import prepare
    from cfdkit.linear.results import ESTIMATED_COLUMNS, MINIMAL_COLUMNS, ROW_COLUMNS
    from cfdkit.studies.linear import minimal_points

    assert not (set(ROW_COLUMNS) & set(ESTIMATED_COLUMNS) or set(ROW_COLUMNS) & set(MINIMAL_COLUMNS)
                or set(ESTIMATED_COLUMNS) & set(MINIMAL_COLUMNS))
    assert all(c.startswith("estimated_") for c in ESTIMATED_COLUMNS)
    assert all(c.startswith("minimal_") or c in ("lower_bound", "lower_bound_reason", "one_minimal", "proven_minimal")
               for c in MINIMAL_COLUMNS)
    out = tmp_path / "a"
    assert main(["audit", "--dataset", "synthetic", "--out", str(out), "--n-test", "5", "--no-plots"]) == 0
    csv = pd.read_csv(out / "sets.csv", keep_default_na=True)
    mdf = minimal_points("synthetic", n_test=5, seed=0)
    p = prepare("synthetic", seed=0, n_test=3)
    a = RelabelAudit(l2=p.l2, threshold=p.threshold).fit(p.X_train, p.y_train)
    fs = a.flip_sets(p.X_test)
    frames = {"MinimalSets": a.minimal_sets(p.X_test).to_frame(), "FlipSets": fs.to_frame(),
              "Verification": a.verify(fs).to_frame(),
              "Verification(minimize)": a.verify(fs, minimize=True, certify=False).to_frame()}
    y3 = np.digitize(p.X_train[:, 0], np.quantile(p.X_train[:, 0], [1 / 3, 2 / 3]))
    k = RelabelAudit(l2=p.l2).fit(p.X_train[:120], y3[:120])
    kfs = k.flip_sets(p.X_test)
    frames.update({"K FlipSets": kfs.to_frame(), "K Verification": k.verify(kfs).to_frame(),
                   "K MinimalSets": k.minimal_sets(p.X_test[:2]).to_frame()})
    for name, df in frames.items():
        odd = [c for c in df.columns if c not in ROW_COLUMNS + ESTIMATED_COLUMNS + MINIMAL_COLUMNS]
        assert not odd, f"{name}.to_frame() has columns outside the vocabulary: {odd}"
    api = set(frames["MinimalSets"].columns) | set(frames["Verification"].columns)
    assert set(csv.columns) <= api, f"sets.csv columns the API does not name: {set(csv.columns) - api}"
    assert [c for c in csv.columns if c in MINIMAL_COLUMNS] == [c for c in frames["MinimalSets"].columns
                                                               if c in MINIMAL_COLUMNS]
    # same values as the API's frame for the same rows (the indices as space-separated text)
    np.testing.assert_array_equal(csv["test_index"], mdf["test_index"])
    for c in ("minimal_size", "minimal_status", "lower_bound", "proven_minimal", "one_minimal", "minimal_decided_by",
              "estimated_size"):
        assert list(csv[c]) == list(mdf[c]), c
    np.testing.assert_allclose(csv["minimal_new_prob"], mdf["minimal_new_prob"], rtol=0, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(csv["estimated_refit_prob"], mdf["estimated_refit_prob"], rtol=0, atol=1e-12,
                               equal_nan=True)
    assert [str(s).split() if isinstance(s, str) else [] for s in csv["minimal_indices"]] == \
        [[str(i) for i in ix] for ix in mdf["minimal_indices"]]
    # the linear estimate and the refit of the estimated set have two names, in every table
    assert "estimated_linear_prob" in frames["FlipSets"] and "estimated_refit_prob" in frames["Verification"]
    assert "estimated_linear_prob" not in csv.columns and "estimated_refit_prob" in csv.columns


@pytest.mark.parametrize("flag", ["--estimate-only"])
def test_estimate_only_csv_names_only_the_estimate(tmp_path, flag):
    from cfdkit.cli import main

    assert main(["audit", "--dataset", "synthetic", "--out", str(tmp_path / "e"), "--n-test", "4", "--no-plots",
                 flag]) == 0
    cols = list(pd.read_csv(tmp_path / "e" / "sets.csv").columns)
    assert all(c in ("test_index", "prob", "predicted_label") or c.startswith("estimated_") for c in cols), cols
