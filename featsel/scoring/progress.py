"""What `featsel score` shows while it works: the stage timer (results.json's ``timings``) and
the progress bar over every candidate's stages and draws."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

__all__ = ["Progress", "Timer"]


class Timer:
    """Seconds per stage, summed over every time a stage runs (``with timer("extract"): ...``);
    ``times`` keeps the stages in the order they first ran."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def __call__(self, stage: str) -> AbstractContextManager[None]:
        timer = self

        class _Ctx:
            def __enter__(self) -> None:
                self.t0 = time.perf_counter()

            def __exit__(self, *exc: object) -> None:
                timer.times[stage] = timer.times.get(stage, 0.0) + time.perf_counter() - self.t0

        return _Ctx()


class Progress:
    """The score's progress bar: one unit per stage and per draw of every candidate, so it
    moves every few seconds and its ETA means something; the text names the candidate, the
    stage and the draw (``pca:dim=16 · transport_fidelity draw 2/4``). Disabled: no output."""

    def __init__(self, enabled: bool, n_candidates: int, per_candidate: int):
        self.bar = None
        self.per, self.k, self.spec = per_candidate, 0, ""
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=n_candidates * per_candidate, desc="score", unit="step",
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} "
                                       "{postfix}")

    def candidate(self, spec: str) -> None:
        """A new candidate: the previous one's units are all counted (a criterion that drew
        less than planned, e.g. undefined without labels, does not leave the bar behind)."""
        if self.bar is not None and self.k:
            self.bar.n = self.k * self.per
            self.bar.refresh()
        self.k += 1
        self.spec = spec[:32]

    def stage(self, name: str, done: int = 0) -> None:
        if self.bar is not None:
            self.bar.update(done)
            self.bar.set_postfix_str(f"[{self.k}] {self.spec} · {name}")

    def draw_hook(self, stage: str) -> Callable[[int, int], None]:
        def on_draw(i: int, total: int) -> None:
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix_str(f"[{self.k}] {self.spec} · {stage} draw {i}/{total}")
        return on_draw

    def close(self) -> None:
        if self.bar is not None:
            self.bar.n = self.bar.total
            self.bar.refresh()
            self.bar.close()
