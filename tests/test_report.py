"""Report generation: every file, resolvable links, roll-up arithmetic, missing data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from convbench.cli import main
from convbench.reporting import rollups, write_report
from convbench.reporting.data import activations, training_layers
from convbench.reporting.document import Figure, Section, Table, to_html, to_markdown

DATA = Path(__file__).parent / "data"
PLOTS = ("time_vs_size", "winner_map", "roofline", "reduction_vs_speedup", "error", "rollup", "parameters",
         "activations")


def _run_suite(d: Path, name: str, text: str, *extra: str) -> Path:
    """Run suite file ``name`` (contents ``text``) on a short budget into ``d/r``."""
    suite = d / name
    suite.write_text(text)
    out = d / "r"
    argv = ["run", "--suite-file", str(suite), "--out", str(out), "--quiet", "--min-time", "0.005",
            "--max-time", "0.02", "--min-rounds", "2", *extra]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return _run_suite(tmp_path_factory.mktemp("rep"), "tinynet.txt",
                      'mb1ic4ih10oc4kh3ph1n"tiny:a"  # x3\n'
                      'mb1ic4ih14oc8kh3sh2ph1n"tiny:b"\n'
                      'mb1ic1ih24oc1kh5ph2n"tiny:c"  # x2\n',
                      "--backends", "direct_numba,im2col_blas,winograd_f4x3,fft_scipy,sparse_csr,dense_matrix")


def _table(md: str, heading: str) -> list[list[str]]:
    """The rows of the first Markdown table under ``heading``."""
    part = md.split("## " + heading, 1)[1].split("\n## ", 1)[0]
    lines = []
    for ln in part.splitlines():
        if ln.startswith("|"):
            lines.append(ln)
        elif lines:
            break
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


def test_fraction_of_peak_names_the_bound_and_the_fastest_own_backend(run_dir):
    """Each problem's bound from its intensity against the measured machine balance, and the
    fastest own backend's share of the FMA peak (executed FLOPs) or of the DRAM copy bandwidth."""
    import json
    from convbench.results import load_summary
    meta = json.loads((run_dir / "meta.json").read_text())
    fma, bw = meta["peaks"]["fma_gflops"], meta["peaks"]["stream"]["copy_dram_gbs"]
    df = load_summary(run_dir)
    rows = _table((run_dir / "tables.md").read_text(), "Fraction of this machine's peak")
    assert len(rows) == df.problem.nunique()
    for prob, intensity, bound, best in (r[:4] for r in rows):
        g = df[(df.problem == prob) & (df.status == "passed")]
        first = g.iloc[0]
        compute = first.flops_direct / first.bytes_io >= fma / bw
        assert bound == ("compute (FMA)" if compute else "memory (DRAM)")
        assert float(intensity) == pytest.approx(first.flops_direct / first.bytes_io, abs=0.051)
        fastest = g.loc[g.time_median_s.idxmin()]
        share = (fastest.flops_executed / fastest.time_median_s / 1e9 / fma if compute
                 else fastest.bytes_io / fastest.time_median_s / 1e9 / bw)
        assert best == f"{fastest.backend} {share:.0%}"


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
    assert "### tinynet, inference (fwd): 6 layers (3 unique shapes), batch 1" in tables
    assert "winograd_f4x3 | " in tables and "cannot run" in tables  # wino skips the strided layer


def test_rollup_arithmetic_on_literal_data():
    rows = []
    times = {("p1", "a"): 1.0, ("p1", "b"): 2.0, ("p2", "a"): 5.0, ("p2", "b"): 3.0, ("p3", "a"): 1.0}
    mult = {"p1": 2, "p2": 1, "p3": 4}
    for (p, b), t in times.items():
        rows.append(dict(problem=p, layer=p, role="own", backend=b, status="passed", time_median_s=t, suite="net",
                         multiplicity=mult[p], weight_density=1.0, mb=1))
    rows.append(dict(problem="p3", layer="p3", role="own", backend="b", status="skipped", time_median_s=float("nan"),
                     suite="net",
                     multiplicity=4, weight_density=1.0, mb=1))
    (r,) = rollups(pd.DataFrame(rows))
    assert r["pass_name"] == "inference" and r["pool_layers"] == 0
    assert r["layers"] == 7 and r["problems"] == 3
    assert r["totals"] == {"a": 2 * 1.0 + 5.0 + 4 * 1.0}
    assert r["incomplete"] == {"b": 4}
    assert r["oracle"] == 2 * 1.0 + 3.0 + 4 * 1.0
    assert r["picks"] == {"a": 6, "b": 1}


