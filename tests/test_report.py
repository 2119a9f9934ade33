"""Report generation: every file, resolvable links, roll-up arithmetic, missing data."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from convbench.cli import main
from convbench.report import markdown_to_html, rollups, write_report

DATA = Path(__file__).parent / "data"
PLOTS = ("time_vs_size", "winner_map", "roofline", "reduction_vs_speedup", "error", "rollup", "parameters")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("rep")
    suite = d / "tinynet.txt"
    suite.write_text('mb1ic4ih10oc4kh3ph1n"tiny:a"  # x3\n'
                     'mb1ic4ih14oc8kh3sh2ph1n"tiny:b"\n'
                     'mb1ic1ih24oc1kh5ph2n"tiny:c"  # x2\n')
    out = d / "r"
    argv = ["run", "--suite-file", str(suite), "--out", str(out), "--quiet", "--min-time", "0.005",
            "--max-time", "0.02", "--min-rounds", "2",
            "--backends", "direct_numba,im2col_blas,winograd_f4x3,fft_scipy,sparse_csr,dense_matrix"]
    assert main(argv) == 0
    return out


def test_every_file_is_written_and_non_empty(run_dir):
    for name in ("summary.csv", "samples.csv", "meta.json", "tables.md", "report.md", "report.html"):
        assert (run_dir / name).stat().st_size > 0, name
    for stem in PLOTS:
        for ext in ("png", "svg"):
            f = run_dir / "plots" / f"{stem}.{ext}"
            assert f.is_file() and f.stat().st_size > 1000, f
    assert (run_dir / "plots" / "roofline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_links_resolve_and_html_is_self_contained(run_dir):
    md = (run_dir / "report.md").read_text()
    links = re.findall(r"\]\(([^)#]+)\)", md)
    assert len(links) >= 2 * len(PLOTS)
    for link in links:
        assert (run_dir / link).is_file(), link
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(PLOTS)
    assert "<table>" in html and "missing image" not in html
    assert "Network roll-up" in md and "tinynet" in md


def test_rollup_of_the_run(run_dir):
    tables = (run_dir / "tables.md").read_text()
    assert "### tinynet: 6 layers (3 unique shapes), batch 1" in tables
    assert "winograd_f4x3 | " in tables and "cannot run" in tables  # wino skips the strided layer


def test_rollup_arithmetic_on_literal_data():
    rows = []
    times = {("p1", "a"): 1.0, ("p1", "b"): 2.0, ("p2", "a"): 5.0, ("p2", "b"): 3.0, ("p3", "a"): 1.0}
    mult = {"p1": 2, "p2": 1, "p3": 4}
    for (p, b), t in times.items():
        rows.append(dict(problem=p, backend=b, status="passed", time_median_s=t, suite="net",
                         multiplicity=mult[p], weight_density=1.0, mb=1))
    rows.append(dict(problem="p3", backend="b", status="skipped", time_median_s=float("nan"), suite="net",
                     multiplicity=4, weight_density=1.0, mb=1))
    (r,) = rollups(pd.DataFrame(rows))
    assert r["layers"] == 7 and r["problems"] == 3
    assert r["totals"] == {"a": 2 * 1.0 + 5.0 + 4 * 1.0}
    assert r["incomplete"] == {"b": 4}
    assert r["oracle"] == 2 * 1.0 + 3.0 + 4 * 1.0
    assert r["picks"] == {"a": 6, "b": 1}


def test_missing_backends_and_columns(run_dir, tmp_path):
    d = tmp_path / "partial"
    shutil.copytree(run_dir, d)
    s = pd.read_csv(d / "summary.csv")
    s = s[s.backend == "im2col_blas"].drop(columns=["phase_input_s", "phase_multiply_s", "phase_output_s",
                                                     "flops_multiply", "suite", "multiplicity", "rel_err"])
    s.to_csv(d / "summary.csv", index=False)
    shutil.rmtree(d / "plots")
    w = write_report(d)
    assert (d / "report.html").is_file() and "roofline" in w["plots"]
    assert "rollup" not in w["plots"] and "parameters" not in w["plots"]
    assert main(["report", str(d), "--no-plots"]) == 0


def test_report_on_old_recorded_run(tmp_path):
    """Result directories recorded before the suite columns existed still report."""
    d = tmp_path / "old"
    shutil.copytree(DATA / "aa1", d)
    write_report(d)
    assert (d / "report.md").is_file()


def test_markdown_to_html_subset(tmp_path):
    html = markdown_to_html("# T\n\n- a `b` **c**\n\n| x | y |\n| :--- | ---: |\n| 1 \\| 2 | 3 |\n\n"
                            "![p](nope.png)\n", tmp_path)
    assert "<h1>T</h1>" in html and "<code>b</code>" in html and "<b>c</b>" in html
    assert "<td class=''>1 | 2</td>" in html and "missing image nope.png" in html
