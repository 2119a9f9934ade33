"""``convbench publish`` and the interactive report, in Python and in a real browser.

The site is built from synthetic result directories: two machines (SkylakeX and Haswell BLAS
kernels), eight commits, two suites and two ranks, one backend 1.4x slower from the sixth commit
on. The browser tests open every page from ``file://`` in headless Debian Chromium
(``chromium`` + ``chromium-driver``, installed by ``.ci/run``) and skip, with the reason, where
either or selenium is missing. Screenshots of each page type go to ``$CONVBENCH_SCREENSHOTS``
when set.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from convbench.cli import main

pytest.importorskip("ruptures")
pytest.importorskip("plotly")

from convbench.site import MARKER, SITE_FORMAT, publish  # noqa: E402

from .test_history import MACHINES, write_run  # noqa: E402
PROBLEMS = [("mb1ic8ih16oc8kh3ph1", "ci", 2, 1.0), ("mb1ic4ih32oc4kh5ph2", "ci", 2, 2.0),
            ("mb1ic8iw64oc8kw3pw1", "wavenet", 1, 0.5)]
BACKENDS = {"im2col_blas": 1.0, "direct_numba": 1.2, "fft_scipy": 1.6}


def run_dir(path: Path, commit: str, day: int, machine: str, slow: float, rng) -> Path:
    path.mkdir(parents=True)
    cpu, blas = MACHINES[machine]
    summ, smp = [], []
    for prob, suite, rank, scale in PROBLEMS:
        for b, t in BACKENDS.items():
            base = 1e-4 * scale * t * (slow if b == "im2col_blas" else 1.0) * (1.3 if machine == "b" else 1.0)
            ts = base * np.exp(rng.normal(0, 0.01, 9))
            summ.append(dict(problem=prob, descriptor=prob, suite=suite, rank=rank, backend=b, status="passed",
                             weight_density=1.0, time_median_s=float(np.median(ts)),
                             time_q1_s=float(np.quantile(ts, .25)), time_q3_s=float(np.quantile(ts, .75)),
                             rounds=9, gflops_effective=3.5))
            smp += [dict(problem=prob, weight_density=1.0, backend=b, round=i, iterations=1, time_s=float(v))
                    for i, v in enumerate(ts)]
    summ.append(dict(problem="mb1ic8ih16oc8kh3ph1", descriptor="x", suite="ci", rank=2, backend="sparse_csr",
                     status="skipped", reason="over budget", weight_density=1.0))
    return write_run(path, summ, smp, commit, day, cpu, blas)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(7)
    dirs = []
    for i in range(8):
        for m in ("a", "b") if i % 2 == 0 else ("a",):
            dirs.append(run_dir(root / f"{m}-{i}", f"{i:02d}" + "e" * 38, i + 1, m, 1.4 if i >= 5 else 1.0, rng))
    return dirs


@pytest.fixture(scope="module")
def site(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "site"
    pages = publish(runs, out)
    return out, pages


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def _embedded(page: Path, id_: str):
    text = page.read_text()
    start = text.index(f'id="{id_}">') + len(f'id="{id_}">')
    return json.loads(text[start:text.index("</script>", start)].replace("<\\/", "</"))


def test_site_pages_and_their_data(site, runs):
    out, pages = site
    for name in ("index.html", "history.html", "compare.html", "plotly.min.js", "site.js", MARKER):
        assert (out / name).is_file(), name
    assert len(pages["runs"]) == len(runs) and all(p.is_file() for p in pages["runs"])
    assert out.stat().st_mode & 0o055 == 0o055 & ~_umask()  # readable by whoever serves it
    series = _embedded(out / "history.html", "history-data")["series"]
    assert len(series) == 2 * len(PROBLEMS) * len(BACKENDS)  # per machine, never mixed
    slowed = [s for s in series if s["backend"] == "im2col_blas" and s["machine_label"].startswith("CPU A")]
    assert all(len(s["median"]) == 8 and len(s["steps"]) == 1 for s in slowed)
    assert all(s["commits"][s["steps"][0]["at"]].startswith("05") and 1.3 < s["steps"][0]["ratio"] < 1.5
               for s in slowed)
    assert all(not s["steps"] for s in series if s["backend"] != "im2col_blas")
    rows = _embedded(pages["runs"][0], "run-data")["rows"]
    assert {r["suite"] for r in rows} == {"ci", "wavenet"} and {r["rank"] for r in rows} == {1, 2}
    assert any(r["status"] == "skipped" for r in rows)
    assert "regression" in (out / "index.html").read_text()


def test_publish_bad_input_is_one_line_and_exit_2(runs, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["publish", str(runs[0]), "--out", str(mine)]) == 2
    assert "not empty and was not written by convbench publish" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep me"
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / MARKER).write_text(json.dumps({"format": SITE_FORMAT + 1}))
    assert main(["publish", str(runs[0]), "--out", str(newer)]) == 2
    assert "written by a newer convbench" in capsys.readouterr().err
    blind = tmp_path / "blind"
    shutil.copytree(runs[0], blind)
    meta = json.loads((blind / "meta.json").read_text())
    del meta["machine"]
    (blind / "meta.json").write_text(json.dumps(meta))
    for cmd in (["publish", str(blind), "--out", str(tmp_path / "s2")], ["history", str(blind), str(runs[1])]):
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert "records no machine fingerprint" in err and len(err.strip().splitlines()) == 1
    # a site publish wrote is replaced whole
    own = tmp_path / "own"
    publish(runs[:2], own)
    assert main(["publish", *map(str, runs[:3]), "--out", str(own)]) == 0
    assert (own / "run-2.html").is_file()


def test_history_of_directories_with_nothing_in_common_is_refused(runs, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(runs[1], other)
    df = pd.read_csv(other / "summary.csv")
    df["problem"] = df.problem + "x"
    df.to_csv(other / "summary.csv", index=False)
    smp = pd.read_csv(other / "samples.csv")
    smp["problem"] = smp.problem + "x"
    smp.to_csv(other / "samples.csv", index=False)
    assert main(["history", str(runs[0]), str(other)]) == 2
    assert "have nothing in common" in capsys.readouterr().err


def test_report_html_has_the_interactive_figure_beside_the_static_ones(tmp_path):
    from convbench.reporting import write_report
    d = tmp_path / "run"
    shutil.copytree(Path(__file__).parent / "data" / "aa1", d)
    write_report(d, plots=False, interactive=True)
    page = (d / "report.html").read_text()
    assert "Interactive figure" in page and 'src="plotly.min.js"' in page and (d / "plotly.min.js").is_file()
    assert _embedded(d / "report.html", "run-data")["rows"]


# ---------------------------------------------------------------------------- in a real browser
def _driver():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the test extra has it)")
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    drv = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
    if not chrome or not drv:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver (apt, as root; .ci/run does)")
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
              "--allow-file-access-from-files"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=drv), options=opts)


@pytest.fixture(scope="module")
def browser():
    d = _driver()
    try:
        yield d
    finally:
        d.quit()


def _open(browser, page: Path):
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get(page.resolve().as_uri())
    WebDriverWait(browser, 30).until(lambda b: b.execute_script(
        "var f = document.getElementById('fig'); return !f || f.querySelector('.main-svg') !== null;"))


def _errors(browser) -> list:
    return [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]


def _figure_rendered(browser) -> int:
    """Points drawn in the page's figure (its SVG is non-empty)."""
    return browser.execute_script("return document.querySelectorAll('#fig .scatterlayer .point').length;")


