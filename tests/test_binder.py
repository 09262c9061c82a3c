"""Every import in every notebook is provided by what binder/requirements.txt installs.

Parses the code cells of notebooks/*.ipynb with ast, collects top-level module names, and maps
the distributions named in binder/requirements.txt (plus the repository's own packages and the
dependencies of its ``notebooks`` extra, installed by ``-e .[notebooks]``) to the modules they provide.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQ = ROOT / "binder" / "requirements.txt"

#: distribution name -> top-level modules it provides
DIST_MODULES = {
    "torch": {"torch"},
    "numpy": {"numpy"},
    "scipy": {"scipy"},
    "scikit-learn": {"sklearn"},
    "pandas": {"pandas"},
    "matplotlib": {"matplotlib", "mpl_toolkits", "pylab"},
    "ipywidgets": {"ipywidgets"},
    "jupyterlab": {"jupyterlab"},
    "ipykernel": {"ipykernel", "IPython"},  # ipykernel depends on ipython
    "voila": {"voila"},
    "tqdm": {"tqdm"},
    "joblib": {"joblib"},
    "platformdirs": {"platformdirs"},
}
#: the repository's own top-level modules, installed by "-e ." (notebooks import no notebook-local helpers:
#: the studies live in cfdkit.studies)
OWN = {"cfdkit", "cfdkit_widgets"}


def _req_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-") and not line.startswith("-e"):
            continue
        if line.startswith("-e") or line.startswith("."):
            names.add("<repo>")
            continue
        names.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower())
    return names


def _project_deps() -> set[str]:
    try:
        import tomllib
    except ImportError:  # pragma: no cover
        return set()
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(proj.get("dependencies", [])) + list(proj.get("optional-dependencies", {}).get("notebooks", []))
    return {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in deps}


def _notebook_imports() -> dict[str, set[str]]:
    out = {}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        mods = set()
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            src = "".join(cell["source"])
            src = "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!")))
            for node in ast.walk(ast.parse(src)):
                if isinstance(node, ast.Import):
                    mods |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods.add(node.module.split(".")[0])
        out[nb.name] = mods
    return out


def test_requirements_install_cpu_torch_and_the_repo():
    text = REQ.read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    names = _req_names(REQ)
    assert "<repo>" in names, "binder must install the repository itself (-e . or .)"
    assert "torch" in names, "torch missing from binder/requirements.txt"
    assert ".[notebooks]" in text, "binder must install the notebooks extra (-e .[notebooks])"
    for dist in ("ipywidgets", "jupyterlab", "voila"):
        assert dist in _project_deps(), f"{dist} missing from the notebooks extra in pyproject.toml"


CONSTRAINTS = ROOT / "constraints.txt"


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_binder_and_make_install_with_the_constraints_file():
    assert "-c ../constraints.txt" in REQ.read_text(), "binder/requirements.txt must install with -c ../constraints.txt"
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text(), "make setup must install with -c constraints.txt"
    pins = _pins()
    for dist in ("torch", "numpy", "scipy", "scikit-learn", "pandas", "matplotlib", "ipywidgets", "nbval"):
        assert dist in pins, f"{dist} is not pinned in constraints.txt"


def test_this_environment_is_the_pinned_one():
    """The stored notebook outputs are only meaningful in the pinned environment (issue 8)."""
    from importlib import metadata

    pins = _pins()
    wrong = {}
    for dist in ("torch", "numpy", "scipy", "scikit-learn", "pandas", "matplotlib", "sentence-transformers"):
        try:
            have = metadata.version(dist).split("+")[0]
        except metadata.PackageNotFoundError:
            continue
        if have != pins[dist]:
            wrong[dist] = (have, pins[dist])
    assert not wrong, f"installed vs constraints.txt: {wrong}; run `make setup` (pip install -c constraints.txt ...)"


def test_every_notebook_import_is_installed_on_binder():
    names = _req_names(REQ) | _project_deps()
    provided = set(OWN) | set(sys.stdlib_module_names)
    for dist in names:
        provided |= DIST_MODULES.get(dist, set())
    imports = _notebook_imports()
    assert imports, "no notebooks found"
    missing = {nb: sorted(m - provided) for nb, m in imports.items() if m - provided}
    assert not missing, f"imports not provided by binder/requirements.txt: {missing}"


def test_parser_catches_a_missing_module(tmp_path):
    src = "import numpy as np\nfrom seaborn import heatmap\nimport cfdkit_widgets as cw\n"
    mods = {n.names[0].name.split(".")[0] if isinstance(n, ast.Import) else n.module.split(".")[0]
            for n in ast.walk(ast.parse(src)) if isinstance(n, (ast.Import, ast.ImportFrom))}
    provided = set(OWN) | DIST_MODULES["numpy"]
    assert mods - provided == {"seaborn"}
