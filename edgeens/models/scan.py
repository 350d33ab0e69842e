"""Selective scan (Mamba S6) with mamba_ssm's `selective_scan_ref` semantics, in three implementations.

    h_l = exp(delta_l * A) * h_{l-1} + delta_l * B_l * u_l        y_l = <h_l, C_l> + D * u      out = y * silu(z)

- ``reference``: the step-by-step recurrence over L, the ground truth in tests.
- ``chunked``: the export path. The sequence is cut into chunks of ``T`` positions; three schedules, one result.
  - Functional (torch.export and autograd): pass 1 runs the recurrence inside every chunk at once (T steps, each
    vectorised over all chunks, starting from a zero state); the chunk-end states are combined by a log-depth
    (Hillis-Steele) scan over chunks; pass 2 adds each chunk's carried-in state, decayed step by step. The number
    of graph steps (2T + log2 nc) is fixed by static shapes, and the largest tensor is one step, (b, d, N, nc).
  - Eager inference, two-pass: the same two passes with in-place ops on preallocated step buffers.
  - Eager inference, blocks (when b * d * N is wide enough to carry per-op overhead): chunks are cache-sized
    blocks taken in order, the state carried from one to the next. Decays, inputs and read-outs are computed for
    a whole block at once; only one multiply-add per position is sequential. Each element is exponentiated once
    (pass 2 exponentiates it again), which keeps the level-1 SS2D scan of a 256x256 image within 2x of a bare exp
    plus two multiply-adds (benchmarks/scan.py). The largest tensor is one block, (T, b, N, d).
  All three form only decays exp(delta * A) of single steps (no exp of a growing cumulative sum), never (b, d, L, N).
- ``cuda``: mamba_ssm's fused kernel, when it imports and the tensors live on a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

ScanImpl = Literal["auto", "reference", "chunked", "cuda"]
IMPLEMENTATIONS = ("reference", "chunked", "cuda")

# Eager blocks: decays and states of about 768K elements each (3 MB): longer blocks leave the caches, shorter ones
# pay more per-op overhead (measured on level 1-4 SS2D shapes: 128, 64, 32, 16-32 positions were best).
_EAGER_BLOCK_ELEMENTS = 768 * 1024
# Blocks run one op per position over b * d * N lanes (~1.8 us each); on narrow scans that overhead costs more
# than the two-pass form's second exp (measured at L = 65536 against two-pass: 128 lanes 3.6x slower, 1024 lanes
# 1.1x slower, 2048 lanes 1.3x faster, 6144 lanes 1.7x faster).
_BLOCK_MIN_LANES = 1536
# Two-pass eager steps hold about 1.5M fp32 elements (6 MB: fewer, larger steps stream from memory, more, smaller
# steps pay per-op overhead; measured best on a 2 MB-L2 Xeon).
_EAGER_STEP_ELEMENTS = 1_500_000
# Longer export chunks mean smaller per-step tensors (level 1 of a 256x256 image: 12.6 MB at T = 128 against
# 50 MB at 32), run 1.4x faster in ExecuTorch and plan less memory, but lower about 2.4x slower (17 s -> 41 s).
_EXPORT_MAX_CHUNK = 128
# Eager decays are 2^(delta * A log2 e): torch's exp2 runs about 3x faster than its exp on this host's AVX-512
# (0.29 against 0.85 ms per million floats, one thread), and the decays are most of a scan's arithmetic.
_LOG2E = 1.4426950408889634


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    impl: ScanImpl = "auto",
    chunk_size: int | None = None,
) -> Tensor:
    """Selective scan with mamba_ssm's reference semantics; returns (b, d, L) in u's dtype.

    u, delta: (b, d, L). A: (d, N), real. B, C: (d, N) time-invariant, (b, N, L) shared, or (b, G, N, L) grouped
    (channel i uses group i // (d / G)). D, delta_bias: (d,). z: (b, d, L). All arithmetic is float32 (float64
    when the inputs are).
    ``impl="auto"`` picks ``cuda`` when mamba_ssm imports and u is on a GPU, else ``chunked``.
    """
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    if impl == "auto":
        impl = "cuda" if (u.is_cuda and _cuda_scan() is not None) else "chunked"
    if impl == "cuda":
        fn = _cuda_scan()
        if fn is None or not u.is_cuda:
            raise RuntimeError(
                "selective_scan(impl='cuda') needs mamba_ssm installed (pip install 'edgeens[cuda]') and tensors "
                "on a CUDA device; use impl='chunked' on CPU."
            )
        return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    if impl not in ("reference", "chunked"):
        raise ValueError(f"unknown selective_scan impl {impl!r}; choose one of auto, {', '.join(IMPLEMENTATIONS)}")

    dtype_in = u.dtype
    u, delta, A = _fp32(u), _fp32(delta), _fp32(A)
    D, delta_bias = (None if v is None else _fp32(v) for v in (D, delta_bias))
    Bg, Cg = _grouped(B, u), _grouped(C, u)
    if Bg.shape[1] != Cg.shape[1]:  # e.g. time-invariant B with grouped C: give every channel its own group
        d = u.shape[1]
        Bg = Bg.repeat_interleave(d // Bg.shape[1], dim=1)
        Cg = Cg.repeat_interleave(d // Cg.shape[1], dim=1)
    if impl == "chunked":
        y = _scan_chunked(u, delta, A, Bg, Cg, D, delta_bias, delta_softplus, chunk_size)
    else:
        y = _skip(_scan_reference(u, _prepare_delta(delta, delta_bias, delta_softplus), A, Bg, Cg), u, D)
    if z is not None:
        y = y * F.silu(_fp32(z))
    return y if y.dtype == dtype_in else y.to(dtype_in)


def _prepare_delta(delta: Tensor, delta_bias: Tensor | None, delta_softplus: bool) -> Tensor:
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    return _softplus(delta) if delta_softplus else delta


def _skip(y: Tensor, u: Tensor, D: Tensor | None) -> Tensor:
    return y if D is None else y + u * D[:, None]


def _softplus(x: Tensor) -> Tensor:
    """torch's softplus; under torch.export as relu(x) + log(1 + exp(-|x|)), which XNNPACK lowers whole
    (F.softplus decomposes into log1p/where, which run on ExecuTorch's slow portable kernels)."""
    if torch.compiler.is_exporting():
        return torch.relu(x) + torch.log(torch.exp(-torch.abs(x)) + 1.0)  # a float: an int constant adds a cast
    return F.softplus(x)


def _fp32(x: Tensor) -> Tensor:
    """x in float32, or as it is when float32 or float64 (gradcheck's precision)."""
    # A no-op cast still adds two nodes per tensor to an exported graph; skip it when nothing changes.
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _check_shapes(u, delta, A, B, C, D, z, delta_bias) -> None:
    def fail(msg: str) -> None:
        raise ValueError(f"selective_scan: {msg}")

    if u.dim() != 3:
        fail(f"u must be (batch, channels, length), got shape {tuple(u.shape)}")
    b, d, L = u.shape
    if delta.shape != u.shape:
        fail(f"delta must have u's shape {tuple(u.shape)}, got {tuple(delta.shape)}")
    if A.dim() != 2 or A.shape[0] != d:
        fail(f"A must be (channels={d}, state), got {tuple(A.shape)}")
    if A.is_complex():
        fail("complex A is not supported (MambaIR and Mamba-1 vision models use real A)")
    n = A.shape[1]
    for name, M in (("B", B), ("C", C)):
        if M.dim() == 2 and M.shape != (d, n):
            fail(f"{name} of rank 2 must be (channels={d}, state={n}), got {tuple(M.shape)}")
        elif M.dim() == 3 and M.shape != (b, n, L):
            fail(f"{name} of rank 3 must be (batch={b}, state={n}, length={L}), got {tuple(M.shape)}")
        elif M.dim() == 4 and (M.shape[0] != b or M.shape[2:] != (n, L) or d % M.shape[1] != 0):
            fail(
                f"{name} of rank 4 must be (batch={b}, groups dividing {d}, state={n}, length={L}), "
                f"got {tuple(M.shape)}"
            )
        elif M.dim() not in (2, 3, 4):
            fail(f"{name} must have rank 2, 3 or 4, got shape {tuple(M.shape)}")
    for name, v in (("D", D), ("delta_bias", delta_bias)):
        if v is not None and v.shape != (d,):
            fail(f"{name} must be (channels={d},), got {tuple(v.shape)}")
    if z is not None and z.shape != u.shape:
        fail(f"z must have u's shape {tuple(u.shape)}, got {tuple(z.shape)}")


def _grouped(M: Tensor, u: Tensor) -> Tensor:
    """Bring B or C to (b, G, N, L) float32: G = d for time-invariant (d, N), 1 for shared (b, N, L)."""
    b, d, L = u.shape
    M = _fp32(M)
    if M.dim() == 2:
        return M[None, :, :, None].expand(b, d, M.shape[1], L)
    if M.dim() == 3:
        return M[:, None]
    return M


def _scan_reference(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """The recurrence one position at a time (mamba_ssm's selective_scan_ref)."""
    b, d, L = u.shape
    rep = d // B.shape[1]
    Bx = B.repeat_interleave(rep, dim=1)  # (b, d, N, L)
    Cx = C.repeat_interleave(rep, dim=1)
    h = u.new_zeros(b, d, A.shape[1])
    ys = []
    for i in range(L):
        h = torch.exp(delta[:, :, i, None] * A) * h + (delta[:, :, i] * u[:, :, i])[..., None] * Bx[..., i]
        ys.append((h * Cx[..., i]).sum(-1))
    return torch.stack(ys, dim=-1)


def _runs_in_blocks(lanes: int) -> bool:
    """Whether eager inference takes the block schedule for a scan of b * d * N lanes (else two-pass)."""
    return lanes >= _BLOCK_MIN_LANES


def _block_length(lanes: int) -> int:
    """Positions per eager block: decays of about 768K elements (3 MB), 16 to 256 positions."""
    return int(max(16, min(256, 2 ** round(math.log2(max(1.0, _EAGER_BLOCK_ELEMENTS / lanes))))))


def default_chunk_size(u: Tensor, n_state: int, functional: bool = False) -> int:
    """Chunk length T: a cache-sized block in eager inference, a short chunk in the functional form (torch.export,
    autograd).

    Eager: a block's decays hold about 768K elements (3 MB; T = 128 at level 1 of a 256x256 image, 16 at level 4).
    Export: the graph holds about 20 nodes per step, so T grows only with the square root of L (8 at L = 768,
    128 at L = 65536)."""
    b, d, L = u.shape
    if functional:
        target = 2 ** math.floor(math.log2(max(1, L)) / 2 - 1)
        return int(min(L, max(4, min(_EXPORT_MAX_CHUNK, target))))
    lanes = b * d * n_state
    if _runs_in_blocks(lanes):
        return min(L, _block_length(lanes))
    target = 2 ** round(math.log2(max(1.0, lanes * L / _EAGER_STEP_ELEMENTS)))
    return int(min(L, max(16, min(256, target))))


@dataclass(frozen=True)
class _Chunks:
    """Shapes of a chunked scan: batch, groups, channels per group, state, chunk length, chunks, true length."""

    b: int
    G: int
    Dg: int
    N: int
    T: int
    nc: int
    L: int


def _scan_chunked(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
    chunk_size: int | None,
) -> Tensor:
    b, d, L = u.shape
    G, N = B.shape[1], B.shape[2]
    tensors = (u, delta, A, B, C, D, delta_bias)
    training = not torch.compiler.is_exporting() and torch.is_grad_enabled() and _needs_grad(*tensors)
    functional = torch.compiler.is_exporting() or training
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"selective_scan: chunk_size must be positive, got {chunk_size}")
    if training and _TRAINING_BACKWARD == "explicit":
        block = min(L, chunk_size or _block_length(b * d * N))
        y = _BlockScan.apply(u, _prepare_delta(delta, delta_bias, delta_softplus), A, B, C, block)
        return _skip(y, u, D)
    T = chunk_size or default_chunk_size(u, N, functional)
    if not functional and _runs_in_blocks(b * d * N):
        return _chunked_blocks(u, delta, A, B, C, D, delta_bias, delta_softplus, min(T, L))
    nc = math.ceil(L / T)
    pad = nc * T - L
    if pad:  # padded positions come after every real one, so they never reach a real output
        u, delta, B, C = (F.pad(x, (0, pad)) for x in (u, delta, B, C))
    shape = _Chunks(b, G, d // G, N, T, nc, L)
    if not functional:
        return _chunked_two_pass(u, delta, A, B, C, D, delta_bias, delta_softplus, shape)
    delta = _prepare_delta(delta, delta_bias, delta_softplus)
    if torch.compiler.is_exporting():
        y = _chunked_functional(u, delta, A, B, C, shape)
    else:
        # Training: autograd would keep every step's state-sized tensors (about ten times b * d * N * L floats per
        # scan, 7.7 GB for the tiny preset's MambaIR stack at batch 8 of 24x24); keep the inputs and recompute
        # one scan at a time in the backward pass instead.
        y = checkpoint(_chunked_functional, u, delta, A, B, C, shape, use_reentrant=False)
    return _skip(y, u[..., :L] if pad else u, D)


def _chunked_functional(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, shape: _Chunks) -> Tensor:
    """Autograd and torch.export form: no writes into views, and only ops that XNNPACK lowers. Every input is laid
    out once as (step, batch x chunk, group, ...), so step t of every chunk is one contiguous slice of the leading
    axis, the state (batch x chunk, group, channel, state) broadcasts against A (group, channel, state) as is, and
    the read-out over the state is a 3-D batched matmul (mul + sum would run on ExecuTorch's portable kernels).
    The graph is unrolled over the T steps, so nodes per step are what export time is made of: the slices of
    delta and C are taken once and reused by both passes."""
    b, G, Dg, N, T, nc, L = shape.b, shape.G, shape.Dg, shape.N, shape.T, shape.nc, shape.L
    M = b * nc

    def steps(x: Tensor, rows: int) -> Tensor:
        """(b, G, rows, nc * T) -> (T * b * nc, G, rows)."""
        return x.reshape(b, G, rows, nc, T).permute(4, 0, 3, 1, 2).reshape(T * M, G, rows)

    A_t = A.reshape(G, Dg, N)
    dl = steps(delta.reshape(b, G, Dg, nc * T), Dg).reshape(T * M, G, Dg, 1)  # reshape: unsqueeze is not
    du = steps((delta * u).reshape(b, G, Dg, nc * T), Dg).reshape(T * M, G, Dg, 1)  # delegated off the last axis
    B_rows = steps(B, N).reshape(T * M, G, 1, N)
    C_cols = steps(C, N).reshape(T * M * G, N, 1)
    dl_t = [dl[t * M : (t + 1) * M] for t in range(T)]
    c_t = [C_cols[t * M * G : (t + 1) * M * G] for t in range(T)]

    def read_out(state: Tensor, t: int) -> Tensor:  # (M*G, Dg, N) @ (M*G, N, 1) -> (M*G, Dg, 1)
        return torch.bmm(state.reshape(M * G, Dg, N), c_t[t])

    # Every op below lowers to XNNPACK, so the whole scan is one delegate (no zeros, sums or expands, which run
    # on portable kernels and split the graph into partitions whose boundary tensors ExecuTorch must keep).
    h = du[0:M] * B_rows[0:M]  # the state starts at zero, so step 0 is its input alone
    elapsed = [dl_t[0]]  # sum of the step sizes up to t inside the chunk: (M, G, Dg, 1), small
    ys = [read_out(h, 0)]
    for t in range(1, T):
        h = torch.exp(dl_t[t] * A_t) * h + du[t * M : (t + 1) * M] * B_rows[t * M : (t + 1) * M]
        elapsed.append(elapsed[-1] + dl_t[t])
        ys.append(read_out(h, t))
    chunk_decay = torch.exp(elapsed[-1] * A_t).reshape(b, nc, G, Dg, N)
    carry = _carry_in(h.reshape(b, nc, G, Dg, N), chunk_decay, dim=1).reshape(M, G, Dg, N)
    # Pass 2: the carried-in state reaches step t decayed by exp(A * elapsed_t) (at most one chunk of decay,
    # always in [0, 1]). Written this way, no state-sized tensor of pass 1 is needed again: recomputing pass 1's
    # exp(dl_t * A) would be merged with it by common-subexpression elimination, keeping T of them alive.
    for t in range(T):
        ys[t] = ys[t] + read_out(carry * torch.exp(elapsed[t] * A_t), t)
    y = torch.cat(ys, dim=0).reshape(T, b, nc, G, Dg)
    y = y.permute(1, 3, 4, 2, 0).reshape(b, G * Dg, nc * T)
    return y[..., :L] if nc * T != L else y  # a full slice exports as alias_copy, which XNNPACK leaves out


def _chunked_blocks(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
    block: int,
    entering: Tensor | None = None,
) -> Tensor:
    """Eager inference: blocks of ``block`` positions, the state carried from block to block (written to
    ``entering[j]``, (b, N, d), as block j starts, when given: what the explicit backward recomputes from).

    Inside a block, everything with a per-position cost is one op over the whole block: the decays
    exp(delta * A) (the one exp per element), the inputs delta * B * u and the read-outs <h, C>. What stays
    sequential is a single fused multiply-add per position, h_l = decay_l * h_{l-1} + input_l, over every
    (batch, channel, state) lane at once, written over that position's input. No second pass: the two-pass form
    must exponentiate every element twice, which alone costs more than the floor. Every buffer is block-sized
    and reused, laid out (position, batch, state, channel) so the products broadcast along contiguous channels;
    the block's inputs are transposed in cache-sized tiles.
    """
    b, d, L = u.shape
    G, N = B.shape[1], B.shape[2]
    Dg, K = d // G, block
    A_t = (A * _LOG2E).t().contiguous()  # (N, d), for exp2
    B_rows, C_rows = B.reshape(b, G * N, L), C.reshape(b, G * N, L)  # a view, also for time-invariant B or C
    tile, tile_bc = u.new_empty(b, d, K), u.new_empty(b, G * N, K)
    dl, du, y = u.new_empty(K, b, d), u.new_empty(K, b, d), u.new_empty(K, b, d)
    Bb, Cb = u.new_empty(K, b, G * N), u.new_empty(K, b, G * N)
    decay, state = u.new_empty(K, b, N, d), u.new_empty(K, b, N, d)
    decays, states = decay.unbind(0), state.unbind(0)  # views made once: ~0.5 us each, K of them per block
    carry = u.new_zeros(b, N, d)
    out = torch.empty_like(u)

    def read_out_views(k: int) -> list[tuple[Tensor, Tensor, Tensor]]:
        """(y, h[n], C[n]) views of the first k positions, for y = sum_n h[n] * C[n] as N multiply-adds."""
        h, C_k, y_g = state[:k].view(k, b, N, G, Dg), Cb[:k].view(k, b, G, N), y[:k].view(k, b, G, Dg)
        return [(y_g, h[:, :, n], C_k[:, :, :, n, None]) for n in range(N)]

    full_block_read_out = read_out_views(K)  # the buffers are reused, so are their views

    for l0 in range(0, L, K):
        k = min(K, L - l0)
        if entering is not None:
            entering[l0 // K].copy_(carry)
        _load_block(delta, tile, dl, l0, k)
        _load_block(u, tile, du, l0, k)
        _load_block(B_rows, tile_bc, Bb, l0, k)
        _load_block(C_rows, tile_bc, Cb, l0, k)
        dl_k, du_k, y_k = dl[:k], du[:k], y[:k]
        if delta_bias is not None:
            dl_k.add_(delta_bias)
        if delta_softplus:
            torch.ops.aten.softplus.out(dl_k, 1, 20, out=dl_k)
        if D is not None:
            torch.mul(du_k, D, out=y_k)  # the skip first, while du_k still holds u
        else:
            y_k.zero_()
        du_k.mul_(dl_k)
        torch.mul(dl_k.unsqueeze(2), A_t, out=decay[:k]).exp2_()
        B_k = Bb[:k].view(k, b, G, N).transpose(2, 3).unsqueeze(-1)  # (k, b, N, G, 1)
        torch.mul(du_k.view(k, b, 1, G, Dg), B_k, out=state[:k].view(k, b, N, G, Dg))
        states[0].addcmul_(carry, decays[0])
        for t in range(1, k):
            states[t].addcmul_(states[t - 1], decays[t])
        carry.copy_(states[k - 1])
        for y_g, h_n, C_n in full_block_read_out if k == K else read_out_views(k):  # no (k, b, N, d) temporary
            y_g.addcmul_(h_n, C_n)
        _store_block(y_k, tile, out, l0, k)
    return out


def _load_block(src: Tensor, tile: Tensor, dst: Tensor, l0: int, k: int) -> None:
    """dst[:k] = src[..., l0:l0 + k] as (position, batch, rows): a row copy, then torch's tiled 2-D transpose."""
    tile = tile[..., :k]
    tile.copy_(src[..., l0 : l0 + k])
    for i in range(src.shape[0]):
        dst[:k, i].copy_(tile[i].t())


def _store_block(src: Tensor, tile: Tensor, dst: Tensor, l0: int, k: int) -> None:
    """dst[..., l0:l0 + k] = src[:k] laid out back as (batch, rows, position): _load_block's inverse."""
    tile = tile[..., :k]
    for i in range(dst.shape[0]):
        tile[i].copy_(src[:k, i].t())
    dst[..., l0 : l0 + k].copy_(tile)


class _BlockScan(torch.autograd.Function):
    """Training form, y = scan(u, delta, A, B, C) with delta already biased and softplus-ed: forward by eager
    blocks, keeping only the inputs and the state entering each block ((b, N, d) per block); backward by blocks in
    reverse order, each recomputing its states from its entering state and then running the adjoint recurrence

        g_l = C_l gy_l + exp(delta_{l+1} A) g_{l+1}        (g = dLoss/dh, carried from block to block)

    as the same kind of sequential multiply-add, after which every gradient of the block is a block-wide product
    and sum. No autograd graph over positions, nothing state-sized kept between the passes."""

    @staticmethod
    def forward(ctx, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, block: int) -> Tensor:
        b, d, L = u.shape
        entering = u.new_empty(math.ceil(L / block), b, A.shape[1], d)
        y = _chunked_blocks(u, delta, A, B, C, None, None, False, block, entering)
        ctx.save_for_backward(u, delta, A, B, C, entering)
        ctx.block = block
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: Tensor) -> tuple[Tensor | None, ...]:
        u, delta, A, B, C, entering = ctx.saved_tensors
        return (*_block_scan_backward(u, delta, A, B, C, entering, grad_y.contiguous(), ctx.block), None)


def _block_scan_backward(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, entering: Tensor, grad_y: Tensor, block: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of _BlockScan (u, delta, A, B, C), blocks in reverse, with h_l = a_l h_{l-1} + x_l,
    a_l = exp(delta_l A), x_l = delta_l u_l B_l, y_l = <h_l, C_l>: dC_l sums gy_l h_l over a group's channels;
    dx_l = g_l gives dB and d(delta u); da_l = g_l h_{l-1} gives d(delta A) = g_l h_{l-1} a_l, hence d delta and dA.
    Laid out (position, batch, group, state, channel), so that a sum over a group's channels runs along the
    contiguous last axis and a sum over the state is a batched matrix product over (position, batch, group)."""
    b, d, L = u.shape
    G, N = B.shape[1], B.shape[2]
    Dg, K = d // G, block
    A_g = A.view(G, Dg, N).transpose(1, 2).contiguous()  # (G, N, Dg)
    A2_g = A_g * _LOG2E  # for the decays, as the forward forms them
    B_rows, C_rows = B.reshape(b, G * N, L), C.reshape(b, G * N, L)
    entering = entering.view(-1, b, N, G, Dg).transpose(2, 3)  # the forward's (b, N, d) -> (b, G, N, Dg)
    tile, tile_bc = u.new_empty(b, d, K), u.new_empty(b, G * N, K)
    dl, uu, gy = u.new_empty(K, b, d), u.new_empty(K, b, d), u.new_empty(K, b, d)
    Bb, Cb = u.new_empty(K, b, G * N), u.new_empty(K, b, G * N)
    decay, state, adjoint, product = (u.new_empty(K, b, G, N, Dg) for _ in range(4))
    decays, states, adjoints = decay.unbind(0), state.unbind(0), adjoint.unbind(0)
    grad_u, grad_delta = torch.empty_like(u), torch.empty_like(delta)
    grad_B, grad_C = u.new_empty(b, G * N, L), u.new_empty(b, G * N, L)
    grad_A = torch.zeros_like(A_g)
    adjoint_after = u.new_zeros(b, G, N, Dg)  # a_{l+1} g_{l+1} for the block's last position l
    for j in reversed(range(math.ceil(L / K))):
        l0 = j * K
        k = min(K, L - l0)
        P = k * b * G  # the batch of every matrix product below
        for src, dst in ((delta, dl), (u, uu), (grad_y, gy)):
            _load_block(src, tile, dst, l0, k)
        _load_block(B_rows, tile_bc, Bb, l0, k)
        _load_block(C_rows, tile_bc, Cb, l0, k)
        dl_k, u_k, gy_k = (x[:k].view(k, b, G, 1, Dg) for x in (dl, uu, gy))
        B_k, C_k = Bb[:k].view(k, b, G, N, 1), Cb[:k].view(k, b, G, N, 1)
        decay_k, state_k, adjoint_k = decay[:k], state[:k], adjoint[:k]
        # Recompute the block's states from the state entering it (the forward's block, step for step).
        du_k = dl_k * u_k
        torch.mul(dl_k, A2_g, out=decay_k).exp2_()
        torch.mul(du_k, B_k, out=state_k)
        states[0].addcmul_(entering[j], decays[0])
        for t in range(1, k):
            states[t].addcmul_(states[t - 1], decays[t])
        # The adjoint recurrence, backwards through the block.
        torch.mul(gy_k, C_k, out=adjoint_k)
        adjoints[k - 1].add_(adjoint_after)
        for t in range(k - 2, -1, -1):
            adjoints[t].addcmul_(adjoints[t + 1], decays[t + 1])
        adjoint_after = adjoints[0] * decays[0]
        # C from the states, B and delta * u from the adjoint: sums over a group's channels as a product and a
        # sum over the contiguous last axis (a bmm of (N, Dg) @ (Dg, 1) matrices runs 2-3x slower), the sum over
        # the state as a bmm of (1, N) @ (N, Dg).
        grad_C_k = torch.mul(state_k, gy_k, out=product[:k]).sum(-1)
        grad_B_k = torch.mul(adjoint_k, du_k, out=product[:k]).sum(-1)
        grad_du_k = torch.bmm(B_k.reshape(P, 1, N), adjoint_k.view(P, N, Dg)).view(k, b, d)
        # d(delta A) = g_l h_{l-1} a_l, computed over the adjoint buffer (no longer needed as itself).
        adjoint_k.mul_(decay_k)
        adjoint_k[1:].mul_(state_k[: k - 1])
        adjoints[0].mul_(entering[j])
        grad_dl_k = torch.mul(adjoint_k, A_g, out=decay_k).sum(3).view(k, b, d)  # decay_k is dead: its buffer
        grad_A.add_(adjoint_k.mul_(dl_k).view(k * b, G, N, Dg).sum(0))
        grad_dl_k.addcmul_(grad_du_k, u_k.view(k, b, d))
        _store_block(grad_du_k.mul_(dl_k.view(k, b, d)), tile, grad_u, l0, k)
        _store_block(grad_dl_k, tile, grad_delta, l0, k)
        _store_block(grad_B_k.view(k, b, G * N), tile_bc, grad_B, l0, k)
        _store_block(grad_C_k.view(k, b, G * N), tile_bc, grad_C, l0, k)
    return grad_u, grad_delta, grad_A.transpose(1, 2).reshape(d, N), grad_B.view(b, G, N, L), grad_C.view(b, G, N, L)


def _chunked_two_pass(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
    shape: _Chunks,
) -> Tensor:
    """Eager inference of narrow scans: the functional form's two passes, with preallocated step buffers and
    in-place updates (no per-op page faults), laid out as (b, G, channel, state, chunk) so every step slice is a
    set of contiguous rows. The step bias,
    softplus and the D skip are applied in place, without temporaries of their own."""
    b, G, Dg, N, T, nc, L = shape.b, shape.G, shape.Dg, shape.N, shape.T, shape.nc, shape.L

    def steps(x: Tensor) -> Tensor:
        """(..., L) -> (..., T, nc) so that step t of every chunk is one contiguous row."""
        return x.unflatten(-1, (nc, T)).transpose(-1, -2)

    # Transposing copies are fast only when nothing else is fused into them (mixed strides defeat vectorisation):
    # copy into the step layout first, then apply bias, softplus and products in place on contiguous memory.
    A_g = A.reshape(G, Dg, N, 1) * _LOG2E  # for exp2
    dl = u.new_empty(b, G, Dg, T, nc)
    dl.copy_(steps(delta.view(b, G, Dg, nc * T)))
    if delta_bias is not None:
        dl.add_(delta_bias.view(G, Dg, 1, 1))
    if delta_softplus:
        torch.ops.aten.softplus.out(dl, 1, 20, out=dl)
    du = u.new_empty(b, G, Dg, T, nc)
    du.copy_(steps(u.view(b, G, Dg, nc * T))).mul_(dl)
    Bs = u.new_empty(b, G, N, T, nc)
    Bs.copy_(steps(B))
    Cs = u.new_empty(b, G, N, T, nc)
    Cs.copy_(steps(C))
    Bs, Cs = Bs.unsqueeze(2), Cs.unsqueeze(2)  # (b, G, 1, N, T, nc)
    h = u.new_zeros(b, G, Dg, N, nc)
    decay = torch.empty_like(h)
    y = u.new_empty(b, G, Dg, T, nc)

    def read_out(state: Tensor, t: int, accumulate: bool) -> None:
        # y_t = sum_n state[n] * C_t[n], as N fused multiply-adds on contiguous rows (no (.., N, nc) temporary)
        y_t = y[:, :, :, t]
        start = 0
        if not accumulate:
            torch.mul(state[:, :, :, 0], Cs[:, :, :, 0, t], out=y_t)
            start = 1
        for n in range(start, N):
            y_t.addcmul_(state[:, :, :, n], Cs[:, :, :, n, t])

    for t in range(T):
        torch.mul(dl[:, :, :, t : t + 1], A_g, out=decay).exp2_()
        h.mul_(decay).addcmul_(du[:, :, :, t : t + 1], Bs[:, :, :, :, t])
        read_out(h, t, accumulate=False)
    carry = _carry_in(h, torch.exp2(dl.sum(3, keepdim=True) * A_g), dim=-1)
    for t in range(T):
        torch.mul(dl[:, :, :, t : t + 1], A_g, out=decay).exp2_()
        carry.mul_(decay)
        read_out(carry, t, accumulate=True)
    out = du.view(b, G, Dg, nc, T)  # du is dead after pass 1: reuse its memory instead of faulting in new pages
    out.copy_(y.transpose(-1, -2))
    if D is not None:
        out.addcmul_(u.view(b, G, Dg, nc, T), D.view(G, Dg, 1, 1))
    return out.view(b, G * Dg, nc * T)[..., :L]


def _carry_in(h_end: Tensor, chunk_decay: Tensor, dim: int) -> Tensor:
    """State entering each chunk, from chunk-local end states and whole-chunk decays (chunks along `dim`).

    Inclusive Hillis-Steele scan of the affine maps h -> P h + e, then a shift by one chunk. Only products of
    decays <= 1 appear, so it is as stable as the recurrence itself.
    """
    state, decay = h_end, chunk_decay if chunk_decay.shape == h_end.shape else chunk_decay.expand_as(h_end)
    nc = state.shape[dim]
    k = 1
    while k < nc:
        head, tail, prev = state.narrow(dim, 0, k), state.narrow(dim, k, nc - k), state.narrow(dim, 0, nc - k)
        decay_tail, decay_prev = decay.narrow(dim, k, nc - k), decay.narrow(dim, 0, nc - k)
        state = torch.cat([head, tail + decay_tail * prev], dim=dim)
        decay = torch.cat([decay.narrow(dim, 0, k), decay_tail * decay_prev], dim=dim)
        k *= 2
    nothing = state.narrow(dim, 0, 1) * 0.0  # the first chunk starts from zero (x * 0 lowers; zeros_like does not)
    return torch.cat([nothing, state.narrow(dim, 0, nc - 1)], dim=dim)


TrainingBackward = Literal["explicit", "recompute"]
# "explicit": _BlockScan's reverse scan. "recompute": the functional form under activation checkpointing, its
# backward autograd's over the unrolled steps (kept to time against: benchmarks/train.py --compare).
_TRAINING_BACKWARD: TrainingBackward = "explicit"


@contextmanager
def training_backward(kind: TrainingBackward) -> Iterator[None]:
    """Within the block, scans that need gradients take `kind`'s backward ("explicit" or "recompute")."""
    global _TRAINING_BACKWARD
    if kind not in ("explicit", "recompute"):
        raise ValueError(f"unknown scan backward {kind!r}; choose explicit or recompute")
    previous, _TRAINING_BACKWARD = _TRAINING_BACKWARD, kind
    try:
        yield
    finally:
        _TRAINING_BACKWARD = previous


def _needs_grad(*tensors: Tensor | None) -> bool:
    return any(t is not None and t.requires_grad for t in tensors)


_CUDA_SCAN: object = None


def _cuda_scan():
    """mamba_ssm's fused selective_scan_fn, or None when it cannot be imported (always on CPU-only machines)."""
    global _CUDA_SCAN
    if _CUDA_SCAN is None:
        try:
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
        except Exception:  # ImportError, or triton/CUDA initialisation errors on machines without a GPU
            _CUDA_SCAN = False
        else:

            def run(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
                return selective_scan_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus)

            _CUDA_SCAN = run
    return _CUDA_SCAN or None
