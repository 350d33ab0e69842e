"""The paper's Figure 1, measured: latency, FLOPs and peak memory of one block of each kind across input sizes.

Three blocks of the same width: Restormer's (attention across channels: linear in pixels), MambaIR's (a selective
scan: linear in pixels) and plain self-attention across pixels (quadratic in pixels). Each is lowered to an
ExecuTorch program at each size and timed with the table's measurement loop; peak memory is the resident-memory
increase of a fresh process that loads and runs the program once; FLOPs count matmuls and convolutions
(torch.utils.flop_counter) of the eager block.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from edgeens.compile.executorch import lower_to_executorch
from edgeens.models.mambair import LayerNorm as ChannelsLastLayerNorm
from edgeens.models.mambair import VSSBlock, VSSStage
from edgeens.models.restormer import TransformerBlock
from edgeens.profile.host import executorch_runner, time_runs
from edgeens.profile.request import TimingPolicy
from edgeens.profile.table import Latency
from edgeens.workers import set_threads


class SpatialAttentionBlock(nn.Module):
    """A ViT block over pixels on NCHW maps: LN, multi-head self-attention across all H*W tokens, LN, MLP.
    Its attention matrix is (H*W)^2 per head: the quadratic cost Restormer and MambaIR avoid."""

    def __init__(self, width: int, heads: int = 1, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = ChannelsLastLayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = ChannelsLastLayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, int(width * mlp_ratio)), nn.GELU(), nn.Linear(int(width * mlp_ratio), width)
        )

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        tokens = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
        qkv = self.qkv(self.norm1(tokens))
        per_head = c // self.heads

        def heads(t: Tensor) -> Tensor:
            return (
                t.reshape(b, h * w, self.heads, per_head).permute(0, 2, 1, 3).reshape(b * self.heads, h * w, per_head)
            )

        q, k, v = heads(qkv[..., :c]), heads(qkv[..., c : 2 * c]), heads(qkv[..., 2 * c :])
        attn = torch.softmax(torch.bmm(q, k.transpose(1, 2)) * per_head**-0.5, dim=-1)
        out = torch.bmm(attn, v).reshape(b, self.heads, h * w, per_head).permute(0, 2, 1, 3).reshape(b, h * w, c)
        tokens = tokens + self.proj(out)
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.reshape(b, h, w, c).permute(0, 3, 1, 2)


BLOCKS: dict[str, Callable[[int], nn.Module]] = {
    "restormer": lambda width: TransformerBlock(width, 1, 2.66, False, "WithBias"),
    "mambair": lambda width: VSSStage([VSSBlock(width)]),
    "self-attention": lambda width: SpatialAttentionBlock(width),
}


def block_flops(block: nn.Module, x: Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        block(x)
    return int(counter.get_total_flops())


def attention_bytes(kind: str, size: int) -> int:
    """Size of the largest intermediate that grows quadratically (the self-attention matrix), else 0."""
    return 4 * (size * size) ** 2 if kind == "self-attention" else 0


_PEAK_SCRIPT = """
import sys, torch
from pathlib import Path
from executorch.extension.pybindings import portable_lib
from executorch.runtime import Runtime

def status(field):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))
    return int(line.split()[1])

