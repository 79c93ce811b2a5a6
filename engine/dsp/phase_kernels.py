"""numba kernels for the Griffin-Lim iterations of ``engine.dsp.phase`` (optional).

Each kernel does what several numpy calls on small arrays do, in one call and
with the same floating-point operations in the same order, so the results are
bit-identical: ``engine.dsp.phase`` checks that once per process before using
them, and keeps to numpy where numba is missing, fails or differs.

``np.abs`` of complex64 runs numpy's SIMD loop, ``larger * sqrt(fma(r, r, 1))``
with ``r = smaller / larger`` (an FMA where the CPU has one, else a multiply
and an add; not ``hypot``): ``complex_abs`` computes either (``fused``), and
the check picks the one that matches.

Compiled on first use (``cache=True``: later processes load the machine code
from ``__pycache__``); ``engine.dsp.phase`` does that when a ``StreamingPhase`` is
built, never while audio runs.
"""
from __future__ import annotations

import numpy as np

try:
    import numba
    from llvmlite import ir
    from numba.extending import intrinsic
except ImportError:  # pragma: no cover - numba is optional
    numba = None

if numba is not None:
    @intrinsic
    def _fma32(typingctx, a, b, c):
        """float32 ``a * b + c`` rounded once (LLVM's fma: the instruction, or libm's fmaf)."""
        def codegen(context, builder, signature, args):
            f32 = ir.FloatType()
            fma = builder.module.declare_intrinsic("llvm.fma", [f32], ir.FunctionType(f32, [f32, f32, f32]))
            return builder.call(fma, args)
        return numba.types.float32(numba.types.float32, numba.types.float32, numba.types.float32), codegen


def _jit(func):
    return numba.njit(cache=True, nogil=True)(func) if numba is not None else None


def _abs(re, im, fused):
    """|re + i im| of float32 parts, as numpy's complex64 ``absolute`` loop computes it."""
    re, im = abs(re), abs(im)
    larger, smaller = max(re, im), min(re, im)
    ratio = smaller / larger if larger != 0 and larger != np.inf else np.float32(0)
    square = _fma32(ratio, ratio, np.float32(1)) if fused else ratio * ratio + np.float32(1)
    return np.sqrt(square) * larger


def _complex_abs(z, fused, out):
    """``out[:] = np.abs(z)``: ``(k,)`` complex64 -> float32 (to check ``fused``)."""
    for i in range(z.shape[0]):
        out[i] = _abs_jit(z[i].real, z[i].imag, fused)


def _overlap_add(td, window, num, hop, n, weights, first_out, signal, frames):
    """Overlap-add ``td[:n] * window`` onto ``num`` and weight ``len(weights)`` frames of the sum.

    ``td`` ``(rows, n_fft)`` float32: the frames' irfft; ``window`` ``(n_fft,)``; ``num``
    ``(span,)``: committed num from the oldest active frame on; ``weights`` ``(n_out, n_fft)``;
    ``signal`` ``(>= span,)`` scratch; ``frames`` ``(>= n_out, n_fft)`` float64 out:
    ``frames[i] = signal[(first_out + i) * hop:][:n_fft] * weights[i]`` (float32 products).
    Block ``b`` of the signal adds its frames' shares in the order the original loop did:
    block 0 of frame ``b``, then block 1 of frame ``b - 1``, ...
    """
    n_out, n_fft = weights.shape
    signal[:num.shape[0]] = num
    # slices of contiguous rows: inner loops the compiler vectorises
    for r in range(n_fft // hop):
        window_r = window[r * hop:(r + 1) * hop]
        for a in range(n):
            share = td[a, r * hop:(r + 1) * hop]
            block = signal[(a + r) * hop:(a + r + 1) * hop]
            for s in range(hop):
                block[s] += share[s] * window_r[s]
    for i in range(n_out):
        frame = signal[(first_out + i) * hop:(first_out + i) * hop + n_fft]
        weight, out = weights[i], frames[i]
        for j in range(n_fft):
            out[j] = frame[j] * weight[j]


def _project(wide, n, alpha, previous, mags, tiny, fused, spectra):
    """Griffin-Lim's projection of the rebuilt spectra ``wide[:n]`` (complex128, rounded to
    complex64) with fast Griffin-Lim's momentum: ``d = rebuilt - alpha * previous``,
    ``previous = rebuilt`` (skipped when ``alpha == 0``), then ``spectra[:n] = d * mags /
    max(|d|, tiny)``: each bin's direction with its target magnitude."""
    for a in range(n):
        for k in range(wide.shape[1]):
            re = np.float32(wide[a, k].real)
            im = np.float32(wide[a, k].imag)
            if alpha != 0:
                old = previous[a, k]
                previous[a, k] = complex(re, im)
                re = re - alpha * old.real
                im = im - alpha * old.imag
            size = _abs_jit(re, im, fused)
            if size < tiny:  # np.maximum (NaN stays NaN)
                size = tiny
            gain = mags[a, k] / size
            spectra[a, k] = complex(re * gain, im * gain)


def _gradient_phase(log_mag, centre, gain, prev, has_prev, step, arg):
    """The "gradient" start's phase advance: ``step = centre + gain * slope`` (``slope``: half
    the float32 difference of the neighbours' ``log_mag``, 0 at the ends; the float32 product
    added in float64) and ``arg = 0.5j * (prev + step)`` (``prev = step`` unless
    ``has_prev``) as numpy's complex product makes it: ``(0 * x - 0.5 * 0, 0 * 0 + 0.5 * x)``.
    All ``(n_freqs,)``."""
    n = log_mag.shape[0]
    for k in range(n):
        slope = np.float32(0.5) * (log_mag[k + 1] - log_mag[k - 1]) if 0 < k < n - 1 else np.float32(0)
        step[k] = centre[k] + np.float64(gain * slope)
    for k in range(n):
        x = (prev[k] if has_prev else step[k]) + step[k]
        arg[k] = complex(0.0 * x - 0.5 * 0.0, 0.0 * 0.0 + 0.5 * x)


def _unit_spectrum(phasor, size, mag, tiny, out):
    """``out = complex64(mag * unit)`` with ``unit = phasor / size`` where ``size > tiny``, else
    1 (numpy's complex division by ``size + 0j``, then its complex product with ``mag + 0j``).
    ``phasor`` complex128, ``size`` float64 ``|phasor|``, ``mag`` float32, all ``(n_freqs,)``."""
    for k in range(phasor.shape[0]):
        re, im = 1.0, 0.0
        if size[k] > tiny:
            divisor = size[k]
            ratio = 0.0 / divisor
            scale = 1.0 / (divisor + 0.0 * ratio)
            re = (phasor[k].real + phasor[k].imag * ratio) * scale
            im = (phasor[k].imag - phasor[k].real * ratio) * scale
        m = np.float64(mag[k])
        out[k] = complex(m * re - 0.0 * im, m * im + 0.0 * re)


_abs_jit = _jit(_abs)
gradient_phase = _jit(_gradient_phase)
unit_spectrum = _jit(_unit_spectrum)
complex_abs = _jit(_complex_abs)
overlap_add = _jit(_overlap_add)
project = _jit(_project)
