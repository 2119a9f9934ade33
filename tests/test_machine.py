"""Machine provenance: sizes, the memory-limit variable, caches, commit, libraries, FFTW build."""

from __future__ import annotations

import sys

import pytest

from convbench import machine


@pytest.mark.parametrize("text, value", [("1000000", 1_000_000), ("4G", 4 << 30), ("512M", 512 << 20),
                                         ("1.5GiB", int(1.5 * (1 << 30))), ("64kb", 64 << 10), ("2t", 2 << 40)])
def test_parse_bytes(text, value):
    assert machine.parse_bytes(text) == value


@pytest.mark.parametrize("text", ["lots", "-4G", "0", "4Q", "", "inf"])
def test_parse_bytes_rejects(text):
    with pytest.raises(ValueError, match="is not a size; expected bytes such as 4G"):
        machine.parse_bytes(text, "--memory-limit")


def test_memory_limit_env_names_the_variable(monkeypatch):
    monkeypatch.delenv("CONVBENCH_MEMORY_LIMIT", raising=False)
    assert machine.memory_limit_env() is None
    monkeypatch.setenv("CONVBENCH_MEMORY_LIMIT", "2G")
    assert machine.memory_limit_env() == 2 << 30
    monkeypatch.setenv("CONVBENCH_MEMORY_LIMIT", "abc")
    with pytest.raises(ValueError, match="CONVBENCH_MEMORY_LIMIT 'abc' is not a size"):
        machine.memory_limit_env()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and /sys")
def test_memory_and_caches_from_the_system():
    total, avail = machine.memory_bytes("MemTotal"), machine.memory_bytes("MemAvailable")
    assert total > 0 and 0 < avail <= total
    assert machine.memory_bytes("NoSuchField") is None
    assert machine.cache_bytes(2) >= 64 << 10
    assert machine.cache_bytes(9, default=123) == 123  # no level-9 cache: the default


def test_git_commit_and_libraries():
    g = machine.git_commit()
    assert set(g) <= {"commit", "dirty", "date"} and {"commit", "dirty"} <= set(g)
    assert g["commit"] is None or len(g["commit"]) == 40
    libs = machine.library_versions()
    assert libs["numpy"] and libs["scipy"] and "torch" in libs


def test_fftw_build_names_its_codelets():
    pytest.importorskip("pyfftw")
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/maps")
    b = machine.fftw_build()
    assert b["version"].startswith("fftw-3") and "libfftw3f" in b["path"]
    assert set(b["simd_missing"]) <= {"sse2", "avx", "avx2", "avx512"}
    assert not set(b["simd_missing"]) & set(b["version"].split("-")[2:])  # a set it has is not missing


def test_peaks_are_measured_and_positive():
    p = machine.peak_gflops(0.05)
    assert p["sgemm_gflops"] > 1 and p["dgemm_gflops"] > 0.5
    info = machine.machine_info()
    assert info["cores"] >= 1 and info["l2_cache_bytes"] > 0 and info["blas"]["cpu_best"]