portable_lib._unsafe_reset_threadpool({threads})
x = torch.rand({shape})
program = Runtime.get().load_program(open(sys.argv[1], "rb").read())
Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current resident size
before = status("VmRSS:")
program.load_method("forward").execute((x,))
print(status("VmHWM:") - before)
"""


def peak_memory_mib(pte: Path, shape: tuple[int, ...], threads: int) -> float:
    """Peak resident-memory growth (MiB) of a fresh process while it loads the method and runs it once
    (Linux: the high-water mark is reset just before, so earlier peaks such as importing torch do not count)."""
    script = _PEAK_SCRIPT.format(threads=threads, shape=tuple(shape))
    done = subprocess.run([sys.executable, "-c", script, str(pte)], capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1]) / 1024


def resolution_sweep(
    sizes: list[int],
    width: int = 48,
    threads: int = 1,
    policy: TimingPolicy = TimingPolicy(min_repeats=5, max_repeats=30, max_seconds=20.0, rounds=1),
    memory_limit_gib: float = 4.0,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per (block, size): FLOPs, latency and peak memory, or the reason the size was skipped."""
    set_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for kind, build in BLOCKS.items():
            torch.manual_seed(0)
            block = build(width).eval()
            for size in sizes:
                row: dict[str, Any] = {"block": kind, "size": size, "width": width}
                if attention_bytes(kind, size) > memory_limit_gib * 2**30:
                    row["skipped"] = (
                        f"attention matrix {attention_bytes(kind, size) / 2**30:.0f} GiB > {memory_limit_gib:g} GiB"
                    )
                    rows.append(row)
                    continue
                if progress:
                    progress(f"{kind} at {size}x{size}")
                x = torch.rand(1, width, size, size)
                row["flops"] = block_flops(block, x)
                path = Path(scratch) / f"{kind}-{size}.pte"
                program = lower_to_executorch(block, (x,))
                program.save(path)
                row["export_seconds"] = round(program.export_seconds, 1)
                row["latency"] = Latency.of(time_runs(executorch_runner(path, (x,)), policy)).__dict__
                row["peak_memory_mib"] = round(peak_memory_mib(path, tuple(x.shape), threads), 1)
                rows.append(row)
    return rows


def plot_sweep(rows: list[dict[str, Any]], path: str, title: str) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for kind in BLOCKS:
        measured = [r for r in rows if r["block"] == kind and "latency" in r]
        sizes = [r["size"] for r in measured]
        axes[0].plot(sizes, [r["latency"]["median_ms"] for r in measured], "o-", label=kind)
        axes[1].plot(sizes, [r["flops"] / 1e9 for r in measured], "o-", label=kind)
        axes[2].plot(sizes, [r["peak_memory_mib"] for r in measured], "o-", label=kind)
    for ax, label in zip(axes, ("latency (ms, median)", "GFLOPs (matmul + conv)", "peak memory (MiB)"), strict=True):
        ax.set(xlabel="input side (pixels)", ylabel=label, xscale="log", yscale="log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # log-axis minor labels collide
        ax.set_xticks(sorted({r["size"] for r in rows}), labels=[str(s) for s in sorted({r["size"] for r in rows})])
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_sweep(rows: list[dict[str, Any]], meta: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")


def sweep_step(
    sides: list[int],
    width: int,
    threads: int,
    memory_limit_gib: float,
    reports: Path,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """The sweep on this machine, written to `reports/resolution-sweep--host.{json,png}` with the host, the
    versions and the command that reproduces it."""
    from edgeens.compile.artifact import now, tool_versions
    from edgeens.files import writable_folder
    from edgeens.profile.host import host_description

    if not sides or any(s % 8 or s <= 0 for s in sides):
        raise ValueError(f"every size must be a positive multiple of 8, got {sides}")
    writable_folder(reports, "--reports")  # before the measurements, not after
    rows = resolution_sweep(sides, width, threads, memory_limit_gib=memory_limit_gib, progress=progress)
    host = host_description()
    sizes = ",".join(map(str, sides))
    meta = {
        "device": "host",
        "cpu": host["cpu"],
        "threads": threads,
        "width": width,
        "date": now(),
        "versions": tool_versions(),
        "command": f"edgeens sweep --sizes {sizes} --width {width} --threads {threads}",
    }
    save_sweep(rows, meta, reports / "resolution-sweep--host.json")
    title = f"one block of width {width} on {host['cpu']}, ExecuTorch XNNPACK, {threads} thread(s)"
    plot_sweep(rows, str(reports / "resolution-sweep--host.png"), title)
    return rows
