"""Choose the total-variation weight of `edgeens bench --baseline tv` on the catalogue's validation photos (never on
test): mean PSNR at sigma 25 for weights 0.5-1.5 sigma. NLM and wavelet keep scikit-image's documented settings.

    python benchmarks/classical_tuning.py  ->  benchmarks/results/classical-tuning.txt
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.restoration import denoise_tv_chambolle

from edgeens.data.photos import degraded_pairs
from edgeens.metrics import psnr

SIGMA = 25.0


def main() -> None:
    pairs = list(degraded_pairs("val", "gaussian_noise", SIGMA).values())
    lines = [f"TV (Chambolle) weight on {len(pairs)} validation photos, sigma {SIGMA:g}"]
    best = None
    for factor in np.round(np.arange(0.5, 1.51, 0.1), 2):
        scores = [
            psnr(np.clip(denoise_tv_chambolle(lq, weight=factor * SIGMA / 255, channel_axis=-1), 0, 1), gt)
            for lq, gt in pairs
        ]
        lines.append(f"weight {factor:.1f} sigma: {np.mean(scores):.3f} dB")
        best = max(best or (-1.0, 0.0), (float(np.mean(scores)), float(factor)))
    lines.append(f"best: {best[1]:.1f} sigma ({best[0]:.3f} dB)")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out = Path(__file__).parent / "results" / "classical-tuning.txt"
    out.write_text(text)


if __name__ == "__main__":
    main()
