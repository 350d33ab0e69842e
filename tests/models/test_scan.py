from __future__ import annotations

from unittest import mock

import pytest
import torch
from safetensors.torch import load_file

from edgeens.models import scan
from edgeens.models.scan import default_chunk_size, selective_scan
from tests.conftest import FIXTURES


def random_scan_inputs(b: int, d: int, n: int, L: int, groups: int, delta_range: float = 20.0, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "u": torch.randn(b, d, L, generator=g),
        "delta": (torch.rand(b, d, L, generator=g) * 2 - 1) * delta_range,
        "A": -torch.exp(torch.randn(d, n, generator=g)),
        "B": torch.randn(b, groups, n, L, generator=g) if groups else torch.randn(b, n, L, generator=g),
        "C": torch.randn(b, groups, n, L, generator=g) if groups else torch.randn(b, n, L, generator=g),
        "D": torch.randn(d, generator=g),
        "z": torch.randn(b, d, L, generator=g),
        "delta_bias": torch.randn(d, generator=g),
    }


@pytest.mark.parametrize("impl", ["reference", "chunked"])
def test_matches_mamba_ssm_reference_fixture(impl: str) -> None:
    f = load_file(FIXTURES / "selective_scan_groups.safetensors")
    out = selective_scan(
        f["u"], f["delta"], f["A"], f["B"], f["C"], f["D"], delta_bias=f["delta_bias"], delta_softplus=True, impl=impl
    )
    assert out.dtype == f["out"].dtype
    assert (out - f["out"]).abs().max().item() <= 1e-5


FORMS = ["blocks", "two-pass", "functional", "training"]


def chunked(x: dict, form: str, **kwargs) -> torch.Tensor:
    """The chunked scan in one of its schedules: eager blocks, eager two-pass, functional (export, and training's
    recomputing backward) or training (blocks with the explicit backward). The eager schedule is chosen by the lane
    count b * d * N; the threshold is moved to force one."""
    if form in ("blocks", "two-pass"):
        min_lanes = 0 if form == "blocks" else 1 << 62
        with torch.no_grad(), mock.patch.object(scan, "_BLOCK_MIN_LANES", min_lanes):
            return selective_scan(**x, impl="chunked", **kwargs)
    with torch.enable_grad(), scan.training_backward("recompute" if form == "functional" else "explicit"):
        leaves = {k: v.clone().requires_grad_() if v is not None else None for k, v in x.items()}
        return selective_scan(**leaves, impl="chunked", **kwargs).detach()


@pytest.mark.parametrize("L", [1, 7, 64, 257, 1000])
@pytest.mark.parametrize("groups", [0, 1, 4])
@pytest.mark.parametrize("chunk_size", [None, 16, 33])
@pytest.mark.parametrize("form", FORMS)
def test_chunked_agrees_with_reference_on_random_shapes(L: int, groups: int, chunk_size: int | None, form: str) -> None:
    x = random_scan_inputs(b=2, d=8, n=4, L=L, groups=groups, seed=L + groups)
    kwargs = {"delta_softplus": True}
    ref = selective_scan(**x, impl="reference", **kwargs)
    out = chunked(x, form, chunk_size=chunk_size, **kwargs)
    assert torch.isfinite(out).all()
    scale = ref.abs().max().clamp(min=1.0)
    assert ((out - ref).abs().max() / scale).item() <= 1e-5


@pytest.mark.parametrize("form", FORMS)
def test_time_invariant_and_mixed_b_c_forms(form: str) -> None:
    x = random_scan_inputs(b=1, d=6, n=3, L=50, groups=3)
    x["B"] = torch.randn(6, 3)  # (d, N): the same B at every position
    ref = selective_scan(**x, delta_softplus=True, impl="reference")
    assert ref.shape == (1, 6, 50)
    assert torch.allclose(chunked(x, form, delta_softplus=True, chunk_size=8), ref, atol=1e-5)


