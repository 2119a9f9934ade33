"""``convbench info``: machine, BLAS kernel set, FFTW build and measured peaks."""

from __future__ import annotations

import json as _json

from .common import EXIT_OK, add_options, options_named

NAME = "info"
HELP = "machine, BLAS kernel set and measured peak GFLOP/s"
PRELOAD = True


def setup(p) -> None:
    from .common import threads_arg
    add_options(p, [o.but(help="threads for the peak measurement (default 1)", parse=threads_arg, default=1,
                          metavar="N") if o.name == "threads" else o
                    for o in options_named("blas_coretype threads")])
    p.add_argument("--json", action="store_true", help="machine-readable output")


def gather(threads: int = 1, coretype: dict | None = None) -> dict:
    """Everything ``convbench info`` shows, as a dict."""
    from .. import threads as _threads
    from ..blas import autodetected_coretype
    from ..machine import fftw_build, git_commit, machine_info, peak_gflops, roofline_peaks
    _threads.set_threads(threads)
    info = machine_info()
    info["blas_coretype"] = coretype or {}
    info["blas_autodetected"] = autodetected_coretype()
    info["peak"] = dict(peak_gflops(1.0, threads), **{k: v for k, v in roofline_peaks(0.6).items()
                                                      if k in ("fma_gflops", "bandwidth_gbs", "stream")})
    info["git"] = git_commit()
    info["fftw_build"] = fftw_build()
    from ..select.auto import chooser
    info["auto"] = chooser("float32", "fwd")
    return info


def _auto_line(a: dict) -> str:
    """backend='auto''s chooser and the regret ``tune`` judged it by."""
    head = f"backend='auto' ({a['dtype']}, {a['threads']} thread(s), {a['direction']}): "
    v = next((j for j in a.get("judged", []) if j.get("protocol") == "lono"), (a.get("judged") or [None])[-1])
    fig = (f"; judged {v['protocol']} on {v['problems']} problems: selector regret {v['selector']:.3f}, built-in rules "
           f"{v['rules']:.3f}") if v else ""
    if a["chooser"] == "selector":
        return head + f"the {a['kind']} selector of {a['created']} ({a['file']}){fig}"
    return head + f"the built-in rules ({a['note']}){fig}; expected regret {'%.3f' % v['rules'] if v else 'unknown: not measured here'}" \
        + ("" if v else " (`convbench tune --collect` measures it and fits a selector)")


def run(*, threads: int = 1, blas_coretype: str = "auto", json: bool = False) -> int:  # noqa: A002
    from ..blas import applied_coretype, coretype_rank
    coretype = applied_coretype(blas_coretype)
    info = gather(threads, coretype)
    if json:
        print(_json.dumps(info, indent=2, default=str))
        return EXIT_OK
    blas = info["blas"]
    print(f"convbench {info['convbench']} on {info['cpu_model']} ({info['cores']} cores, "
          f"{(info['memory_bytes'] or 0) / 2**30:.1f} GiB), Python {info['python']}")
    print(f"CPU flags: {' '.join(info['cpu_flags'])}")
    print(f"OpenBLAS kernel set: best for this CPU {blas['cpu_best']}; environment had "
          f"OPENBLAS_CORETYPE={coretype.get('env_before')}; OpenBLAS alone picks "
          f"{info['blas_autodetected']}; this process runs "
          f"{', '.join(str(lib['architecture']) for lib in blas['libraries']) or '?'} "
          f"(OPENBLAS_CORETYPE={blas['env']}, --blas-coretype {coretype.get('requested')})")
    for origin, kind in (("the environment's OPENBLAS_CORETYPE", coretype.get("env_before")),
                         ("OpenBLAS's own detection", info["blas_autodetected"])):
        if kind and coretype_rank(kind) < coretype_rank(blas["cpu_best"]):
            print(f"  note: {origin} selects {kind}, below what this CPU supports ({blas['cpu_best']}); "
                  f"`--blas-coretype auto` (the default) runs {blas['cpu_best']}, `native` would run {kind}.")
    if blas.get("warning"):
        print(f"  WARNING: {blas['warning']}")
    for lib in blas["libraries"]:
        print(f"  {lib['internal_api']} {lib['version']} [{lib['architecture']}] {lib['filepath']}")
    pk = info["peak"]
    fma = pk.get("fma_gflops")
    print(f"peak, {threads} thread(s): sgemm {pk['sgemm_gflops']:.1f} GFLOP/s, dgemm {pk['dgemm_gflops']:.1f} "
          f"GFLOP/s (best 1024^3 GEMM); one core's FMA peak {'%.1f GFLOP/s' % fma if fma else 'unknown'}; "
          f"copy bandwidth {pk['bandwidth_gbs']:.1f} GB/s")
    st = pk.get("stream") or {}
    if st:
        def gbs(key):
            return f"{st[key]:.1f}" if key in st else "?"
        print(f"STREAM, one core (GB/s, read + written): copy {gbs('copy_l2_gbs')} / triad {gbs('triad_l2_gbs')} "
              f"in L2 ({st.get('l2_array_bytes', 0) >> 10} KiB arrays), copy {gbs('copy_dram_gbs')} / triad "
              f"{gbs('triad_dram_gbs')} from DRAM (64 MiB arrays): the roof of pooling cells")
    fftw = info.get("fftw_build")
    if fftw:
        lacks = (f"; this CPU also has {', '.join(fftw['simd_missing'])}, which this build has no codelets for"
                 if fftw["simd_missing"] else "")
        print(f"FFTW (fft_pyfftw): {fftw['version']} {fftw['path']}{lacks}")
    print(_auto_line(info["auto"]))
    libs = info["libraries"]
    print("libraries: " + ", ".join(f"{k} {v}" for k, v in libs.items() if v))
    missing = [k for k, v in libs.items() if not v]
    if missing:
        print("not installed: " + ", ".join(missing))
    return EXIT_OK
