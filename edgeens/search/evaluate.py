"""Objective 1 of the search: the validation PSNR of a hybrid composed from the block pool (no training), minus
the teacher's.

Evaluations are the search's cost, and architectures that agree on their first stages compute the same features up
to there: the state after each stage is cached by architecture prefix (least recently used first out, within a byte
budget), so an evaluation runs only the stages after the longest prefix it shares with an earlier one.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from edgeens.data.task import TaskData
from edgeens.devices import module_device
from edgeens.errors import EdgeensError
from edgeens.metrics import psnr
from edgeens.models.images import pad_to_multiple
from edgeens.models.restormer import Restormer
from edgeens.models.space import RESTORMER, SearchSpace, format_architecture
from edgeens.train.pool import check_pool


class SearchError(EdgeensError):
    """A search that cannot start: its inputs do not fit together. Raised before any evaluation runs."""


@dataclass(frozen=True)
class Evaluation:
    architecture: str
    psnr: float  # mean validation PSNR of the hybrid, dB
    psnr_drop: float  # psnr minus the teacher's (<= 0 unless a hybrid beats its teacher)
    seconds: float
    stages_run: int  # stages computed for this evaluation (8 minus those reused from the prefix cache)


BATCH_CROPS = 8  # the photo catalogue's 8 validation crops: one batch, as before


class HybridEvaluator:
    """PSNR of hybrids of `teacher` + `pool` on fixed (degraded, clean) validation pairs, with a prefix cache."""

    def __init__(
        self,
        teacher: Restormer,
        pool: Mapping[tuple[str, str], nn.Module],
        pairs: list[tuple[np.ndarray, np.ndarray]],
        cache_bytes: int = 1 << 30,
        space: SearchSpace | None = None,
        device: torch.device | None = None,
    ) -> None:
        if not pairs:
            raise SearchError("the validation set is empty: give at least one (degraded, clean) pair")
        self.device = device or torch.device("cpu")
        # Teacher, surrogates, batches and the prefix cache all live on the device; copies when it is another than
        # the modules' own, so the caller's teacher and pool stay where they are.
        self.teacher = _placed(teacher, self.device).eval()
        # The space the pool's families span (a loaded BlockPool knows it), else the paper's MambaIR-only one.
        self.space = space or getattr(pool, "space", None) or SearchSpace(teacher.config)
        check_pool(self.space, pool)
        self.pool = {key: _placed(module, self.device).eval() for key, module in pool.items()}
        self.targets = [gt for _, gt in pairs]
        # Batches of at most BATCH_CROPS pairs of one input shape, padded to a multiple of 8 as the U-Net needs: a
        # MambaIR stage's eager forward over 24 crops of 128 px at once held 5 GB; each crop's result is the same.
        self.batches: list[tuple[Tensor, list[int], tuple[int, int]]] = []
        shapes: dict[tuple[int, ...], list[int]] = {}
        for index, (lq, _) in enumerate(pairs):
            shapes.setdefault(lq.shape, []).append(index)
        chunks = [same[i : i + BATCH_CROPS] for same in shapes.values() for i in range(0, len(same), BATCH_CROPS)]
        for indices in chunks:
            images = torch.stack(
                [torch.from_numpy(np.ascontiguousarray(pairs[i][0].transpose(2, 0, 1))) for i in indices]
            )
            padded, size = pad_to_multiple(images.float(), 8)
            self.batches.append((padded.to(self.device), indices, size))
        self.cache: OrderedDict[tuple[str, ...], list[dict[str, Tensor]]] = OrderedDict()
        self.cache_bytes = cache_bytes
        self.cached_bytes = 0
        self.stages_run = 0
        self.stages_reused = 0
        self.teacher_psnr = self._psnr(self.space.teacher_only)

    def __call__(self, architecture: str | tuple[str, ...]) -> Evaluation:
        tokens = self.space.parse(architecture if isinstance(architecture, str) else format_architecture(architecture))
        before = self.stages_run
        start = time.perf_counter()
        value = self._psnr(tokens)
        return Evaluation(
            format_architecture(tokens),
            value,
            value - self.teacher_psnr,
            time.perf_counter() - start,
            self.stages_run - before,
        )

    def _stack(self, index: int, token: str) -> nn.Module | None:
        stage = self.space.stages[index]
        return None if token == RESTORMER else self.pool[(stage.name, token)]

    def _psnr(self, tokens: tuple[str, ...]) -> float:
        known = next((n for n in range(len(tokens), 0, -1) if tokens[:n] in self.cache), 0)
        if known:
            self.cache.move_to_end(tokens[:known])
        with torch.no_grad():
            carries = (
                self.cache[tokens[:known]]
                if known
                else [self.teacher.start_stages(batch) for batch, _, _ in self.batches]
            )
            self.stages_reused += known
            for index in range(known, len(tokens)):
                carries = [self.teacher.run_stage(index, c, self._stack(index, tokens[index])) for c in carries]
                self.stages_run += 1
                if index < len(tokens) - 1:
                    self._remember(tokens[: index + 1], carries)
            scores = np.zeros(len(self.targets))
            for carry, (_, indices, (h, w)) in zip(carries, self.batches, strict=True):
                restored = self.teacher.finish_stages(carry)[:, :, :h, :w].clamp(0, 1).cpu().numpy()
                restored = restored.transpose(0, 2, 3, 1)
                for image, i in zip(restored, indices, strict=True):
                    scores[i] = psnr(image, self.targets[i])
        return float(scores.mean())

    def _remember(self, prefix: tuple[str, ...], carries: list[dict[str, Tensor]]) -> None:
        size = sum(t.numel() * t.element_size() for c in carries for t in c.values())
        if size > self.cache_bytes:
            return
        self.cache[prefix] = carries
        self.cached_bytes += size
        while self.cached_bytes > self.cache_bytes:
            _, evicted = self.cache.popitem(last=False)
            self.cached_bytes -= sum(t.numel() * t.element_size() for c in evicted for t in c.values())


def _placed(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` itself when it is on `device`, else a copy there."""
    import copy

    return module if module_device(module) == device else copy.deepcopy(module).to(device)


