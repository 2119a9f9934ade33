"""``fft_pyfftw`` and ``fft_scipy``: convolution by the convolution theorem.

Cross-correlation with a kernel ``w`` is a pointwise product in the frequency domain,
``y = IFFT(FFT(x) * conj(FFT(w)))`` (circular, of size ``N``); with ``N >= T + ext - 1``
the first ``T`` outputs of each axis have no wrap-around and equal the valid correlation.

Split along its seams:

:mod:`.geometry`   transform sizes, overlap-save tiles, the cost model (shape only, cached)
:mod:`.plans`      FFTW planner effort, wisdom on disk, the byte-bounded plan cache
:mod:`.backends`   the two backend classes and their typed plan state
"""

from .backends import FFTPyFFTW, FFTScipy, FFTState
from .geometry import FFTGeometry, fast_len, fft_geometry, ranked_geometries
from .plans import EFFORTS, PLAN_CACHE_STATS, WISDOM, normalise_effort

__all__ = ["FFTPyFFTW", "FFTScipy", "FFTState", "FFTGeometry", "fast_len", "fft_geometry",
           "ranked_geometries", "EFFORTS", "PLAN_CACHE_STATS", "WISDOM", "normalise_effort"]