@pytest.mark.parametrize("form", FORMS)
def test_without_softplus_bias_d_or_z(form: str) -> None:
    x = random_scan_inputs(b=1, d=4, n=4, L=100, groups=1, delta_range=1.0)
    x["delta"] = x["delta"].abs()  # raw positive steps, no softplus
    x.update(D=None, z=None, delta_bias=None)
    ref = selective_scan(**x, impl="reference")
    assert torch.allclose(chunked(x, form, chunk_size=10), ref, atol=1e-5)


@pytest.mark.parametrize("form", FORMS)
def test_extreme_steps_stay_finite_and_exact(form: str) -> None:
    """delta in [-20, 20] with softplus gives decays down to exp(-20 * |A|): nothing may overflow or turn NaN."""
    x = random_scan_inputs(b=1, d=8, n=16, L=2048, groups=4, delta_range=20.0)
    x["A"] = -torch.arange(1, 17.0).repeat(8, 1) * 4  # |A| up to 64: exp(+cumsum) tricks would overflow here
    ref = selective_scan(**x, delta_softplus=True, impl="reference")
    for chunk in (16, 256, 2048):
        out = chunked(x, form, delta_softplus=True, chunk_size=chunk)
        assert torch.isfinite(out).all()
        assert ((out - ref).abs().max() / ref.abs().max()).item() <= 1e-5


@pytest.fixture(scope="module")
def long_sequence() -> tuple[dict, torch.Tensor]:
    x = random_scan_inputs(b=1, d=4, n=4, L=65536, groups=4, seed=3)
    return x, selective_scan(**x, delta_softplus=True, impl="reference")


@pytest.mark.slow
@pytest.mark.parametrize("form", FORMS)
def test_long_sequence_65536(long_sequence: tuple[dict, torch.Tensor], form: str) -> None:
    """Level-1 length of a 256x256 image: the chunked scan agrees with the recurrence and stays finite."""
    x, ref = long_sequence
    out = chunked(x, form, delta_softplus=True)
    assert torch.isfinite(out).all()
    assert ((out - ref).abs().max() / ref.abs().max()).item() <= 1e-5


def test_gradients_match_the_reference() -> None:
    x = random_scan_inputs(b=1, d=4, n=3, L=40, groups=2, delta_range=2.0)
    grads = {}
    for impl in ("reference", "chunked"):
        leaves = {k: v.clone().requires_grad_() for k, v in x.items()}
        selective_scan(
            **leaves, delta_softplus=True, impl=impl, chunk_size=8 if impl == "chunked" else None
        ).square().sum().backward()
        grads[impl] = {k: v.grad for k, v in leaves.items()}
    for key in x:
        assert torch.allclose(grads["chunked"][key], grads["reference"][key], rtol=1e-4, atol=1e-4), key


@pytest.mark.parametrize(
    "groups, extras, time_invariant",
    [(1, True, False), (2, True, False), (4, False, False), (3, True, True), (0, True, False)],
    ids=["1 group", "2 groups", "4 groups, bare", "time-invariant B, C", "shared B, C"],
)
def test_explicit_backward_passes_gradcheck_in_float64(groups: int, extras: bool, time_invariant: bool) -> None:
    """The reverse scan's gradients against finite differences, through several blocks of which the last is short
    (L = 11, blocks of 4), with and without the step bias, softplus, D and z."""
    b, d, n, L = 2, 12, 3, 11
    x = {k: v.double() for k, v in random_scan_inputs(b, d, n, L, groups, delta_range=1.5, seed=3).items()}
    if time_invariant:
        x["B"], x["C"] = torch.randn(d, n, dtype=torch.float64), torch.randn(d, n, dtype=torch.float64)
    if not extras:
        x = {k: v for k, v in x.items() if k not in ("D", "z", "delta_bias")}
        x["delta"] = x["delta"].abs() * 0.3  # without softplus the steps must stay positive to stay stable
    names = list(x)
    leaves = tuple(x[k].requires_grad_() for k in names)

    def scan_of(*tensors: torch.Tensor) -> torch.Tensor:
        return selective_scan(**dict(zip(names, tensors, strict=True)), delta_softplus=extras, chunk_size=4)

    assert torch.autograd.gradcheck(scan_of, leaves, atol=1e-6, rtol=1e-5)


