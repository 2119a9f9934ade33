"""One thread count for every runtime."""

from __future__ import annotations

import os

import pytest

from convbench import threads


def test_set_threads_applies_to_blas_and_numba():
    threads.set_threads(1)
    rep = threads.thread_report()
    assert rep["requested"] == 1 and threads.get_threads() == 1
    blas = [tp for tp in rep["threadpools"] if tp["user_api"] == "blas"]
    assert blas and all(tp["num_threads"] == 1 for tp in blas)
    import numba
    assert numba.get_num_threads() == 1 and rep["numba"]["num_threads"] == 1


def test_bad_count_is_refused():
    with pytest.raises(ValueError, match="threads=0: must be >= 1"):
        threads.set_threads(0)


def test_preset_environment_for_a_fresh_process(monkeypatch):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("NUMBA_THREADING_LAYER", raising=False)
    threads.preset_environment(2)
    assert os.environ["OMP_NUM_THREADS"] == os.environ["OPENBLAS_NUM_THREADS"] == "2"
    assert os.environ["NUMBA_THREADING_LAYER"] == "workqueue"
    monkeypatch.setenv("NUMBA_THREADING_LAYER", "omp")
    threads.preset_environment(1)
    assert os.environ["NUMBA_THREADING_LAYER"] == "omp"  # the user's choice is kept
