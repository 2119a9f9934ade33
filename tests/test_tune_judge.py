"""`convbench tune` judged against the built-in rules (issue 26): synthetic result
directories whose winners are known decide both sides of the gate, auto's regret on held-out
network layers is never worse than the rules', the per-problem fallback, the judge's
arithmetic, selector file versions, `convbench info`'s chooser line and `tune --collect`'s
planning."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from convbench.backends import get_backend
from convbench.cli import main
from convbench.problem import ConvProblem
from convbench.select import auto, store
from convbench.select.judge import MIN_MARGIN, judge_protocol
from convbench.select.model import FORMAT_VERSION, Selector, SelectorFileError
from convbench.select.rules import builtin_rule
from convbench.suites import load_suite

from .tuning_worlds import CANDS, learnable, rules_are_right, world


@pytest.fixture(autouse=True)
def isolated_selector(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CONVBENCH_SELECTOR", raising=False)
    auto.reset()
    yield
    auto.reset()


def regret_on(layers, truth, choose):
    """Geometric-mean regret of ``choose`` over ``layers`` on the synthetic machine."""
    out = []
    for p in layers:
        adm = [b for b in CANDS if get_backend(b).supports(p) is None]
        t = {b: truth(p, b) for b in adm}
        out.append(math.log(t[choose(p, adm)] / min(t.values())))
    return math.exp(sum(out) / len(out))


def _rules(p, adm):
    r = builtin_rule(p)
    return r if r in adm else "im2col_blas"


def tune(dirs, sel_file, capsys, model="roofline") -> str:
    """`convbench tune DIRS --model MODEL --out SEL_FILE` over the synthetic backends; its stdout."""
    assert main(["tune", *map(str, dirs), "--model", model, "--candidates", ",".join(CANDS),
                 "--out", str(sel_file), "--quiet"]) == 0
    return capsys.readouterr().out


def test_a_selector_that_beats_the_rules_is_installed_and_auto_is_no_worse_on_unseen_layers(tmp_path, capsys):
    fuzz, nets, unseen = world(tmp_path, learnable)
    sel_file = tmp_path / "sel.json"
    out = tune([fuzz, nets], sel_file, capsys)
    assert "installed the roofline selector" in out and "expected regret" in out, out
    sel = [s for s in store.entries(sel_file)][0]
    judged = {j["protocol"]: j for j in sel.evaluation["judged"]}
    assert set(judged) == {"kfold", "lono"} and all(j["passed"] for j in judged.values())
    assert judged["lono"]["selector"] < judged["lono"]["rules"]
    # VGG-16 was in no tuning directory: auto through the installed file against the rules
    fitted = regret_on(unseen, learnable, lambda p, adm: sel.choose(p, adm))
    rules = regret_on(unseen, learnable, _rules)
    assert fitted <= rules and rules > 1.1, (fitted, rules)


def test_a_selector_that_cannot_beat_the_rules_is_not_installed_and_auto_keeps_them(tmp_path, capsys):
    fuzz, nets, unseen = world(tmp_path, rules_are_right)
    sel_file = tmp_path / "sel.json"
    out = tune([fuzz, nets], sel_file, capsys, "linear")
    line = [ln for ln in out.splitlines() if ln.startswith("tune: kept the built-in rules")]
    assert len(line) == 1 and "does not beat the rules'" in line[0] and "noise margin" in line[0], out
    entry = store.entries(sel_file)[0]
    assert entry.kind == "rules" and not entry.models and entry.evaluation["judged"]
    import os
    os.environ["CONVBENCH_SELECTOR"] = str(sel_file)
    try:
        auto.reset()
        info = auto.chooser()
        assert info["chooser"] == "rules" and info["judged"]
        from convbench.cli.info import _auto_line
        assert "the built-in rules (tune kept the built-in rules)" in _auto_line(info)
        got = regret_on(unseen, rules_are_right, lambda p, adm: auto.choose_for_problem(p, tuple(adm)))
    finally:
        del os.environ["CONVBENCH_SELECTOR"]
    assert got == pytest.approx(regret_on(unseen, rules_are_right, _rules))


def test_a_selector_judged_on_fuzzed_problems_only_is_not_installed(tmp_path, capsys):
    fuzz, _, _ = world(tmp_path, learnable)
    sel_file = tmp_path / "sel.json"
    out = tune([fuzz], sel_file, capsys, "linear")
    line = [ln for ln in out.splitlines() if ln.startswith("tune: kept the built-in rules")]
    assert len(line) == 1 and "beat them on fuzzed problems (kfold" in line[0], out
    assert "no network layers were measured" in line[0] and "tune --collect" in line[0]
    judged = store.entries(sel_file)[0].evaluation["judged"]
    assert [j["protocol"] for j in judged] == ["kfold"] and judged[0]["passed"]


def test_a_kept_rules_verdict_leaves_an_installed_selector_alone(tmp_path, capsys):
    fuzz, nets, _ = world(tmp_path, learnable)
    sel_file = tmp_path / "sel.json"
    assert "installed the linear selector" in tune([fuzz, nets], sel_file, capsys, "linear")
    before = sel_file.read_text()
    fuzz2, nets2, _ = world(tmp_path / "b", rules_are_right, seed=2)
    assert "kept the installed linear selector" in tune([fuzz2, nets2], sel_file, capsys, "linear")
    assert sel_file.read_text() == before


def test_judge_arithmetic_margin_and_bootstrap():
    rows = []
    for i in range(40):
        rows.append(dict(problem=f"p{i}", policy="selector", chosen="a", regret=1.0, se=0.01, unsure=False,
                         fallback=i < 4))
        rows.append(dict(problem=f"p{i}", policy="built-in rules", chosen="b" if i % 2 else "a",
                         regret=1.2 if i % 2 else 1.0, se=0.01, unsure=False, fallback=False))
        rows.append(dict(problem=f"p{i}", policy="best single", chosen="a", regret=1.5, se=0.0, unsure=False,
                         fallback=False))
    v = judge_protocol("kfold", pd.DataFrame(rows))
    assert v.problems == 40 and v.selector == pytest.approx(1.0) and v.best_single == pytest.approx(1.5)
    assert v.rules == pytest.approx(1.2 ** 0.5)
    assert v.gain == pytest.approx(0.5 * math.log2(1.2))
    # 20 problems whose picks differ, each adding 2 x 0.01^2; twice the standard error, floored at 1%
    assert v.margin == pytest.approx(max(MIN_MARGIN, 2 * math.sqrt(20 * 2e-4) / 40))
    assert v.passed and v.p == 0.0 and v.fallback == pytest.approx(0.1)
    tie = pd.DataFrame(rows).assign(regret=1.0)
    t = judge_protocol("kfold", tie)
    assert not t.passed and t.gain == 0 and t.p == 1.0


def test_unsure_picks_defer_to_the_rules_and_unknown_rule_backends_too(tmp_path):
    from convbench.select.data import load_measurements
    from convbench.select.model import fit_selector
    fuzz, nets, _ = world(tmp_path, learnable)
    meas = load_measurements([fuzz, nets])
    sel = fit_selector(meas, "roofline", list(CANDS))
    p = ConvProblem(mb=1, ic=32, oc=32, ih=28, iw=28, kh=3, kw=3, ph=1, pw=1)
    adm = [b for b in CANDS if get_backend(b).supports(p) is None]
    d = sel.decide(p, adm, builtin_rule(p))
    assert d.choice in adm and d.model in adm
    # without a model of the rules' backend, the model cannot rule it out: the rules decide
    del sel.models["winograd_f4x3"]
    d = sel.decide(p, adm, "winograd_f4x3")
    assert d.choice == "winograd_f4x3" and d.fallback and d.model != "winograd_f4x3"
    # a pick whose margin to the second is within the model's error goes to the rules when the
    # second is theirs
    sel.confidence.margin_error = lambda x, a, b: float("inf")
    pred = sel._predict(p, __import__("convbench.select.features", fromlist=["features"]).features(p)[None, :],
                        [b for b in adm if b in sel.models])
    second = sorted(pred, key=pred.get)[1]
    d = sel.decide(p, adm, second)
    assert d.choice == second and d.fallback and len(d.plausible) == 2
    sel.confidence.margin_error = lambda x, a, b: 0.0
    assert not sel.decide(p, adm, second).fallback


def test_selector_files_of_other_versions(tmp_path):
    sel = Selector(kind="rules", models={}, fingerprint={"cpu_model": "x", "cores": 2, "cpu_flags": []})
    path, _ = store.write(tmp_path / "s.json", sel)
    doc = json.loads(path.read_text())
    # older: never judged against the rules, so not used; moved aside (not merged) by the next write
    old = dict(doc, version=FORMAT_VERSION - 1)
    path.write_text(json.dumps(old))
    with pytest.raises(SelectorFileError, match="never judged against the built-in rules"):
        store.entries(path)
    store.write(path, sel)
    assert [f.name for f in tmp_path.glob("s.old-*.json")] and store.entries(path)[0].kind == "rules"
    # newer: never modified
    newer = dict(doc, version=FORMAT_VERSION + 1)
    path.write_text(json.dumps(newer))
    before = path.read_bytes()
    from convbench.select.model import NewerSelectorFile
    with pytest.raises(NewerSelectorFile):
        store.write(path, sel)
    assert path.read_bytes() == before


def test_tune_collect_bad_input_and_plan(tmp_path, capsys, monkeypatch):
    def err(argv):
        assert main(argv) == 2
        e = capsys.readouterr().err.strip()
        assert "\n" not in e and "Traceback" not in e
        return e
    assert "no result directories given" in err(["tune"])
    assert "only with --collect" in err(["tune", str(tmp_path), "--budget", "3"])
    assert "not a budget" in err(["tune", "--collect", "--budget", "0"])
    assert "not a budget" in err(["tune", "--collect", "--budget", "ten"])
    # the plan: suites first while they fit, then fuzz batches sized to what is left
    from convbench.cli import tune_collect
    calls = []

    class R:
        def __init__(self, n):
            self.problems, self.status, self.interrupted = n, 0, False

    clock = {"t": 0.0}
    monkeypatch.setattr(tune_collect.time, "monotonic", lambda: clock["t"])

    def fake_execute(**o):
        n = o.get("fuzz") or len(load_suite(o["suite"][0]))
        calls.append((o.get("suite", [None])[0], o.get("fuzz"), o.get("rank"), o.get("seed")))
        clock["t"] += 0.5 * n
        return R(n)
    monkeypatch.setattr("convbench.cli.run.execute", fake_execute)
    monkeypatch.chdir(tmp_path)
    dirs, status = tune_collect.collect(budget_min=3, log=lambda m: None)
    assert status == 0 and len(dirs) == len(calls)
    suites = [c[0] for c in calls if c[0]]
    assert suites == [s for s in tune_collect.SUITES][:len(suites)] and "resnet50" in suites
    fuzz = [c for c in calls if c[1]]
    assert fuzz and {c[2] for c in fuzz} <= {1, 2, 3} and len({c[3] for c in fuzz}) == len(fuzz)
    assert clock["t"] <= 180 + 0.5 * tune_collect.FUZZ_BATCH  # within the budget, give or take a batch
    # an interrupted part stops the collection, names the directory and returns its status
    msgs = []

    def interrupted(**o):
        r = R(3)
        r.interrupted = True
        return r
    monkeypatch.setattr("convbench.cli.run.execute", interrupted)
    dirs, status = tune_collect.collect(budget_min=3, log=msgs.append)
    assert status == 130 and len(dirs) == 1 and "every finished row is in results/collect-" in msgs[-1]