def test_explicit_backward_matches_the_recomputing_one_at_the_tiny_preset() -> None:
    """A tiny preset MambaIR stack at full resolution (SS2D: four directions as groups, d_state 16): the explicit
    reverse scan and autograd over the recomputed unrolled scan give the same gradients, parameters and input."""
    from edgeens.models.space import preset_space
    from edgeens.models.surrogates import build_surrogate

    space = preset_space("tiny")
    stage = space.stages[0]
    torch.manual_seed(0)
    block = build_surrogate(stage, f"M{stage.depth}", space.family("M")).train()
    features = torch.randn(2, stage.width, 16, 16)
    weights = torch.randn(2, stage.width, 16, 16)
    grads = {}
    for kind in ("explicit", "recompute"):
        block.zero_grad()
        x = features.clone().requires_grad_()
        with scan.training_backward(kind):
            (block(x) * weights).sum().backward()
        grads[kind] = [x.grad] + [p.grad.clone() for p in block.parameters()]
    for explicit, recompute in zip(grads["explicit"], grads["recompute"], strict=True):
        assert (explicit - recompute).abs().max() <= 1e-4 * recompute.abs().max() + 1e-7


def test_training_backward_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="explicit or recompute"), scan.training_backward("fast"):  # type: ignore[arg-type]
        pass


def test_training_keeps_the_inputs_not_every_steps_state() -> None:
    """Autograd of the unrolled scan would hold about ten state-sized tensors per step (b * d * N * L floats each
    over the whole sequence); the recomputing backward keeps the inputs, a few times b * d * L."""
    b, d, n, L = 2, 32, 16, 1024
    leaves = {k: v.requires_grad_() for k, v in random_scan_inputs(b=b, d=d, n=n, L=L, groups=4).items()}
    saved: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = selective_scan(**leaves, delta_softplus=True, chunk_size=32)
    state_volume = b * d * n * L * 4
    assert sum(saved) < state_volume  # kept: inputs and a few (b, d, L) tensors; not one state volume
    y.square().sum().backward()  # the recomputed backward still reaches every input
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in leaves.values())


def test_output_dtype_follows_u() -> None:
    x = random_scan_inputs(b=1, d=4, n=2, L=20, groups=1)
    x["u"] = x["u"].to(torch.bfloat16)
    assert selective_scan(**x, delta_softplus=True).dtype == torch.bfloat16


