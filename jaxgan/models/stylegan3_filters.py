"""StyleGAN3's low-pass filters, designed in numpy as `SynthesisLayer.design_lowpass_filter` does with scipy
(NVlabs/stylegan3@c233a91, `training/networks_stylegan3.py`, :363-384).

A checkpoint stores every filter as a buffer, so converting or running a network never designs one; these are for
networks built from scratch (`jaxgan.models.stylegan3.init_generator`: benchmarks, tests, training). Two kinds:

- separable: `scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs)`, a Kaiser-windowed sinc whose window's
  beta follows from the transition width (`kaiser_atten`, `kaiser_beta`: Oppenheim & Schafer's formulas, as
  scipy), scaled to unit DC gain;
- radial (the R configs' down filters): a jinc, J1(2 pi fc r) / (pi r), times the outer product of the same Kaiser
  window, normalised to sum 1. numpy has no Bessel J1, so it is the integral J1(x) = 1/(2 pi) int_0^{2 pi}
  cos(t - x sin t) dt by the trapezoidal rule on a periodic integrand (exponentially convergent: 256 nodes give
  float64 precision far beyond the arguments a filter needs).

numtaps 1 is the identity: None, as the official code (no buffer).
"""

import numpy as np


def kaiser_atten(numtaps: int, width: float) -> float:
    """scipy.signal.kaiser_atten: the attenuation (dB) of a Kaiser FIR filter of `numtaps` taps and normalised
    transition width `width` (a fraction of Nyquist)."""
    return 2.285 * (numtaps - 1) * np.pi * width + 7.95


def kaiser_beta(atten: float) -> float:
    """scipy.signal.kaiser_beta: the Kaiser window's beta for an attenuation in dB."""
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def bessel_j1(x, nodes: int = 256):
    """J1(x) (float64) by the trapezoidal rule on Bessel's integral over one period."""
    t = np.arange(nodes) * (2 * np.pi / nodes)
    x = np.asarray(x, np.float64)
    return np.mean(np.cos(t - x[..., None] * np.sin(t)), axis=-1)


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False):
    """The official filter as float32: [numtaps] (separable) or [numtaps, numtaps] (radial); None for 1 tap."""
    if numtaps < 1:
        raise ValueError(f"numtaps must be >= 1, got {numtaps}")
    if numtaps == 1:
        return None
    nyquist = fs / 2
    window = np.kaiser(numtaps, kaiser_beta(kaiser_atten(numtaps, width / nyquist)))
    if not radial:
        m = np.arange(numtaps) - (numtaps - 1) / 2
        f = cutoff / nyquist * np.sinc(cutoff / nyquist * m) * window
        return (f / np.sum(f)).astype(np.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    f = bessel_j1(2 * cutoff * (np.pi * r)) / (np.pi * r)
    f = f * np.outer(window, window)
    return (f / np.sum(f)).astype(np.float32)
