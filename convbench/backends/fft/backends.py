"""``fft_pyfftw`` and ``fft_scipy``: the backend classes (geometry in :mod:`.geometry`,
FFTW plans and wisdom in :mod:`.plans`).

Per problem (Mathieu et al., 2014, for the multi-channel form):

1. **weight spectra** ``conj(rfft2(w))`` for every (out, in) channel pair, computed
   once in ``prepare`` with the ``1/N`` inverse normalisation folded in;
2. **input transform**: each input channel of each tile (or of the whole image) once,
   real-to-complex;
3. **multiply**: at every frequency, ``Y (tiles x oc/g) = X (tiles x ic/g) @ W (ic/g x oc/g)``,
   a batched complex GEMM (BLAS ``cgemm`` per frequency through ``numpy.matmul``); a
   single input channel per group makes it an element-wise product;
4. **output transform**: each output channel of each tile once, complex-to-real, then the
   valid part of every tile is placed, subsampled for stride.

Dilation dilates the kernel (zeros between taps); stride computes the stride-1 result
and subsamples it; groups split the GEMM.

The weight gradient (``bwd_w``, Mathieu et al.'s third product) is a cross-correlation of
each input channel with each output-gradient channel, summed over the batch:
``dW[o, c, t] = sum_n sum_i dY[n, o, i] x_pad[n, c, i + t]``. With the output gradient spread
to the stride (zeros between its pixels) and both zero-padded to a fast length at least the
padded input's, ``dW = IRFFT(sum_n conj(DY[n]) X[n])`` read at the dilated taps: one real
transform per input and per output-gradient channel and image, then at every frequency a
complex GEMM ``(oc/g x mb) @ (mb x ic/g)`` (the spectral products summed over the batch),
then the inverse read at the kernel's ``kh x kw`` taps only: those few outputs of an inverse
DFT are one complex GEMM against a ``(frequencies x taps)`` matrix of exponentials (a pruned
inverse; a full inverse per (out, in) pair cost 4096 transforms of 60x60 on a 64-channel
layer, measured: 182 ms against 20 ms for im2col).

``fft_pyfftw`` builds FFTW plans in ``prepare`` (planner effort ``fftw_effort``, default
``measure``; wisdom on disk unless ``fftw_wisdom="off"``). FFTW writes the spectra straight
into the layout the GEMM wants (frequency-major, via strided output arrays) and reads the
product back the same way. ``fft_scipy`` runs the same algorithm on ``scipy.fft``
(``workers=`` threads), which returns new arrays in its own layout, so the spectra are
copied into place: the difference between the two rows is what pyFFTW buys. It is also
the FFT backend that works without pyFFTW.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ... import threads as _threads
from ...problem import ConvProblem
from ...timing import best_times
from ...flops import prod
from ..base import Backend, Capabilities, Estimate, Plan, fill_padded, stable_choice
from .geometry import (FFTGeometry, batch_size, fast_len, fft_flops, geometry, pruned_rows, ranked_geometries,
                       smallest_workspace)
from .plans import WISDOM, Transforms, normalise_effort, pyfftw, pyfftw_plans, spectra, view
from . import volume

try:
    import scipy.fft as sfft
except ImportError:  # pragma: no cover
    sfft = None

__all__ = ["FFTPyFFTW", "FFTScipy", "FFTState"]


@dataclass
class FFTState:
    """Everything ``run`` needs for one chosen geometry.

    ``W``: weight spectra in the multiply's layout; ``tx``: the transforms' arrays (and
    FFTW plans); ``fill``: the zero-bordered image ``x`` is copied into; ``chunks``: per pass
    ``(patch source, patch destination, valid-output view, output destination)`` (``None``
    entries: whole image, one pass); ``full``: the stride-1 output the passes assemble.
    """

    geo: FFTGeometry
    W: np.ndarray
    tx: Transforms
    fill: np.ndarray
    chunks: list
    full: np.ndarray
    rows: tuple = ((0, 0), 0)   # pruned input rows and kept output rows (scipy engine)
    workers: int = 1            # scipy.fft workers
    tried: list = field(default_factory=list)

    @property
    def tiled(self) -> bool:
        return self.geo.tiles > 1


class _FFTBase(Backend):
    algorithm = "fft"
    engine = ""
    capabilities = Capabilities(exact=False, rtol={"float32": 1e-4, "float64": 1e-11}, threads="fftw",
                                memory_fraction=0.25, backward_weights=True, ranks=(1, 2, 3))

    #: how many of the cost model's best tile sizes ``prepare`` times before choosing (each
    #: tiled one also a part of a tile row at a time)
    AUTOTUNE = 4

    def _supports(self, p: ConvProblem) -> str | None:
        limit = self.memory_limit()
        if p.direction == "bwd_w":
            need = self.estimate(p).workspace_bytes
            return None if limit is None or need <= limit else (
                f"needs {need} bytes of spectra for the weight gradient, over the memory limit of {limit} bytes")
        if p.rank == 3 and not volume.ranked_volume_geometries(p, limit):
            return (f"needs at least {volume.smallest_volume_workspace(p)} bytes of spectra/workspace for any "
                    f"tile size, over the memory limit of {limit} bytes")
        if p.rank < 3 and not ranked_geometries(p, limit):
            return (f"needs at least {smallest_workspace(p, limit)} bytes of spectra/workspace for any tile size, "
                    f"over the memory limit of {limit} bytes")
        return None

    def _estimate(self, p: ConvProblem) -> Estimate:
        if p.direction == "bwd_w":
            return _wgrad_estimate(p)
        if p.rank == 3:
            ranked = volume.ranked_volume_geometries(p, self.memory_limit())
            if not ranked:
                return Estimate(workspace_bytes=volume.smallest_volume_workspace(p))
            cands = volume.candidates(p, self.memory_limit(), self.AUTOTUNE)
            peak = sum(c.workspace_bytes for c in cands) + max(c.workspace_bytes for c in cands) \
                if len(cands) > 1 else None
            return Estimate(ranked[0].flops, ranked[0].multiply_flops, ranked[0].workspace_bytes, prepare_bytes=peak)
        ranked = ranked_geometries(p, self.memory_limit())
        if not ranked:
            return Estimate(workspace_bytes=smallest_workspace(p, self.memory_limit()))
        g = ranked[0]
        cands = self._candidates(p)
        peak = sum(c.workspace_bytes for c in cands) + max(c.workspace_bytes for c in cands) if len(cands) > 1 \
            else None
        return Estimate(g.flops, g.multiply_flops, g.workspace_bytes, prepare_bytes=peak)

    def _candidates(self, p: ConvProblem) -> list[FFTGeometry]:
        """The geometries ``prepare`` builds side by side and times: the model's best
        ``AUTOTUNE`` (each tiled one also a part of a tile row at a time), as many as fit the
        memory limit together (measured before this bound: 5.7 GB held while timing candidates
        whose single plan was estimated at 0.7 GB, mb10000ic16ih16oc16kh3)."""
        limit = self.memory_limit()
        ranked = list(ranked_geometries(p, limit)[:max(1, self.AUTOTUNE)])
        rows = [geometry(p, g.nh, g.nw, by_row=True) for g in ranked if g.tiles > 1]
        out, held = [], 0
        for g in ranked + [r for r in rows if r.per_pass < p.mb * r.tiles]:
            if out and limit is not None and held + g.workspace_bytes > limit // 2:
                continue
            out.append(g)
            held += g.workspace_bytes
        return out

    # ------------------------------------------------------------------ plan
    def prepare(self, p: ConvProblem, w: np.ndarray) -> Plan:
        """Choose the tile size, build the transforms, compute the weight spectra (for the
        weight gradient: see :class:`WeightGradFFT`).

        The cost model ranks tile sizes; the best ``AUTOTUNE`` candidates are then timed
        (transform-multiply-transform passes on zeros, round-robin, see ``best_times``) and the
        fastest is kept (with hysteresis, see :func:`~convbench.backends.base.stable_choice`),
        because FFT speed depends on the length's factors as much as on its size
        (measured here: 288^2 transforms in 105 us, 272^2 in 378 us, 270^2 in 140 us).
        Each tiled candidate is also timed a part of a tile row at a time (``by_row``), which
        keeps a pass's patches and spectra in cache (1024^2 image, 15x15 kernel, 72 tiles of
        128x144, same process: 5.5 ms all tiles per stage, 4.2 ms a whole tile row per
        pass, 4.1 ms two tiles per pass, measured).
        All of this is one-off work and counts in ``prepare_s``.
        """
        if p.direction == "bwd_w":
            return self._prepare_wgrad(p)
        if p.rank == 3:
            return self._prepare_volume(p, w)
        cands = self._candidates(p)
        geo, tried = cands[0], []
        if len(cands) > 1:
            x0 = np.zeros(p.src_shape, dtype=p.dtype)
            plans = [Plan(p, self._build(p, g, None)) for g in cands]
            times = best_times([lambda plan=plan: self.run(plan, x0) for plan in plans], prune=1.5)
            del plans  # the candidates' buffers go before the chosen plan is built
            tried = list(zip(cands, times))
            geo = stable_choice(tried)
        st = self._build(p, geo, w)
        st.tried = tried
        mode = (f"overlap-save {geo.th}x{geo.tw} tiles{', row by row' if geo.by_row else ''}"
                if st.tiled else "whole image")
        note = f"N={geo.nh}x{geo.nw}, {mode}{self._engine_note()}"
        if tried:
            note += " (timed: " + ", ".join(f"{g.label} {t * 1e3:.2f}ms" for g, t in tried) + ")"
        return self.make_plan(p, st, note=note, flops_executed=geo.flops, flops_multiply=geo.multiply_flops,
                              workspace_bytes=geo.workspace_bytes)

    def _engine_note(self) -> str:
        return ""

    def _prepare_volume(self, p: ConvProblem, w: np.ndarray) -> Plan:
        """3-D: the cost model's best length triples (each tiled one also a tile plane per pass)
        built side by side and timed on zeros, the fastest kept, as in 2-D (:mod:`.volume`)."""
        cands = volume.candidates(p, self.memory_limit(), self.AUTOTUNE)
        geo, tried = cands[0], []
        if len(cands) > 1:
            x0 = np.zeros(p.src_shape, dtype=p.dtype)
            plans = [Plan(p, self._build_volume(p, g, None)) for g in cands]
            times = best_times([lambda plan=plan: self.run(plan, x0) for plan in plans], prune=1.5)
            del plans
            tried = list(zip(cands, times))
            geo = stable_choice(tried)
        st = self._build_volume(p, geo, w)
        st.tried = tried
        note = f"N={'x'.join(map(str, geo.n))}, {volume.mode_note(geo)}{self._engine_note()}"
        if tried:
            note += " (timed: " + ", ".join(f"{g.label} {t * 1e3:.2f}ms" for g, t in tried) + ")"
        return self.make_plan(p, st, note=note, flops_executed=geo.flops, flops_multiply=geo.multiply_flops,
                              workspace_bytes=geo.workspace_bytes)

    def _build_volume(self, p: ConvProblem, geo, w) -> "volume.VolumeState":
        raise NotImplementedError

    def _weight_spectra(self, p: ConvProblem, geo: FFTGeometry, w: np.ndarray | None) -> np.ndarray:
        """Dilated kernel, zero-padded to N, conj for correlation, 1/N folded in; transformed in
        float64, then rounded once. ``w`` None: zeros of the right layout (timing only)."""
        nh, nw, nwh = geo.nh, geo.nw, geo.nwh
        cdt = np.complex64 if p.dtype == "float32" else np.complex128
        if w is None:
            return np.zeros((nh, nwh, p.g, p.icg, p.ocg) if p.icg > 1 else (1, p.g, p.ocg, nh, nwh), dtype=cdt)
        kd = np.zeros((p.oc, p.icg, nh, nw), dtype=np.float64)
        kd[:, :, :p.ext_h:p.dh + 1, :p.ext_w:p.dw + 1] = w
        spec = (np.conj(np.fft.rfft2(kd)) / (nh * nw)).reshape(p.g, p.ocg, p.icg, nh, nwh)
        if p.icg > 1:  # frequency-major (nh, nwh, g, icg, ocg) for the GEMM
            return np.ascontiguousarray(spec.transpose(3, 4, 0, 2, 1), dtype=cdt)
        return np.ascontiguousarray(spec[None, :, :, 0], dtype=cdt)  # (1, g, ocg, nh, nwh)

    def _build(self, p: ConvProblem, geo: FFTGeometry, w: np.ndarray | None) -> FFTState:
        """Buffers, transforms and (unless ``w`` is None: timing only) weight spectra."""
        dt = np.dtype(p.dtype)
        nh, nw = geo.nh, geo.nw
        tx = self._transforms(p, geo, batch_size(p, geo))
        W = self._weight_spectra(p, geo, w)
        if geo.tiles > 1:
            xp = np.zeros((p.mb, p.ic, geo.hbuf, geo.wbuf), dtype=dt)
            s = xp.strides
            src = as_strided(xp, shape=(p.mb, geo.th, geo.tw, p.ic, nh, nw),
                             strides=(s[0], geo.Th * s[2], geo.Tw * s[3], s[1], s[2], s[3]), writeable=False)
            # output assembly: valid (Th, Tw) of each tile -> (mb, oc, th, Th, tw, Tw)
            full = np.empty((p.mb, p.oc, geo.th, geo.Th, geo.tw, geo.Tw), dtype=dt)
            if geo.by_row:  # one (image, part of a tile row) per pass: patches in, valid outputs out
                c = geo.per_pass
                P4 = view(tx.P, (c, p.ic, nh, nw))
                R4 = view(tx.R, (c, p.oc, nh, nw))[..., :geo.Th, :geo.Tw].transpose(1, 2, 0, 3)
                chunks = [(src[b, a, k:k + c], P4, R4, full[b, :, a, :, k:k + c])
                          for b in range(p.mb) for a in range(geo.th) for k in range(0, geo.tw, c)]
            else:
                P6 = view(tx.P, (p.mb, geo.th, geo.tw, p.ic, nh, nw))
                R6 = view(tx.R, (p.mb, geo.th, geo.tw, p.oc, nh, nw))[..., :geo.Th, :geo.Tw] \
                    .transpose(0, 3, 1, 4, 2, 5)
                chunks = [(src, P6, R6, full)]
            full = full.reshape(p.mb, p.oc, geo.th * geo.Th, geo.tw * geo.Tw)
            fill = xp
        else:
            fill = view(tx.P, (p.mb, p.ic, nh, nw))  # the transform input is the padded image
            fill[...] = 0
            full = view(tx.R, (p.mb, p.oc, nh, nw))
            chunks = [(None, None, None, None)]
        return FFTState(geo=geo, W=W, tx=tx, fill=fill, chunks=chunks, full=full,
                        rows=pruned_rows(p, nh, geo.tiles > 1), workers=_threads.get_threads())

    def _transforms(self, p: ConvProblem, geo: FFTGeometry, batch: int) -> Transforms:
        raise NotImplementedError

    def _forward(self, st: FFTState) -> None:
        raise NotImplementedError

    def _inverse(self, st: FFTState) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ stages
    def _execute(self, plan: Plan[FFTState], x: np.ndarray, acc: dict | None = None) -> np.ndarray:
        """Pad ``x`` into the transform input, then per chunk (all tiles at once, or one tile
        row: see :class:`FFTGeometry`) forward transform, multiply, inverse transform and
        keep the valid outputs; finally subsample for stride. With ``acc``, the time of each
        stage (input: padding, patches, forward; multiply; output: inverse, assembly) is
        added to ``acc`` (the clock calls cost well under 1% of a chunk)."""
        p, st = plan.problem, plan.state
        clock = time.perf_counter
        t0 = clock() if acc is not None else 0.0
        h, w = p.read_h, p.read_w
        st.fill[:, :, p.ph:p.ph + h, p.pw:p.pw + w] = x[:, :, :h, :w]
        mult = np.multiply if p.icg == 1 else np.matmul  # (B, g, 1, ..) * (1, g, ocg, ..) or GEMM
        X, W, Y = st.tx.X, st.W, st.tx.Y
        for src, dst, res, out in st.chunks:
            if src is not None:
                np.copyto(dst, src)
            self._forward(st)
            if acc is not None:
                t1 = clock()
                acc["input"] += t1 - t0
            mult(X, W, out=Y)
            if acc is not None:
                t2 = clock()
                acc["multiply"] += t2 - t1
            self._inverse(st)
            if res is not None:
                np.copyto(out, res)
            if acc is not None:
                t0 = clock()
                acc["output"] += t0 - t2
        y = np.empty(p.output_shape, dtype=st.full.dtype)  # never a view of the plan's buffers
        np.copyto(y, st.full[:, :, :(p.oh - 1) * p.sh + 1:p.sh, :(p.ow - 1) * p.sw + 1:p.sw])
        if acc is not None:
            acc["output"] += clock() - t0
        return y

    def run(self, plan: Plan, *inputs: np.ndarray) -> np.ndarray:
        if plan.problem.direction == "bwd_w":
            return self._wgrad(plan, *inputs)
        if plan.problem.rank == 3:
            return volume.execute(plan.problem, plan.state, inputs[0])
        return self._execute(plan, inputs[0])

    # ------------------------------------------------------------------ weight gradient
    def _prepare_wgrad(self, p: ConvProblem) -> Plan:
        n = _wgrad_lengths(p)
        F, dt = _half(n), np.dtype(p.dtype)
        cdt = np.complex64 if dt == np.float32 else np.complex128
        st = WeightGradFFT(n=n, xin=np.zeros((p.mb, p.ic) + n, dt), din=np.zeros((p.mb, p.oc) + n, dt),
                           Xf=np.empty((F, p.g, p.mb, p.icg), cdt), Df=np.empty((F, p.g, p.ocg, p.mb), cdt),
                           S=np.empty((F, p.g, p.ocg, p.icg), cdt), workers=_threads.get_threads())
        st.engine = self._wgrad_engine(p, st)
        st.E = _tap_exponentials(p, n).astype(cdt)
        est = self.estimate(p)
        return self.make_plan(p, st, note=f"weight gradient: N={'x'.join(map(str, n))}, spectral products summed "
                              "over the batch" + self._engine_note(), flops_executed=est.flops_executed)

    def _wgrad_engine(self, p: ConvProblem, st: "WeightGradFFT"):
        """Per engine: the forward transforms of the two inputs and the inverse of the product."""
        return None

    def _rfft2(self, st: "WeightGradFFT", which: str) -> np.ndarray:
        raise NotImplementedError

    def _wgrad(self, plan: Plan, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
        p, st = plan.problem, plan.state
        fill_padded(st.xin, x, p)
        st.din[(slice(None), slice(None)) + tuple(slice(0, (ax.o - 1) * ax.s + 1, ax.s) for ax in p.axes)] = dy
        F = st.Xf.shape[0]
        X = self._rfft2(st, "x").reshape(p.mb, p.g, p.icg, F)
        np.copyto(st.Xf, X.transpose(3, 1, 0, 2))
        D = self._rfft2(st, "dy").reshape(p.mb, p.g, p.ocg, F)
        np.conjugate(D.transpose(3, 1, 2, 0), out=st.Df)
        np.matmul(st.Df, st.Xf, out=st.S)                   # (F, g, ocg, icg): summed over the batch
        taps = st.S.reshape(F, p.oc * p.icg).T @ st.E        # pruned inverse: (oc*icg, taps)
        return np.ascontiguousarray(taps.real, dtype=x.dtype).reshape(p.weight_shape)

    def phases(self, plan: Plan[FFTState], *inputs: np.ndarray) -> dict[str, float] | None:
        if plan.problem.direction == "bwd_w":
            return None  # the phases are those of the forward/backward-data pipeline
        (x,) = inputs
        acc = {"input": 0.0, "multiply": 0.0, "output": 0.0}
        if plan.problem.rank == 3:
            volume.execute(plan.problem, plan.state, x, acc)
        else:
            self._execute(plan, x, acc)
        return acc


@dataclass
class WeightGradFFT:
    """Weight-gradient plan: transform size, the zero-padded input and spread output gradient,
    frequency-major spectra and their product, and the engine's transforms."""

    n: tuple
    xin: np.ndarray
    din: np.ndarray
    Xf: np.ndarray
    Df: np.ndarray
    S: np.ndarray
    workers: int = 1
    engine: object = None
    E: np.ndarray | None = None


