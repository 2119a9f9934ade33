"""Provenance: what machine, libraries, threads and commit produced a result.

Everything a reader needs to judge whether two result directories are comparable
(``convbench compare`` warns when these differ) and to reproduce a run.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import __version__
from .blas import best_coretype, blas_status, cpu_flags, cpu_model

__all__ = ["machine_info", "library_versions", "git_commit", "peak_gflops", "roofline_peaks", "cache_bytes",
           "memory_bytes", "memory_limit_env", "parse_bytes", "fftw_build", "stream_bandwidth", "host_fingerprint",
           "comparable"]

_FLAGS_OF_INTEREST = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512cd", "avx512bw",
                      "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile", "neon", "asimd")
_LIBS = ("numpy", "scipy", "numba", "llvmlite", "pyfftw", "pandas", "threadpoolctl", "torch",
         "matplotlib", "pytest-benchmark")


def library_versions() -> dict:
    out = {}
    for name in _LIBS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> dict:
    """Commit, dirty flag and commit date of the convbench checkout (None outside a git checkout)."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10).stdout.strip())
        date = None
        if sha:
            date = subprocess.run(["git", "-C", str(root), "show", "-s", "--format=%cI", "HEAD"], capture_output=True,
                                  text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": sha, "dirty": dirty if sha else None, "date": date}


def cache_bytes(level: int = 2, default: int = 1 << 20) -> int:
    """Size of this CPU's level-``level`` data/unified cache (per core), from sysfs."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    try:
        for idx in sorted(base.glob("index*")):
            if int((idx / "level").read_text()) == level and (idx / "type").read_text().strip() != "Instruction":
                text = (idx / "size").read_text().strip().upper()
                mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
                return int(text.rstrip("KMG")) * mult
    except (OSError, ValueError):
        pass
    return default


def memory_bytes(field: str = "MemTotal") -> int | None:
    """A ``/proc/meminfo`` field in bytes (None off Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40,
          "tib": 1 << 40}


def parse_bytes(text, what: str = "size") -> int:
    """``4G``, ``512M``, ``1.5GiB`` or ``1000000`` as bytes (binary units).

    Raises
    ------
    ValueError
        Naming ``what`` and the accepted forms.
    """
    t = str(text).strip().lower()
    num = t.rstrip("kmgtib")
    unit = t[len(num):]
    try:
        v = float(num)
    except ValueError:
        v = -1.0
    if not v > 0 or v == float("inf") or unit not in _UNITS:
        raise ValueError(f"{what} {text!r} is not a size; expected bytes such as 4G, 512M or 1000000")
    return int(v * _UNITS[unit])


def memory_limit_env() -> int | None:
    """``CONVBENCH_MEMORY_LIMIT`` in bytes (None when unset); a bad value is a ValueError
    naming the variable."""
    env = os.environ.get("CONVBENCH_MEMORY_LIMIT")
    if env is None or env.strip() == "":
        return None
    return parse_bytes(env, "CONVBENCH_MEMORY_LIMIT")


#: FFTW's SIMD codelet sets, as its version string names them, and the CPU flag each needs
_FFTW_SIMD = {"sse2": "sse2", "avx": "avx", "avx2": "avx2", "avx512": "avx512f"}


def fftw_build() -> dict | None:
    """The single-precision FFTW library pyFFTW loaded: its own version string (which
    names the SIMD codelet sets compiled in, e.g. ``fftw-3.3.5-sse2-avx``), path, and
    the sets this CPU could run but the build lacks.

    FFT speed here is bounded by those codelets: the pyFFTW wheels bundle an SSE2/AVX
    build, so on an AVX-512 CPU the transforms run 256-bit without FMA while oneDNN's JIT
    uses the whole width (an FFTW 3.3.10 built here with AVX2/AVX-512 codelets ran the
    same 2-D transform pairs 5-17% faster, measured). None without pyFFTW or off Linux.
    """
    try:
        import pyfftw  # noqa: F401  (loads libfftw3f)
    except ImportError:
        return None
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "libfftw3f" in line
                            and not any(t in line for t in ("_omp", "_threads"))})
        for path in paths:
            version = (ctypes.c_char * 128).in_dll(ctypes.CDLL(path), "fftwf_version").value.decode()
            flags, built = cpu_flags(), set(version.split("-")[2:])
            missing = [k for k, flag in _FFTW_SIMD.items() if flag in flags and k not in built]
            return {"version": version, "path": path, "simd_missing": missing}
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    return None