def test_chunked_never_builds_a_whole_sequence_state_tensor(monkeypatch) -> None:
    """Functional form: the largest tensor is one step (b, d, N, nc). Eager form: the largest buffer is one block
    (T, b, N, d). Both far below (b, d, L, N)."""
    b, d, n, L, T = 1, 16, 16, 4096, 64
    x = random_scan_inputs(b=b, d=d, n=n, L=L, groups=4)
    biggest = {"exp": 0, "new_empty": 0}
    original_exp, original_new_empty = torch.exp, torch.Tensor.new_empty

    def spy_exp(t, *args, **kwargs):
        biggest["exp"] = max(biggest["exp"], t.numel())
        return original_exp(t, *args, **kwargs)

    def spy_new_empty(self, *size, **kwargs):
        out = original_new_empty(self, *size, **kwargs)
        biggest["new_empty"] = max(biggest["new_empty"], out.numel())
        return out

    monkeypatch.setattr(torch, "exp", spy_exp)
    monkeypatch.setattr(torch.Tensor, "new_empty", spy_new_empty)
    out = chunked(x, "functional", delta_softplus=True, chunk_size=T)
    assert 0 < biggest["exp"] <= b * d * n * (L // T)
    assert torch.allclose(chunked(x, "blocks", delta_softplus=True, chunk_size=T), out, atol=1e-5)
    assert 0 < biggest["new_empty"] <= T * b * n * d


def test_default_chunk_size_is_cache_sized_and_bounded() -> None:
    assert default_chunk_size(torch.empty(1, 384, 65536), 16) == 128  # a 3 MB block at level 1
    assert default_chunk_size(torch.empty(1, 3072, 1024), 16) == 16  # level 4
    assert default_chunk_size(torch.empty(1, 32, 65536), 4) == 16  # 128 lanes: two-pass steps of 1.5M elements
    assert default_chunk_size(torch.empty(1, 4, 10), 4) == 10
    assert default_chunk_size(torch.empty(1, 384, 65536), 16, functional=True) == 128  # sqrt(L) / 2
    assert default_chunk_size(torch.empty(1, 384, 768), 16, functional=True) == 8


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"u": torch.zeros(4, 10)}, "u must be"),
        ({"delta": torch.zeros(1, 4, 9)}, "delta must have"),
        ({"A": torch.zeros(5, 2)}, "A must be"),
        ({"B": torch.zeros(1, 3, 2, 10)}, "groups dividing"),
        ({"C": torch.zeros(1, 3, 10)}, "rank 3"),
        ({"D": torch.zeros(3)}, "D must be"),
    ],
)
def test_bad_shapes_are_rejected_with_the_expected_shape(change: dict, match: str) -> None:
    x = {
        "u": torch.zeros(1, 4, 10),
        "delta": torch.zeros(1, 4, 10),
        "A": torch.zeros(4, 2),
        "B": torch.zeros(1, 2, 2, 10),
        "C": torch.zeros(1, 2, 2, 10),
        "D": torch.zeros(4),
    }
    x.update(change)
    with pytest.raises(ValueError, match=match):
        selective_scan(**x)


def test_cuda_impl_explains_what_it_needs_on_cpu() -> None:
    x = random_scan_inputs(b=1, d=4, n=2, L=8, groups=1)
    with pytest.raises(RuntimeError, match="mamba_ssm"):
        selective_scan(**x, impl="cuda")
    with pytest.raises(ValueError, match="unknown selective_scan impl"):
        selective_scan(**x, impl="fast")  # type: ignore[arg-type]


def test_auto_uses_chunked_on_cpu(monkeypatch) -> None:
    import edgeens.models.scan as scan

    called = []
    monkeypatch.setattr(scan, "_scan_chunked", lambda *a: called.append(1) or torch.zeros(1, 4, 8))
    x = random_scan_inputs(b=1, d=4, n=2, L=8, groups=1)
    selective_scan(**x)
    assert called == [1]


class ScanLayer(torch.nn.Module):
    """The scan with SS2D's arguments, as a module to export."""

    def __init__(self, d: int, n: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.A = torch.nn.Parameter(-torch.exp(torch.randn(d, n, generator=g)))
        self.D = torch.nn.Parameter(torch.randn(d, generator=g))
        self.delta_bias = torch.nn.Parameter(torch.randn(d, generator=g))

    def forward(self, u, delta, B, C):
        return selective_scan(u, delta, self.A, B, C, self.D, delta_bias=self.delta_bias, delta_softplus=True)


@pytest.mark.slow
def test_chunked_scan_exports_and_runs_in_executorch_with_xnnpack() -> None:
    from edgeens.compile.executorch import lower_to_executorch, run_program

    layer = ScanLayer(d=16, n=8).eval()
    x = random_scan_inputs(b=1, d=16, n=8, L=300, groups=4, delta_range=5.0)
    inputs = (x["u"], x["delta"], x["B"], x["C"])
    with torch.no_grad():
        eager = layer(*inputs)
        reference = selective_scan(
            x["u"],
            x["delta"],
            layer.A,
            x["B"],
            x["C"],
            layer.D,
            delta_bias=layer.delta_bias,
            delta_softplus=True,
            impl="reference",
        )
    program = lower_to_executorch(layer, inputs)
    assert program.delegated_calls >= 1
    out = run_program(program.buffer, inputs)[0]
    assert (out - eager).abs().max().item() <= 1e-4
    assert (out - reference).abs().max().item() <= 1e-4