def _cells(spec: dict) -> pd.DataFrame:
    """Literal result rows: ``{(label, direction, backend): seconds or None (skipped)}``."""
    mult = {"conv1": 2, "pool1": 1}
    rows = []
    for (label, d, b), t in spec.items():
        kind = "pool" if label.startswith("--alg") else "conv"
        knob = {"fwd": "", "bwd_d": "--dir=BWD_D ", "bwd_w": "--dir=BWD_W "}[d]
        name = "pool1" if kind == "pool" else "conv1"
        rows.append(dict(problem=knob + label, layer=label, backend=b, status="passed" if t is not None else "skipped",
                         time_median_s=t if t is not None else float("nan"), suite="net", kind=kind,
                         direction=d, multiplicity=mult[name], weight_density=1.0, mb=1, name=name,
                         role="peer" if b.endswith("torch") or b.startswith("torch") else "own"))
    return pd.DataFrame(rows)


CONV, POOL = 'mb1ic4ih8oc4kh3ph1n"conv1"', '--alg=max mb1ic4ih8kh2sh2n"pool1"'
SPEC = {(CONV, "fwd", "own"): 1.0, (CONV, "fwd", "torch_onednn"): 2.0,
        (CONV, "bwd_d", "own"): 3.0, (CONV, "bwd_d", "torch_onednn"): 1.5,
        (CONV, "bwd_w", "own"): 2.0, (CONV, "bwd_w", "torch_onednn"): None,
        (POOL, "fwd", "pool_numba"): 0.5, (POOL, "fwd", "pool_torch"): 0.25,
        (POOL, "bwd_d", "pool_numba"): 0.125, (POOL, "bwd_d", "pool_torch"): 1.0}


def test_a_cells_layer_drops_only_the_direction():
    from convbench.cells import Cell
    from convbench.problem import parse_problem
    assert Cell(parse_problem("--dir=BWD_W --dt=f64 " + CONV)).layer == "--dt=f64 " + CONV
    assert Cell(parse_problem("--dir=BWD_D " + POOL)).layer == POOL


def test_rollups_per_pass_with_pooling_companions():
    inf, train = rollups(_cells(SPEC))
    assert (inf["pass_name"], train["pass_name"]) == ("inference", "training step")
    assert inf["layers"] == 3 and inf["pool_layers"] == 1 and inf["problems"] == 2
    # own backends pool on the fastest own pooler (numba); torch on its own pool_torch (a peer)
    assert inf["totals"] == {"own": 2 * 1.0 + 0.5, "torch_onednn": 2 * 2.0 + 0.25}
    assert inf["companions"] == {"own": "pool_numba", "torch_onednn": "pool_torch"}
    assert inf["pool_share"]["own"] == pytest.approx(0.5 / 2.5)
    assert inf["oracle"] == 2 * 1.0 + 0.25
    assert inf["picks"] == {"own": 2, "pool_torch": 1}
    # training: conv fwd+bwd_d+bwd_w, pool fwd+bwd_d; torch lacks bwd_w of conv1 (x2)
    assert train["totals"] == {"own": 2 * (1.0 + 3.0 + 2.0) + 0.5 + 0.125}
    assert train["incomplete"] == {"torch_onednn": 2} and train["cells"] == 6  # conv1 x2, 3 directions
    assert train["oracle"] == 2 * (1.0 + 1.5 + 2.0) + 0.25 + 0.125
    assert train["oracle_pool_share"] == pytest.approx(0.375 / train["oracle"])


def test_training_layers_per_direction_and_per_backend():
    (g,) = training_layers(_cells(SPEC))
    conv, pool = g["layers"]
    assert conv["best"] == {"fwd": (1.0, "own"), "bwd_d": (1.5, "torch_onednn"), "bwd_w": (2.0, "own")}
    assert conv["step"] == 4.5 and conv["per_backend"] == {"own": 6.0}  # torch lacks bwd_w
    assert pool["best"] == {"fwd": (0.25, "pool_torch"), "bwd_d": (0.125, "pool_numba")}
    assert pool["per_backend"] == {"pool_numba": 0.625, "pool_torch": 1.25}
    # a layer run in the forward direction only makes no training table
    fwd_only = {k: v for k, v in SPEC.items() if k[1] == "fwd"}
    assert training_layers(_cells(fwd_only)) == []
    assert [r["pass_name"] for r in rollups(_cells(fwd_only))] == ["inference"]


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory):
    return _run_suite(tmp_path_factory.mktemp("mixed"), "mininet.txt",
                      'mb1ic4ih16oc8kh3ph1n"mini:conv1"\n'
                      '--alg=max mb1ic8ih16kh2sh2n"mini:pool1"\n'
                      'mb1ic8ih8oc8kh3ph1n"mini:conv2"  # x2\n'
                      '--alg=avg_p mb1ic8ih8kh8n"mini:gap"\n',
                      "--direction", "all", "--backends", "direct_numba,im2col_blas,pool_numba,pool_numpy")


