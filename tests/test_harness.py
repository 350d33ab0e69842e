from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from edgeens.cli import app
from edgeens.data.images import write_image
from edgeens.metrics import psnr
from edgeens.models import Restormer
from edgeens.restore import load_restorer, restore_array

runner = CliRunner()


def test_bench_compares_models_on_the_same_images(tmp_path) -> None:
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2])
        paths.append(tmp_path / f"model{seed}.safetensors")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(paths[-1]))
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        clean = rng.random((32, 40, 3))
        (tmp_path / "data" / "input").mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / "target").mkdir(parents=True, exist_ok=True)
        write_image(tmp_path / "data" / "target" / name, clean)
        write_image(tmp_path / "data" / "input" / name, np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1))
    args = ["bench", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "bench")]
    result = runner.invoke(app, [*args, "--model", str(paths[0]), "--model", str(paths[1])])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "bench" / "bench.csv").open()))
    assert [(r["model"], r["image"]) for r in rows] == [
        ("model0.safetensors", "a.png"),
        ("model0.safetensors", "b.png"),
        ("model1.safetensors", "a.png"),
        ("model1.safetensors", "b.png"),
    ]
    # The harness's figure is what restoring the image and scoring it gives.
    from edgeens.data.images import read_image

    restored = restore_array(load_restorer(paths[0]), read_image(tmp_path / "data" / "input" / "a.png"))
    assert float(rows[0]["psnr"]) == psnr(restored, read_image(tmp_path / "data" / "target" / "a.png"))
    table = (tmp_path / "bench" / "bench.md").read_text()
    assert "model0.safetensors PSNR / SSIM | model1.safetensors PSNR / SSIM" in table
    missing = runner.invoke(app, ["bench", "--model", str(tmp_path / "nope.pte")])
    assert missing.exit_code == 2 and "does not exist" in " ".join(missing.output.split())


def test_classical_baselines_sit_beside_the_models(tmp_path) -> None:
    torch.manual_seed(0)
    model = Restormer(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 2, 2])
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    from skimage.data import astronaut

    clean = astronaut()[100:196, 150:278].astype(np.float32) / 255
    noisy = clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape).astype(np.float32)
    for folder, image in (("target", clean), ("input", np.clip(noisy, 0, 1))):
        (tmp_path / "data" / folder).mkdir(parents=True)
        write_image(tmp_path / "data" / folder / "a.png", image)
    args = ["bench", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "bench"), "--model", str(path)]
    result = runner.invoke(app, [*args, "--baseline", "nlm", "--baseline", "wavelet", "--baseline", "tv"])
    assert result.exit_code == 0, result.output
    rows = {r["model"]: r for r in csv.DictReader((tmp_path / "bench" / "bench.csv").open())}
    assert set(rows) == {"model.safetensors", "nlm (scikit-image)", "wavelet (scikit-image)", "tv (scikit-image)"}
    from edgeens.data.images import read_image

    pair = [read_image(tmp_path / "data" / folder / "a.png") for folder in ("input", "target")]
    noisy_psnr = psnr(*pair)
    for name in ("nlm (scikit-image)", "wavelet (scikit-image)", "tv (scikit-image)"):
        assert float(rows[name]["psnr"]) > noisy_psnr + 3, name  # each denoises, by several dB
        assert float(rows[name]["seconds"]) > 0
    assert "nlm (scikit-image) PSNR / SSIM" in (tmp_path / "bench" / "bench.md").read_text()
    for bad, message in ((["--baseline", "bm3d"], "unknown baseline 'bm3d'"), ([], "nothing to compare")):
        failed = runner.invoke(app, ["bench", "--data", str(tmp_path / "data"), *bad])
        assert failed.exit_code == 2 and message in " ".join(failed.output.split()), failed.output


def test_an_image_too_small_to_score_is_named(tmp_path) -> None:
    from edgeens.harness import benchmark_models
    from edgeens.restore import Restorer

    identity = Restorer("identity", lambda x: x, None)
    tiny = np.full((1, 1, 3), 0.5, np.float32)
    with pytest.raises(ValueError, match=r"^dot.png: SSIM needs images of at least 11x11 pixels"):
        benchmark_models([identity], [("dot.png", tiny, tiny)])


def test_bench_reads_a_folder_one_pair_at_a_time(tmp_path, monkeypatch) -> None:
    import edgeens.data.paired
    from edgeens.harness import bench_pairs
    from tests.data.layouts import make_layout

    data = make_layout(tmp_path / "data", "restormer", count=4)
    reads: list[str] = []
    real = edgeens.data.paired.read_image
    monkeypatch.setattr(
        edgeens.data.paired, "read_image", lambda path, *a, **k: reads.append(path.name) or real(path, *a, **k)
    )
    pairs, count, _ = bench_pairs(data, "test", None, None)
    assert count == 4 and reads == []  # nothing read before the first pair is asked for
    next(pairs)
    assert len(reads) == 2  # one input and its target
