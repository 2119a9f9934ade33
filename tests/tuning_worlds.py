"""Synthetic result directories of this machine whose winners are known, for `convbench tune`'s
tests: one where a model can beat the built-in rules, one where the rules are always right."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from convbench.backends import get_backend
from convbench.flops import direct_flops
from convbench.fuzz import fuzz_problems
from convbench.machine import machine_info
from convbench.problem import ConvProblem
from convbench.results import SCHEMA_VERSION
from convbench.select.rules import builtin_rule
from convbench.suites import load_suite

CANDS = ("im2col_blas", "direct_numba", "winograd_f4x3", "fft_pyfftw")


def learnable(p, b):
    """A machine where the rules are wrong in two regimes a model can learn: Winograd loses
    to direct convolution from 64 channels per group up, and FFT wins from 5x5 kernels on."""
    base = direct_flops(p) / 1e10 + 2e-6
    dw = p.icg == 1 and p.g > 1
    taps = math.prod(p.own("k"))
    return base * {"im2col_blas": 1.0,
                   "direct_numba": 0.5 if dw else (0.7 if p.icg >= 64 else 1.5),
                   "winograd_f4x3": 0.6 if p.icg < 64 else 1.4,
                   "fft_pyfftw": 0.8 if taps >= 25 else 3.0}[b]


def rules_are_right(p, b):
    """A machine where the built-in rules' backend is always 25% faster than the rest."""
    base = direct_flops(p) / 1e10 + 2e-6
    rule = builtin_rule(p)
    return base * (1.0 if b == rule else 1.25)


def _problems(seed):
    grid = [ConvProblem(mb=1, ic=c, oc=c, ih=s, iw=s, kh=k, kw=k, ph=k // 2, pw=k // 2)
            for c in (8, 16, 32, 64, 128, 256) for s in (14, 28, 56) for k in (3, 5)]
    return fuzz_problems(90, seed) + grid


def write_dir(path, problems, truth, suite, rng, noise=0.02):
    """A result directory of this machine: one passed row per supported (problem, backend),
    times from ``truth`` with lognormal noise, rounds and IQR like a real sweep's."""
    path.mkdir(parents=True)
    rows = []
    for p in problems:
        for b in CANDS:
            if get_backend(b).supports(p) is not None:
                continue
            t = truth(p, b) * float(np.exp(rng.normal(0, noise)))
            rows.append(dict(problem=p.label, descriptor=p.descriptor, suite=suite(p), kind="conv", backend=b,
                             status="passed", dtype="float32", threads=1, direction="fwd", weight_density=1.0,
                             time_median_s=t, time_iqr_s=t * noise, rounds=5, prepare_s=0.0, first_run_s=t))
    pd.DataFrame(rows).to_csv(path / "summary.csv", index=False)
    pd.DataFrame(columns=["problem", "backend", "time_s"]).to_csv(path / "samples.csv", index=False)
    (path / "meta.json").write_text(json.dumps({"tool": "convbench", "schema_version": SCHEMA_VERSION,
                                                "machine": machine_info(), "config": {}}))
    return path


def world(tmp_path, truth, seed=1):
    rng = np.random.default_rng(seed)
    fuzz = write_dir(tmp_path / "fuzz", _problems(seed), truth, lambda p: f"fuzz-{seed}", rng)
    nets = {}
    for s in ("resnet50", "vgg16", "mobilenet_v2"):
        probs = [e.problem for e in load_suite(s) if e.problem.kind == "conv"]
        nets[s] = probs
    tuned = write_dir(tmp_path / "nets", nets["resnet50"] + nets["mobilenet_v2"], truth,
                      lambda p: "resnet50" if p in nets["resnet50"] else "mobilenet_v2", rng)
    return fuzz, tuned, nets["vgg16"]