def test_report_of_a_training_run_with_pooling(mixed_dir):
    from convbench.results import load_meta, load_summary
    df = load_summary(mixed_dir)
    assert set(df.direction) == {"fwd", "bwd_d", "bwd_w"}
    assert set(df[df.kind == "pool"].direction) == {"fwd", "bwd_d"}
    md = (mixed_dir / "tables.md").read_text()
    assert "### mininet, inference (fwd): 5 layers, 2 of them pooling (4 unique shapes), batch 1" in md
    assert "### mininet, training step (fwd + bwd_d + bwd_w): 5 layers, 2 of them pooling" in md
    # conv sections pivot conv backends only; pooling has its own section
    heads = md.split("## Median time per call", 1)[1].splitlines()[2]
    assert "im2col_blas" in heads and "pool_numba" not in heads
    pool = {r[0]: r for r in _table(md, "Pooling: bytes moved and bandwidth")}
    label = '--alg=max mb1ic8ih16kh2sh2n"mini:pool1"'
    assert pool[label][1] == "10.0 KiB"  # (8*16*16 + 8*8*8) float32
    dram = load_meta(mixed_dir)["peaks"]["stream"]["copy_dram_gbs"]
    best = df[(df.problem == label) & (df.status == "passed")].sort_values("time_median_s").iloc[0]
    assert pool[label][5].rstrip("%") == f"{best.gbs_effective / dram * 100:.0f}"
    train = _table(md, "Training step per layer (fwd, bwd_d, bwd_w)")
    assert [r[0] for r in train[:4]] == ["mini:conv1", "mini:pool1", "mini:conv2", "mini:gap"]
    acts = {r[0]: r for r in _table(md, "Activation size through the network")}
    assert acts["mini:pool1"][3] == "8x8x8" and acts["mini:pool1"][6] == "4.00x"
    assert acts["mini:gap"][3] == "8x1x1"
    (net,) = activations(df)
    assert [it["kind"] for it in net["layers"]] == ["conv", "pool", "conv", "pool"]
    assert (mixed_dir / "plots" / "activations.png").stat().st_size > 1000
    assert "Pooling against the bandwidth roof" in (mixed_dir / "plots" / "roofline.svg").read_text()


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


def test_rows_from_different_machines_are_warned_about_and_grouped():
    from convbench.reporting.data import ReportData
    from convbench.reporting.sections import build_sections
    rows = []
    for host, (ta, tb) in (("h1", (1.0, 2.0)), ("h2", (3.0, 1.5))):
        for b, t in (("a", ta), ("b", tb)):
            rows.append(dict(problem=f"p_{host}", backend=b, status="passed", time_median_s=t, host=host,
                             worker="0", weight_density=1.0, algorithm=b, reason="", note="", kind="conv"))
    fp = dict(cpu_model="X", blas=["openblas 0.3 (Haswell)"], fftw="f", versions={"numpy": "2"})
    meta = {"executor": {"kind": "dask", "workers": None, "scheduler": "tcp://h:1"},
            "hosts": {"h1": fp, "h2": dict(fp, cpu_model="Y")}}
    secs = {s.key: s for s in build_sections(ReportData(pd.DataFrame(rows), meta, None),
                                             keys=["header", "machines"])}
    md = to_markdown(list(secs.values()))
    assert "rows were measured on 2 different machine kinds (h1; h2)" in md
    assert "Machine kind 1 (h1)" in md and "| p_h1 | **a** |" in md
    assert "Machine kind 2 (h2)" in md and "| p_h2 | **b** |" in md
    # one machine kind: no warning, no per-kind tables
    meta["hosts"]["h2"] = fp
    md = to_markdown(build_sections(ReportData(pd.DataFrame(rows), meta, None), keys=["header", "machines"]))
    assert "different machine kinds" not in md and "Machine kind 1 (h1, h2)" not in md


def test_a_run_of_every_rank_says_its_winners_and_gaps_per_rank(tmp_path):
    d = _run_suite(tmp_path, "ranks.txt",
                   'mb1ic2ih12oc2kh3ph1n"img"\nmb1ic2id6oc2kd3pd1n"vol"\nmb1ic2iw40oc2kw3pw1n"seq"\n',
                   "--backends", "direct_numba,im2col_blas,dense_matrix")
    md = (d / "tables.md").read_text() + (d / "report.md").read_text()
    glance = md.split("## At a glance", 1)[1].split("\n## ", 1)[0]
    assert "By spatial rank: 1-D (1): " in glance and "; 2-D (1): " in glance and "; 3-D (1): " in glance
    fastest = {r[0]: r for r in _table(md, "Fastest backend per problem")}
    assert {r[-1] for r in fastest.values()} == {"1-D", "2-D", "3-D"}
    params = md.split("## Why convolution beats a dense layer", 1)[1].split("\n## ", 1)[0]
    for r, name, dense, conv in ((1, "seq", (2 * 40) ** 2, 2 * 2 * 3), (3, "vol", (2 * 6 ** 3) ** 2, 2 * 2 * 27)):
        assert f"In {r}-D the largest gap is `" in params and f"({dense / conv:.3g}x fewer)" in params, name
    # 82944 / 36 = 2304x in 2-D against 186624 / 108 = 1728x in 3-D: the volume's 27 taps per weight
    assert "The widest gap of this run is in 2-D" in params