# --- several evaluations at once -----------------------------------------------------------------------------------

_WORKER: HybridEvaluator | None = None


def _start_worker(teacher_path: str, pool_dir: str, task: TaskData, device: str) -> None:
    global _WORKER
    from edgeens.train.pool import load_pool
    from edgeens.workers import quiet_toolchain

    torch.set_num_threads(1)  # one worker per core
    quiet_toolchain()
    teacher = Restormer.from_checkpoint(teacher_path)
    pairs = task.validation_crops()
    _WORKER = HybridEvaluator(teacher, load_pool(pool_dir, teacher), pairs, device=torch.device(device))


def _evaluate_in_worker(architecture: str) -> dict[str, float]:
    assert _WORKER is not None
    result = _WORKER(architecture)
    return {"psnr": result.psnr, "psnr_drop": result.psnr_drop, "seconds": result.seconds}


class WorkerPool:
    """`jobs` processes, each holding its own evaluator (teacher, pool and validation set loaded once), that
    evaluate a search's batch of q architectures at once. Use as a context manager."""

    def __init__(
        self,
        teacher_path: str | Path,
        pool_dir: str | Path,
        task: TaskData,
        jobs: int,
        device: torch.device | None = None,
    ):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.executor = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(str(teacher_path), str(pool_dir), task, str(device or "cpu")),
        )

    def __call__(self, architectures: list[str]):
        from concurrent.futures import as_completed

        futures = {self.executor.submit(_evaluate_in_worker, name): name for name in architectures}
        for future in as_completed(futures):
            yield futures[future], future.result()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.executor.shutdown(cancel_futures=True)
