"""The OpenBLAS kernel-set choice: ranks, what a CPU supports, applying it, reporting it."""

from __future__ import annotations

import pytest

from convbench import blas


def test_ranks_order_the_kernel_sets():
    assert blas.coretype_rank("Haswell") < blas.coretype_rank("SkylakeX") < blas.coretype_rank("SapphireRapids")
    assert blas.coretype_rank("zen") == blas.coretype_rank("haswell")  # an alias shares a rank
    assert blas.coretype_rank("Pentium9") == -1 and blas.coretype_rank(None) == -1


@pytest.mark.parametrize("flags, best", [
    ({"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx2", "fma"}, "SkylakeX"),
    ({"avx512f", "avx2", "fma", "avx"}, "Haswell"),  # partial AVX-512 is not enough for SkylakeX
    ({"avx2", "fma", "avx"}, "Haswell"), ({"avx"}, "Sandybridge"), ({"sse4_2"}, "Nehalem"), (set(), "Prescott")])
def test_best_coretype_from_flags(flags, best):
    assert blas.best_coretype(flags) == best


def test_apply_after_numpy_loaded_is_recorded_as_not_applied():
    import numpy  # noqa: F401
    rec = blas.apply_coretype("auto")
    assert rec["applied"] is False and "already loaded" in rec["note"]
    assert rec["target"] == blas.best_coretype()


def test_unknown_kernel_set_lists_the_accepted_ones():
    with pytest.raises(ValueError, match="accepted are auto, native or one of Prescott"):
        blas.apply_coretype("Pentium9")


def test_status_reports_loaded_libraries():
    st = blas.blas_status()
    assert st["cpu_best"] == blas.best_coretype()
    assert st["libraries"] and all("architecture" in lib for lib in st["libraries"])
    assert (st["warning"] is None) == (not st["below_cpu"])