def machine_info() -> dict:
    flags = cpu_flags()
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
        "cpu_flags": [f for f in _FLAGS_OF_INTEREST if f in flags],
        "cores": os.cpu_count(),
        "memory_bytes": memory_bytes(),
        "l2_cache_bytes": cache_bytes(2),
        "openblas_best_coretype": best_coretype(flags),
        "blas": blas_status(),
        "convbench": __version__,
        "libraries": library_versions(),
    }


_FINGERPRINT: dict | None = None


def host_fingerprint() -> dict:
    """What makes this process's timings comparable with another's: the host, CPU, BLAS
    library and kernel set, the FFTW build and the library versions (cached per process)."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        m = machine_info()
        blas = m.get("blas", {}) or {}
        fftw = fftw_build() or {}
        _FINGERPRINT = dict(
            host=socket.gethostname(), cpu_model=m.get("cpu_model"), cores=m.get("cores"),
            blas=[f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')})"
                  for lib in blas.get("libraries", [])],
            fftw=fftw.get("version") if isinstance(fftw, dict) else str(fftw),
            versions=library_versions())
    return _FINGERPRINT


def comparable(fp: dict) -> tuple:
    """The parts of a fingerprint two hosts must share for their times to share a table."""
    return (fp.get("cpu_model"), tuple(fp.get("blas") or ()), fp.get("fftw"),
            tuple(sorted((fp.get("versions") or {}).items())))


def peak_gflops(seconds: float = 1.0, threads: int | None = None) -> dict:
    """Measured sgemm and dgemm GFLOP/s on this machine (best of repeated 1024^3 GEMMs)."""
    import numpy as np
    from threadpoolctl import threadpool_limits
    out = {}
    n = 1024
    with threadpool_limits(threads) if threads else _null():
        for name, dt in (("sgemm", np.float32), ("dgemm", np.float64)):
            a = np.random.default_rng(0).standard_normal((n, n)).astype(dt)
            b = a.copy()
            c = np.empty_like(a)
            np.matmul(a, b, out=c)
            best = float("inf")
            t_end = time.perf_counter() + seconds / 2
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                np.matmul(a, b, out=c)
                best = min(best, time.perf_counter() - t0)
            out[name + "_gflops"] = 2 * n ** 3 / best / 1e9
    return out


def fma_peak_gflops(seconds: float = 0.15, chains: int | None = None, lanes: int | None = None) -> float | None:
    """Single-precision multiply-add peak of one core, measured.

    A loop of independent chains of ``llvm.fmuladd`` on the host's vector width is compiled
    for the host CPU with llvmlite (numba's code generator) and timed: 16 chains of 16 lanes
    with AVX-512 (16 of its 32 registers), 12 chains of 8 lanes otherwise (12 of AVX2's 16
    registers). Either covers the FMA latency times the FMA ports of current x86 cores
    without spilling a register (16x16 lanes on AVX2 needed 32 registers and measured half
    the peak: 43.7 GFLOP/s against sgemm's 91.6 on this machine). Returns None when llvmlite
    is unavailable.
    """
    try:
        import ctypes

        import llvmlite.binding as llvm
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
    except Exception:
        return None
    if chains is None or lanes is None:
        wide = "+avx512f" in llvm.get_host_cpu_features().flatten()
        chains, lanes = (16, 16) if wide else (12, 8)
    vec = f"<{lanes} x float>"

    def splat(v: str) -> str:
        return "<" + ", ".join(f"float {v}" for _ in range(lanes)) + ">"
    ir = [f"declare {vec} @llvm.fmuladd.v{lanes}f32({vec}, {vec}, {vec})",
          "define float @fma_loop(i64 %n) {", "entry:", "  br label %loop", "loop:",
          "  %i = phi i64 [0, %entry], [%i1, %loop]"]
    ir += [f"  %a{k} = phi {vec} [ {splat('1.0')}, %entry ], [ %b{k}, %loop ]" for k in range(chains)]
    # 0.99999994 and 0.001 as exact float hex: the values stay bounded forever
    ir += [f"  %b{k} = call {vec} @llvm.fmuladd.v{lanes}f32({vec} %a{k}, {vec} {splat('0x3FEFFFFFE0000000')}, "
           f"{vec} {splat('0x3F50624DE0000000')})" for k in range(chains)]
    ir += ["  %i1 = add i64 %i, 1", "  %c = icmp ult i64 %i1, %n", "  br i1 %c, label %loop, label %exit", "exit:"]
    prev = "%b0"
    for k in range(1, chains):
        ir.append(f"  %s{k} = fadd {vec} {prev}, %b{k}")
        prev = f"%s{k}"
    ir += [f"  %e = extractelement {vec} {prev}, i32 0", "  ret float %e", "}"]
    try:
        mod = llvm.parse_assembly("\n".join(ir))
        mod.verify()
        tm = llvm.Target.from_default_triple().create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=2)
        engine = llvm.create_mcjit_compiler(mod, tm)
        engine.finalize_object()
        fn = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_int64)(engine.get_function_address("fma_loop"))
        fn(1000)
        n = 200_000
        best = float("inf")
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            fn(n)
            best = min(best, time.perf_counter() - t0)
        return 2 * chains * lanes * n / best / 1e9
    except Exception:
        return None


def roofline_peaks(seconds: float = 0.6) -> dict:
    """What this core can do, measured: sgemm and dgemm GFLOP/s, the FMA peak
    (:func:`fma_peak_gflops`) and copy bandwidth in GB/s (read + write). The roofline
    plot draws these; nothing is taken from a spec sheet."""
    import numpy as np
    out = peak_gflops(seconds / 2)
    out["fma_gflops"] = fma_peak_gflops(seconds / 4)
    a = np.ones(16 << 20, dtype=np.float32)  # 64 MiB: well beyond the caches
    b = np.empty_like(a)
    np.copyto(b, a)
    best = float("inf")
    t_end = time.perf_counter() + seconds / 4
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    out["bandwidth_gbs"] = 2 * a.nbytes / best / 1e9
    out["stream"] = stream_bandwidth(seconds / 2)
    return out


_TRIAD = None


def _triad_kernel():
    """``a = b + s * c`` in one pass (numba): numpy would need two passes and a temporary."""
    global _TRIAD
    if _TRIAD is None:
        from numba import njit

        @njit(fastmath=True, cache=True, nogil=True)
        def triad(a, b, c, s):
            for i in range(a.size):
                a[i] = b[i] + s * c[i]
        _TRIAD = triad
    return _TRIAD


def stream_bandwidth(seconds: float = 0.4) -> dict:
    """STREAM-style bandwidth of one core, measured: ``copy`` (``b = a``, 2 arrays moved) and
    ``triad`` (``a = b + s*c``, 3 arrays moved), each on arrays that fit in half the L2 cache
    and on arrays far beyond the last-level cache (64 MiB each). GB/s as STREAM counts them
    (bytes read plus bytes written per pass), best of repeated passes.

    Pooling and depthwise convolution move far more bytes than they compute; their cells are
    judged against these figures (``% of bandwidth``), not against a flop peak.
    """
    import numpy as np
    out = {}
    l2 = cache_bytes(2)
    try:
        triad = _triad_kernel()
    except ImportError:  # pragma: no cover - numba is a dependency
        triad = None
    for where, nbytes in (("l2", max(16 << 10, l2 // 2 // 3)), ("dram", 64 << 20)):
        n = nbytes // 4
        a = np.ones(n, np.float32)
        b = np.ones(n, np.float32)
        c = np.ones(n, np.float32)
        kernels = {"copy": (lambda: np.copyto(b, a), 2)}
        if triad is not None:
            triad(a, b, c, np.float32(0.5))
            kernels["triad"] = (lambda: triad(a, b, c, np.float32(0.5)), 3)
        for name, (fn, arrays) in kernels.items():
            fn()
            best = float("inf")
            reps = max(1, (4 << 20) // nbytes)
            t_end = time.perf_counter() + seconds / 4
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn()
                best = min(best, (time.perf_counter() - t0) / reps)
            out[f"{name}_{where}_gbs"] = arrays * nbytes / best / 1e9
    out["l2_array_bytes"] = max(16 << 10, l2 // 2 // 3)
    return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