def _hover_text(browser) -> str:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait
    pt = browser.find_elements("css selector", "#fig .scatterlayer .point")[0]
    ActionChains(browser).move_to_element(pt).perform()
    WebDriverWait(browser, 10).until(lambda b: b.find_elements("css selector", "#fig .hoverlayer .hovertext"))
    return browser.find_element("css selector", "#fig .hoverlayer .hovertext").text


def _shot(browser, name: str) -> None:
    where = os.environ.get("CONVBENCH_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        browser.execute_script("var f = document.getElementById('fig'); if (f && arguments[0]) f.scrollIntoView();",
                               name == "report")
        browser.save_screenshot(str(Path(where) / f"{name}.png"))


def test_every_page_loads_without_console_errors_and_draws(browser, site):
    out, pages = site
    for page in [pages["index"], pages["history"], pages["compare"], pages["runs"][0]]:
        _open(browser, page)
        assert _errors(browser) == [], page.name
        if page.name != "index.html":
            assert _figure_rendered(browser) > 0, page.name
        _shot(browser, page.stem if not page.name.startswith("run-") else "run")
    _open(browser, pages["history"])
    assert browser.find_element("id", "count").text == "2 machine(s), 12 points, 2 step(s) and 0 drift(s) beyond 1.1x"
    assert browser.execute_script("return document.querySelectorAll('#fig .shapelayer path').length;") >= 2


def test_a_filter_changes_the_visible_rows_and_the_figure(browser, site):
    from selenium.webdriver.support.ui import Select
    _, pages = site
    _open(browser, pages["runs"][0])

    def visible():
        return browser.execute_script(
            "return Array.from(document.querySelectorAll('#rows tbody tr')).filter(r => r.style.display !== 'none').length;")
    n_all, pts_all = visible(), _figure_rendered(browser)
    Select(browser.find_element("css selector", "select[name=backend]")).select_by_value("fft_scipy")
    assert visible() == len(PROBLEMS) < n_all
    assert _figure_rendered(browser) == len(PROBLEMS) < pts_all
    Select(browser.find_element("css selector", "select[name=rank]")).select_by_value("1")
    assert visible() == 1
    assert browser.find_element("id", "count").text == f"1 of {n_all} rows shown"
    assert _errors(browser) == []


def test_hover_shows_the_cells_median(browser, site, tmp_path):
    _, pages = site
    _open(browser, pages["runs"][0])
    text = _hover_text(browser)
    rows = _embedded(pages["runs"][0], "run-data")["rows"]
    assert "median:" in text and "IQR:" in text and "commit: 00eeeeeeee" in text
    medians = [browser.execute_script("return convbench.fmtTime(arguments[0]);", r["median"]) for r in rows
               if r["status"] == "passed"]
    assert any(m in text for m in medians), text
    _open(browser, pages["history"])
    assert "median:" in _hover_text(browser)
    _open(browser, pages["compare"])
    assert "median:" in _hover_text(browser)
    # the run's own report.html, opened from disk: same figure, same tooltip
    from convbench.reporting import write_report
    d = tmp_path / "run"
    shutil.copytree(Path(__file__).parent / "data" / "aa1", d)
    write_report(d, plots=False, interactive=True)
    _open(browser, d / "report.html")
    assert _errors(browser) == [] and _figure_rendered(browser) > 0
    text = _hover_text(browser)
    assert "median:" in text and "backend:" in text
    _shot(browser, "report")