def _wgrad_lengths(p: ConvProblem) -> tuple:
    """The weight gradient's transform length per layout axis: a fast length at least the
    padded input's."""
    return tuple(fast_len(a) for a in p.padded)


def _half(n: tuple) -> int:
    """Frequencies of a real transform of size ``n`` (the last axis halved)."""
    return prod(n[:-1]) * (n[-1] // 2 + 1)


def _tap_exponentials(p: ConvProblem, n: tuple) -> np.ndarray:
    """``(frequencies, taps)``: the inverse real DFT of a half spectrum evaluated at the
    kernel's dilated taps only, ``x[t] = Re(sum_f c_f S[f] exp(2 pi i f.t / N)) / N`` with
    ``c_f = 2`` for the half-spectrum entries that stand for a conjugate pair (1 for the DC
    and Nyquist ones of the last axis). Computed in float64."""
    half = n[:-1] + (n[-1] // 2 + 1,)
    R = len(n)
    phase = np.zeros(half + p.kernel)
    for i, (a, ax) in enumerate(zip(n, p.axes)):
        f = np.arange(half[i]).reshape((1,) * i + (-1,) + (1,) * (R - 1 - i) + (1,) * R)
        t = (np.arange(ax.k) * (ax.d + 1)).reshape((1,) * R + (1,) * i + (-1,) + (1,) * (R - 1 - i))
        phase = phase + f * t / a
    c = np.full(half[-1], 2.0)
    c[0] = 1.0
    if n[-1] % 2 == 0:
        c[-1] = 1.0
    c = c.reshape((1,) * (R - 1) + (-1,) + (1,) * R)
    return (c * np.exp(2j * np.pi * phase) / prod(n)).reshape(_half(n), prod(p.kernel))


def _wgrad_estimate(p: ConvProblem) -> Estimate:
    """Flops and bytes of the FFT weight gradient (see the module docstring)."""
    n = _wgrad_lengths(p)
    F, taps = _half(n), prod(p.kernel)
    flops = volume.fftn_flops(n) if len(n) == 3 else fft_flops(*n)
    transforms = p.mb * (p.ic + p.oc) * flops + 8.0 * p.oc * p.icg * F * taps  # + pruned inverse
    mult = 8.0 * F * p.g * p.ocg * p.icg * p.mb
    cplx = 2 * p.itemsize
    ws = (p.mb * (p.ic + p.oc) * prod(n) * p.itemsize         # padded real inputs
          + 2 * F * p.mb * (p.ic + p.oc) * cplx                # their spectra, and frequency-major copies
          + F * p.oc * p.icg * cplx + F * taps * cplx)         # the product, the tap exponentials
    return Estimate(transforms + mult, mult, int(ws))


class FFTPyFFTW(_FFTBase):
    name = "fft_pyfftw"
    engine = "pyfftw"
    description = "FFT (pyFFTW plans, wisdom cached), batched complex GEMM over channels, overlap-save tiles"
    options = {"fftw_effort": "measure", "fftw_wisdom": "on"}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if pyfftw is not None else "pyfftw is not installed"

    def _configure(self, fftw_effort: str, fftw_wisdom: str) -> None:
        self.effort = normalise_effort(fftw_effort)
        if fftw_wisdom not in ("on", "off", True, False):
            raise ValueError(f"fftw_wisdom={fftw_wisdom!r}: accepted are on, off")
        WISDOM.use(fftw_wisdom in ("on", True))

    def _engine_note(self) -> str:
        return f", FFTW {self.effort[5:].lower()}"

    def _transforms(self, p: ConvProblem, geo: FFTGeometry, batch: int) -> Transforms:
        in_rows, out_rows = pruned_rows(p, geo.nh, geo.tiles > 1)
        return pyfftw_plans(batch, p.dtype, geo.nh, geo.nw, p.g, p.icg, p.ocg, in_rows, out_rows,
                            self.effort, _threads.get_threads())

    def _build_volume(self, p: ConvProblem, geo, w) -> volume.VolumeState:
        kw = dict(flags=(self.effort,), threads=_threads.get_threads())

        def engine(st):
            fwd = pyfftw.FFTW(st.P, st.Xs, axes=(-3, -2, -1), direction="FFTW_FORWARD", **kw)
            inv = pyfftw.FFTW(st.Ys, st.R, axes=(-3, -2, -1), direction="FFTW_BACKWARD", normalise_idft=False,
                              flags=(self.effort, "FFTW_DESTROY_INPUT"), threads=kw["threads"])
            st.fwd, st.inv = fwd.execute, inv.execute
            WISDOM.planned()
        return volume.build(p, geo, w, lambda shape, dt: pyfftw.empty_aligned(shape, dtype=dt), engine)

    def _forward(self, st: FFTState) -> None:
        for plan in st.tx.fwd:
            plan.execute()

    def _inverse(self, st: FFTState) -> None:
        for plan in st.tx.inv:
            plan.execute()

    def _wgrad_engine(self, p: ConvProblem, st: WeightGradFFT):
        import pyfftw.builders as fb
        st.xin = pyfftw.zeros_aligned(st.xin.shape, dtype=st.xin.dtype)   # FFTW's aligned codelets
        st.din = pyfftw.zeros_aligned(st.din.shape, dtype=st.din.dtype)
        kw = dict(axes=tuple(range(-len(st.n), 0)), planner_effort=self.effort, threads=st.workers, avoid_copy=True)
        fx = fb.rfftn(st.xin, **kw)
        fd = fb.rfftn(st.din, **kw)
        st.xin[...] = 0
        st.din[...] = 0
        WISDOM.planned()
        return {"x": fx, "dy": fd}

    def _rfft2(self, st: WeightGradFFT, which: str) -> np.ndarray:
        return st.engine[which]()


class FFTScipy(_FFTBase):
    name = "fft_scipy"
    engine = "scipy"
    description = "FFT (scipy.fft, workers=threads), same algorithm as fft_pyfftw"
    capabilities = Capabilities(exact=False, rtol={"float32": 1e-4, "float64": 1e-11}, threads="scipy.fft",
                                memory_fraction=0.25, backward_weights=True, ranks=(1, 2, 3))

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if sfft is not None else "scipy is not installed"

    def _transforms(self, p: ConvProblem, geo: FFTGeometry, batch: int) -> Transforms:
        dt = np.dtype(p.dtype)
        cdt = np.complex64 if dt == np.float32 else np.complex128
        spec = spectra(batch, geo.nh, geo.nwh, p.g, p.icg, p.ocg, cdt, lambda shape, d: np.empty(shape, dtype=d))
        return Transforms(P=np.zeros((batch, p.g, p.icg, geo.nh, geo.nw), dtype=dt),
                          R=np.empty((batch, p.g, p.ocg, geo.nh, geo.nw), dtype=dt),
                          Xr=np.zeros((batch, p.g, p.icg, geo.nh, geo.nwh), dtype=cdt), **spec)

    def _build_volume(self, p: ConvProblem, geo, w) -> volume.VolumeState:
        wk, axes = _threads.get_threads(), (-3, -2, -1)

        def engine(st):
            def fwd():
                np.copyto(st.Xs, sfft.rfftn(st.P, axes=axes, workers=wk))

            def inv():
                st.R[...] = sfft.irfftn(st.Ys, s=geo.n, axes=axes, norm="forward", workers=wk)
            st.fwd, st.inv = fwd, inv
        return volume.build(p, geo, w, lambda shape, dt: np.empty(shape, dtype=dt), engine)

    def _rfft2(self, st: WeightGradFFT, which: str) -> np.ndarray:
        return sfft.rfftn(st.xin if which == "x" else st.din, axes=tuple(range(-len(st.n), 0)), workers=st.workers)

    # the same transforms as fft_pyfftw (pruned two-pass, or 2-D on tiles; see plans._build_pyfftw_plans)
    def _forward(self, st: FFTState) -> None:
        (r0, r1), _ = st.rows
        tx, wk = st.tx, st.workers
        if st.tiled:
            np.copyto(tx.Xs, sfft.rfft2(tx.P, workers=wk))
            return
        tx.Xr[..., r0:r1, :] = sfft.rfft(tx.P[..., r0:r1, :], axis=-1, workers=wk)
        np.copyto(tx.Xs, sfft.fft(tx.Xr, axis=-2, workers=wk))

    def _inverse(self, st: FFTState) -> None:
        geo, tx, wk = st.geo, st.tx, st.workers
        _, orows = st.rows
        if st.tiled:
            tx.R[...] = sfft.irfft2(tx.Ys, s=(geo.nh, geo.nw), norm="forward", workers=wk)
            return
        yr = sfft.ifft(tx.Ys, axis=-2, norm="forward", workers=wk)
        tx.R[..., :orows, :] = sfft.irfft(yr[..., :orows, :], n=geo.nw, axis=-1, norm="forward", workers=wk)
