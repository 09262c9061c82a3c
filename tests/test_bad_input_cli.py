"""Issue 8 §4: the command line's bad inputs — each ends in exit status 2 and one line naming the argument."""

import pytest

from cfdkit.cli import main

CASES = [
    (["audit"], "--dataset"),
    (["audit", "--dataset", "synthetic"], "--out"),
    (["audit", "--dataset", "nope", "--out", "{tmp}/o"], "nope"),
    (["audit", "--dataset", "synthetic", "--out", ""], "--out"),
    (["audit", "--dataset", "synthetic", "--out", "  "], "--out"),
    (["audit", "--dataset", "synthetic", "--out", "{tmp}/o", "--n-test", "0"], "--n-test"),
    (["audit", "--dataset", "synthetic", "--out", "{tmp}/o", "--n-test", "-3"], "--n-test"),
    (["audit", "--dataset", "synthetic", "--out", "{tmp}/o", "--n-test", "x"], "--n-test"),
    (["audit", "--dataset", "synthetic", "--out", "{tmp}/o", "--seed", "abc"], "--seed"),
    (["audit", "--dataset", "synthetic", "--out", "{tmp}/o", "--features", "pixels"], "pixels"),
    (["audit", "--dataset", "synthetic", "--out", "{tmp}/o", "--features", "embeddings"], "embeddings"),
    (["audit", "--dataset", "loan", "--out", "{tmp}/o", "--features", "bow"], "bow"),
    (["audit", "--dataset", "synthetic", "--out", "{tmp}/o", "--device", "mps"], "mps"),
    (["audit", "--dataset", "synthetic", "--out", "{tmp}/o", "--device", "cuda:7"], "cuda"),
    (["audit", "--dataset", "synthetic", "--out", "{tmp}/o", "--device", "nonsense"], "nonsense"),
    (["audit", "--dataset", "synthetic", "--out", "{tmp}/file/sub"], "output folder"),
    (["audit", "--dataset", "synthetic", "--out", "{tmp}/file"], "not a folder"),
    (["audit", "--dataset", "synthetic", "--out", "{tmp}/o", "--bogus"], "--bogus"),
    (["reproduce"], "--out"),
    (["reproduce", "--out", "{tmp}/r", "--only", "no-such-study"], "no-such-study"),
    (["reproduce", "--out", "{tmp}/r", "--n-jobs", "0"], "--n-jobs"),
    (["reproduce", "--out", "{tmp}/r", "--n-jobs", "two"], "--n-jobs"),
    (["reproduce", "--out", ""], "--out"),
    (["reproduce", "--out", "{tmp}/file"], "not a folder"),
    (["nosuchcommand"], "nosuchcommand"),
    ([], "command"),
]


@pytest.mark.parametrize("argv, needle", CASES, ids=[" ".join(a) or "(none)" for a, _ in CASES])
def test_cli_bad_input(argv, needle, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as e:     # argparse's own errors
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc == 2, (rc, err)
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line, got: {err}"
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()
