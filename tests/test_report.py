"""Report generation: every file, resolvable links, roll-up arithmetic, missing data."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from convbench.cli import main
from convbench.reporting import rollups, write_report
from convbench.reporting.document import Figure, Section, Table, to_html, to_markdown

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


def _table(md: str, heading: str) -> list[list[str]]:
    """The rows of the first Markdown table under ``heading``."""
    part = md.split("## " + heading, 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in part.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[2:]]


def test_tables_say_what_the_rows_say(run_dir):
    from convbench.results import load_summary
    df = load_summary(run_dir)
    md = (run_dir / "tables.md").read_text()
    fastest = {r[0]: r for r in _table(md, "Fastest backend per problem")}
    ok = df[df.status == "passed"]
    for prob, g in ok.groupby("problem"):
        best = g.loc[g.time_median_s.idxmin()]
        assert fastest[prob][1].startswith(f"**{best.backend}**"), (prob, fastest[prob])
    medians = {r[0]: r for r in _table(md, "Median time per call")}
    headers = md.split("## Median time per call", 1)[1].splitlines()[2].strip("|").split(" | ")
    col = [h.strip() for h in headers].index("winograd_f4x3")
    strided = next(p for p in medians if "sh2" in p)
    assert medians[strided][col].startswith("skip [")  # refused, with its footnote
    n = int(medians[strided][col].split("[")[1].rstrip("]"))
    notes = md.split("## Skipped, mistrusted and failed cells", 1)[1]
    assert f"{n}. skipped: stride 2x2 not supported" in notes


def test_report_files_share_one_list_of_sections(run_dir):
    tables = (run_dir / "tables.md").read_text()
    md = (run_dir / "report.md").read_text()
    html = (run_dir / "report.html").read_text()
    heads = [ln[3:] for ln in tables.splitlines() if ln.startswith("## ")]
    md_heads = [ln[3:] for ln in md.splitlines() if ln.startswith("## ")]
    assert md_heads == ["Figures"] + heads  # the figures right after the header
    import html as _html
    plain = _html.unescape(html.replace("<code>", "").replace("</code>", ""))
    for h in heads:
        assert f"<h2>{h.replace('`', '')}</h2>" in plain
    for stem in PLOTS:
        for ext in ("png", "svg"):
            f = run_dir / "plots" / f"{stem}.{ext}"
            assert f.is_file() and f.stat().st_size > 1000, f
    assert (run_dir / "plots" / "roofline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
    """A schema-v1 directory (recorded before the suite and count columns existed) still
    reports, with the counts derived from its descriptors."""
    d = tmp_path / "old"
    shutil.copytree(DATA / "aa1", d)
    write_report(d)
    md = (d / "report.md").read_text()
    params = {r[0]: r for r in _table(md, "Why convolution beats a dense layer")}
    row = next(r for p, r in params.items() if p.startswith("mb1ic16ih28oc16kh3ph1"))
    assert row[1] == "1.57e+08" or row[1] == "157M"  # (16*28*28)^2 dense weights
    assert row[3] == "2.3k"  # 16*16*9 shared weights


def test_a_failing_section_is_left_out_with_a_warning(run_dir, tmp_path, monkeypatch):
    from convbench.reporting import sections
    d = tmp_path / "copy"
    shutil.copytree(run_dir, d)

    def boom(data):
        raise ZeroDivisionError("division by zero")
    monkeypatch.setitem(sections.SECTIONS, "arithmetic", boom)
    warnings = []
    write_report(d, plots=False, warn=warnings.append)
    md = (d / "tables.md").read_text()
    assert warnings == ["warning: report section 'arithmetic' skipped (ZeroDivisionError: division by zero)"]
    assert "## Arithmetic" not in md and "## Fastest backend per problem" in md and "## Error against" in md


def test_document_renders_to_markdown_and_html(tmp_path):
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "f.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    doc = [Section("T", level=1, blocks=["- a `b` **c**"]),
           Section("S", intro="why", blocks=[Table(["x", "y"], [["1 | 2", "3"]]),
                                             Figure("Fig", "what", "plots/f.png", "plots/f.svg")])]
    md = to_markdown(doc)
    assert md.startswith("# T\n") and "## S\n\nwhy" in md and "| 1 \\| 2 | 3 |" in md
    assert "![Fig](plots/f.png)" in md and "([SVG](plots/f.svg))" in md
    html = to_html(doc, tmp_path)
    assert "<h1>T</h1>" in html and "<code>b</code>" in html and "<strong>c</strong>" in html
    assert ">1 | 2</td>" in html and "text-align: right" in html
    assert 'src="data:image/png;base64,' in html and "plots/f.png" not in html.split("SVG")[0]
