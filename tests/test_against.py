"""``convbench check --against REF``: the base commit and the working tree measured side by side.

Unit tests of the pieces (dependency drift, the accepted-slowdowns record, the A/A floor), the
bad inputs (each one line and exit 2), a broken base tree's worker (named, and the other not
waited for), and one real side-by-side check of this checkout against its own HEAD with an
injected slowdown: caught in the slowed backend, not in the other.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from convbench.against import AgainstError, aa_floor, deps_drift, load_accepted

ROOT = Path(__file__).resolve().parent.parent

PYPROJECT = """[project]
name = "x"
requires-python = ">=3.10"
dependencies = ["numpy>=1.26", "scipy"]
[project.optional-dependencies]
test = ["pytest"]
"""


def cli(*args, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "convbench", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=_env())


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    return env


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env=dict(_env(), GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                            GIT_COMMITTER_EMAIL="t@t"))


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    (r / "pyproject.toml").write_text(PYPROJECT)
    git(r, "add", ".")
    git(r, "commit", "-q", "-m", "one")
    return r


def test_deps_drift_names_what_changed():
    assert deps_drift(PYPROJECT, PYPROJECT) == []
    changed = PYPROJECT.replace('"scipy"', '"scipy>=1.11", "pandas"')
    drift = deps_drift(PYPROJECT, changed)
    assert drift == ["dependencies: base has scipy; head has pandas, scipy>=1.11"]
    assert "pyproject.toml: base 'absent'" in " | ".join(deps_drift(None, PYPROJECT))  # REF without one
    assert any("[test]" in d for d in deps_drift(PYPROJECT, PYPROJECT.replace('["pytest"]', '["pytest", "ruptures"]')))


def test_accepted_record_is_validated_and_matches_cells(tmp_path):
    f = tmp_path / "acc.toml"
    assert load_accepted(f) == []  # absent: nothing accepted
    f.write_text('[[slowdown]]\ncells = ["mb1*/im2col_blas"]\nfactor = 1.5\nreason = "bigger tiles"\n'
                 'base = "abcdef1234"\n')
    (rec,) = load_accepted(f)
    assert rec.covers("mb1ic8ih16/im2col_blas".split("/")[0], "im2col_blas", "abcdef1234ffff")
    assert not rec.covers("mb1ic8ih16", "im2col_blas", "0123456789")  # reviewed against another base
    assert not rec.covers("mb1ic8ih16", "direct_numba", "abcdef1234")
    for bad, why in (('cells = ["x/y"]\nfactor = 1.5\n', "reason is required"),
                     ('cells = ["x/y"]\nfactor = 0.9\nreason = "r"\n', "factor must be a number above 1"),
                     ('cells = ["xy"]\nfactor = 2\nreason = "r"\n', "problem/backend"),
                     ('cells = ["x/y"]\nfactor = 2\nreason = "r"\nuntil = 3\n', "unknown key(s) until"),
                     ('cells = ["x/y"\n', "not a readable TOML file")):
        f.write_text("[[slowdown]]\n" + bad)
        with pytest.raises(AgainstError, match=why.replace("(", r"\(").replace(")", r"\)")):
            load_accepted(f)


def test_aa_floor_counts_only_differences_the_u_test_sees_per_backend():
    rng = np.random.default_rng(0)
    quiet = ("dense_matrix", list(1 + 0.01 * rng.standard_normal(15)), list(1.08 + 0.01 * rng.standard_normal(15)))
    scattered = ("im2col_blas", list(rng.uniform(1, 3, 15)), list(rng.uniform(1, 3, 15) * 1.3))
    aa = aa_floor([quiet, scattered], 1.05, 0.01)
    assert aa["cells"] == 2 and aa["largest"] >= aa["largest_significant"]
    assert aa["largest_significant"] == pytest.approx(1.08, abs=0.02)  # the systematic 8% offset
    assert aa["floors"]["dense_matrix"] == pytest.approx(aa["largest_significant"] * 1.05)
    assert aa["floors"]["im2col_blas"] == 1.0  # its scatter is the U test's business
    assert aa["floor"] == aa["floors"]["dense_matrix"]
    assert aa_floor([], 1.05, 0.01)["floor"] == 1.0


@pytest.mark.parametrize("case", ["no_ref", "dirty", "deps", "accepted", "out"])
def test_bad_input_is_one_line_and_exit_2(repo, case):
    args = ["check", "--against", "HEAD", "--suite", "ci"]
    if case == "no_ref":
        args[2] = "no-such-branch"
        want = "'no-such-branch': no such commit"
    elif case == "dirty":
        (repo / "pyproject.toml").write_text(PYPROJECT + "\n# edited\n")
        want = "uncommitted changes (pyproject.toml); commit them, or pass --allow-dirty"
    elif case == "deps":
        (repo / "pyproject.toml").write_text(PYPROJECT.replace('"scipy"', '"scipy", "torch"'))
        git(repo, "commit", "-qam", "two")
        args[2] = "HEAD~1"
        want = "declared dependencies differ between HEAD~1 and the working tree (dependencies: head has torch)"
    elif case == "accepted":
        (repo / "acc.toml").write_text("[[slowdown]]\ncells = 3\n")
        git(repo, "add", ".")
        git(repo, "commit", "-qm", "acc")
        args += ["--accepted", "acc.toml"]
        want = "cells must be a list of 'problem/backend' patterns"
    else:
        (repo / "results").mkdir()
        (repo / "results" / "x").write_text("mine")
        args += ["--out", "results"]
        want = "--out 'results' exists and is not empty"
    r = cli(*args, cwd=repo)
    assert r.returncode == 2, r.stderr
    assert want in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert subprocess.run(["git", "-C", str(repo), "worktree", "list"], capture_output=True,
                          text=True).stdout.count("\n") == 1  # no worktree left behind


def test_a_broken_base_worker_is_named_and_the_head_not_waited_for(repo, tmp_path):
    """The base commit's convbench cannot even be imported: the check says which tree failed and
    returns promptly, with every worker process gone."""
    pkg = repo / "convbench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise SystemExit('this convbench is broken on purpose')\n")
    (repo / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "broken")
    shutil.rmtree(pkg)
    shutil.copytree(ROOT / "convbench", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / ".gitignore").write_text("__pycache__/\nresults/\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "fixed")
    r = cli("check", "--against", "HEAD~1", "--suite", "ci", "--backends", "im2col_blas", "--out",
            str(tmp_path / "chk"), "--quiet", cwd=repo, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "the base tree's worker (HEAD~1 = " in r.stderr and "broken on purpose" in r.stderr
    assert _processes_in(repo) == [] and _processes_in(Path(tempfile.gettempdir()), "convbench-base-") == []


def _processes_in(where: Path, prefix: str = "") -> list[int]:
    """Pids whose working directory lies under ``where`` (and starts with ``prefix`` there): the
    workers run with their tree as the working directory."""
    out = []
    for d in Path("/proc").glob("[0-9]*"):
        try:
            cwd = Path(os.readlink(d / "cwd"))
        except OSError:
            continue
        if cwd.is_relative_to(where) and (not prefix or cwd.relative_to(where).parts[:1]
                                          and cwd.relative_to(where).parts[0].startswith(prefix)):
            out.append(int(d.name))
    return out


def test_side_by_side_check_catches_an_injected_slowdown(tmp_path):
    """This checkout against its own HEAD (uncommitted changes allowed, as in a developer's tree):
    a 3x slowdown injected into the head's im2col_blas is confirmed on both problems; one of them is
    covered by a reviewed record accepting up to 5x, so only the other fails the gate. fft_scipy,
    the same code on both sides, is not flagged. Both sides' outputs were verified before timing."""
    suite = tmp_path / "one.txt"
    small, strided = 'mb1ic8ih16oc8kh3ph1n"small"', 'mb1ic4ih12oc4kh3sh2ph1n"small-s2"'
    suite.write_text(f"{small}\n{strided}\n")
    accepted = tmp_path / "accepted.toml"
    accepted.write_text("[[slowdown]]\ncells = ['mb1ic8ih16*/im2col_blas']\nfactor = 5\n"
                        "reason = \"im2col now pads in float64 (test)\"\n")
    out = tmp_path / "chk"
    r = cli("check", "--against", "HEAD", "--allow-dirty", "--allow-deps-drift", "--suite", str(suite),
            "--backends", "im2col_blas,fft_scipy", "--rounds", "7", "--retries", "1", "--inject-slowdown", "im2col_blas=3",
            "--out", str(out), "--quiet", "--accepted", str(accepted), cwd=ROOT)
    assert r.returncode == 1, r.stdout + r.stderr
    rep = json.loads((out / "check.json").read_text())
    assert rep["confirmed"] == [f"{strided}/im2col_blas"]
    assert [a["cell"] for a in rep["accepted"]] == [f"{small}/im2col_blas"]
    assert rep["accepted"][0]["reason"] == "im2col now pads in float64 (test)"
    verdicts = {(x["problem"], x["backend"]): x for x in rep["rows"]}
    assert {v["verdict"] for (p, b), v in verdicts.items() if b == "fft_scipy"} <= {"ok", "not confirmed (noise)"}
    assert {v["verdict"] for (p, b), v in verdicts.items() if b == "im2col_blas"} == {"REGRESSION", "accepted"}
    assert all(v["ratio"] > 2 for (p, b), v in verdicts.items() if b == "im2col_blas")
    assert rep["aa"]["cells"] == 2 and rep["base"]["ref"] == "HEAD" and rep["head"]["dirty"] is not None
    md = (out / "check.md").read_text()
    assert "check FAILED: 1 regression(s) confirmed" in md and "Accepted slowdowns" in md
    cells = (out / "cells.csv").read_text()
    assert cells.count(",passed,") >= 4 * 2 + 2  # base and head verified on both problems; base' on one
    assert "worktree" not in subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True,
                                            text=True).stdout.split("\n", 1)[-1]
