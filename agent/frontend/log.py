"""The microfrontend's last stage: fixed-point natural log, scaled by 2^shift, saturated to uint16."""
from __future__ import annotations

import numpy as np

_LOG_SCALE_LOG2 = 16       # kLogScaleLog2
_LOG_SEGMENTS_LOG2 = 7     # kLogSegmentsLog2
_LOG_COEFF = 45426         # kLogCoeff: ln(2) in Q16
_U32 = 0xFFFFFFFF

# kLogLut: 129 (+1 padding) correction values of log2(1+x) - x in Q16 over 128 segments.
LOG_LUT = np.array([
    0, 224, 442, 654, 861, 1063, 1259, 1450, 1636, 1817, 1992, 2163, 2329, 2490, 2646, 2797,
    2944, 3087, 3224, 3358, 3487, 3611, 3732, 3848, 3960, 4068, 4172, 4272, 4368, 4460, 4549,
    4633, 4714, 4791, 4864, 4934, 5001, 5063, 5123, 5178, 5231, 5280, 5326, 5368, 5408, 5444,
    5477, 5507, 5533, 5557, 5578, 5595, 5610, 5622, 5631, 5637, 5640, 5641, 5638, 5633, 5626,
    5615, 5602, 5586, 5568, 5547, 5524, 5498, 5470, 5439, 5406, 5370, 5332, 5291, 5249, 5203,
    5156, 5106, 5054, 5000, 4944, 4885, 4825, 4762, 4697, 4630, 4561, 4490, 4416, 4341, 4264,
    4184, 4103, 4020, 3935, 3848, 3759, 3668, 3575, 3481, 3384, 3286, 3186, 3084, 2981, 2875,
    2768, 2659, 2549, 2437, 2323, 2207, 2090, 1971, 1851, 1729, 1605, 1480, 1353, 1224, 1094,
    963, 830, 695, 559, 421, 282, 142, 0, 0], dtype=np.int64)
_LOG_LUT_STEP = np.diff(LOG_LUT)        # c1 - c0 per segment


def log_scale(x: np.ndarray, enable: bool, shift: int, correction_bits: int) -> np.ndarray:
    """LogScaleApply on uint32 values held in int64 -> uint16.

    log2(v) = integer part (MSB - 1) + 16-bit fraction corrected by the segment LUT; frexp gives
    both at once: v = m * 2^e with m in [0.5, 1), so the fraction bits are floor((2m - 1) * 2^16)
    (the C code's left shift, or its truncating right shift for v >= 2^17). Without `enable`
    the values are only saturated."""
    if not enable:
        return np.minimum(x, 0xFFFF).astype(np.uint16)
    if correction_bits < 0:
        v = x >> -correction_bits
    else:
        v = (x << correction_bits) & _U32
    m, e = np.frexp(v.astype(np.float64))
    frac = np.floor(m * 131072.0 - 65536.0).astype(np.int64)              # 0 .. 65535
    seg = frac >> (_LOG_SCALE_LOG2 - _LOG_SEGMENTS_LOG2)
    rel = (_LOG_LUT_STEP[seg] * (frac & ((1 << (_LOG_SCALE_LOG2 - _LOG_SEGMENTS_LOG2)) - 1))) >> _LOG_SCALE_LOG2
    log2 = ((e.astype(np.int64) - 1) << _LOG_SCALE_LOG2) + frac + LOG_LUT[seg] + rel
    rnd = 1 << (_LOG_SCALE_LOG2 - 1)
    loge = (_LOG_COEFF * log2 + rnd) >> _LOG_SCALE_LOG2                    # < 2^21: no uint32 wrap
    scaled = loge << shift
    if shift > 10:
        scaled &= _U32
    scaled = (scaled + rnd) >> _LOG_SCALE_LOG2
    scaled[v <= 1] = 0
    return np.minimum(scaled, 0xFFFF).astype(np.uint16)
