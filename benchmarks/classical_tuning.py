"""Choose the classical references' settings on the catalogue's validation photos (never on test): the
total-variation weight of `edgeens bench --baseline tv` (sigma 25, weights 0.5-1.5 sigma), Wiener's balance and
Richardson-Lucy's iterations told the true kernel (motion blur), and the median filter's size (rain streaks). NLM
and wavelet keep scikit-image's documented settings.

    python benchmarks/classical_tuning.py  ->  benchmarks/results/classical-tuning.txt
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from skimage.restoration import denoise_tv_chambolle

from edgeens.classical import median_derain, richardson_lucy_deblur, wiener_deblur
from edgeens.data.photos import degraded_pairs, true_shakes
from edgeens.metrics import psnr

SIGMA = 25.0


def sweep(
    title: str, settings: list[float], restore: Callable[[float, str, np.ndarray], np.ndarray], degradation: str
) -> list[str]:
    """Mean val PSNR of `restore` at each setting, and the best one."""
    pairs = degraded_pairs("val", degradation, SIGMA)
    lines = [f"{title} on {len(pairs)} validation photos ({degradation})"]
    lines.append(f"  degraded input: {np.mean([psnr(lq, gt) for lq, gt in pairs.values()]):.3f} dB")
    best = (-1.0, 0.0)
    for setting in settings:
        score = float(np.mean([psnr(restore(setting, name, lq), gt) for name, (lq, gt) in pairs.items()]))
        lines.append(f"  {setting:g}: {score:.3f} dB")
        best = max(best, (score, setting))
    lines.append(f"  best: {best[1]:g} ({best[0]:.3f} dB)")
    print("\n".join(lines), flush=True)
    return lines


def main() -> None:
    shakes = true_shakes("val")
    lines = sweep(
        "TV (Chambolle) weight x sigma",
        [float(f) for f in np.round(np.arange(0.5, 1.51, 0.1), 2)],
        lambda f, _, lq: np.clip(denoise_tv_chambolle(lq, weight=f * SIGMA / 255, channel_axis=-1), 0, 1),
        "gaussian_noise",
    )
    lines += sweep(
        "Wiener balance, told the true kernel",
        [0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
        lambda b, name, lq: wiener_deblur(lq, shakes[name].kernel, b),
        "motion_blur",
    )
    lines += sweep(
        "Richardson-Lucy iterations, told the true kernel",
        [10, 20, 50, 100, 200],
        lambda n, name, lq: richardson_lucy_deblur(lq, shakes[name].kernel, int(n)),
        "motion_blur",
    )
    lines += sweep("Median filter size (px)", [3, 5, 7], lambda k, _, lq: median_derain(lq, int(k)), "rain_streaks")
    out = Path(__file__).parent / "results" / "classical-tuning.txt"
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
