"""Real-sample queues: per-class ring buffers (positives) and one global ring (unconditional).

`RealQueues(num_classes, sample_shape, class_size, uncond_size)` holds

    cls:  (K, Q, *shape)   cls_ptr (K,) next write slot, cls_fill (K,) filled slots
    unc:  (Qu, *shape)     unc_ptr, unc_fill

All operations are vectorised (no Python loop over samples or classes). `prefill` fills every
class queue before the first training step from the data itself, so a draw never returns the
zeros of an empty buffer (the official code returns zeros for an empty queue); a class with no
data at all is an error. Draws take an explicit `torch.Generator`, so a training step's draws
are a pure function of its seed (exact resume, identical draws on every DDP rank).
"""

from __future__ import annotations

import torch

__all__ = ["RealQueues"]


class RealQueues:
    """Per-class and unconditional FIFO queues of real samples (see module docstring)."""

    def __init__(
        self,
        num_classes: int,
        sample_shape: tuple[int, ...],
        class_size: int,
        uncond_size: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        if num_classes < 1 or class_size < 1 or uncond_size < 1:
            raise ValueError(
                f"num_classes, class_size, uncond_size must be >= 1, got "
                f"{num_classes}, {class_size}, {uncond_size}"
            )
        self.num_classes = num_classes
        self.sample_shape = tuple(sample_shape)
        self.device = torch.device(device)
        self.cls = torch.zeros(num_classes, class_size, *sample_shape, device=device, dtype=dtype)
        self.cls_ptr = torch.zeros(num_classes, dtype=torch.long, device=device)
        self.cls_fill = torch.zeros(num_classes, dtype=torch.long, device=device)
        self.unc = torch.zeros(uncond_size, *sample_shape, device=device, dtype=dtype)
        self.unc_ptr = torch.zeros((), dtype=torch.long, device=device)
        self.unc_fill = torch.zeros((), dtype=torch.long, device=device)

    # ------------------------------------------------------------------ writes
    def push(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Append samples x: (B, *shape) with labels y: (B,) to their class queue and to the
        global queue, overwriting the oldest entries (only the newest Q of a class survive)."""
        if x.shape[1:] != self.sample_shape or y.shape != x.shape[:1]:
            raise ValueError(f"push expects x (B, {self.sample_shape}) and y (B,), got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        if x.shape[0] == 0:
            return
        self._push_class(x, y)
        self._push_uncond(x)

    def _push_class(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x = x.to(self.cls.device, self.cls.dtype)
        y = y.to(self.cls.device).long()
        if int(y.min()) < 0 or int(y.max()) >= self.num_classes:
            raise ValueError(f"labels must lie in [0, {self.num_classes}), got "
                             f"[{int(y.min())}, {int(y.max())}]")
        K, Q = self.cls.shape[:2]
        onehot = torch.nn.functional.one_hot(y, K)
        order = (onehot.cumsum(0) - 1).gather(1, y[:, None])[:, 0]  # rank within its class
        count = onehot.sum(0)  # (K,)
        keep = order >= count[y] - Q  # drop entries a later one in the same batch overwrites
        slot = (self.cls_ptr[y] + order) % Q
        self.cls[y[keep], slot[keep]] = x[keep]
        self.cls_ptr = (self.cls_ptr + count) % Q
        self.cls_fill = torch.clamp(self.cls_fill + count, max=Q)

    def _push_uncond(self, x: torch.Tensor) -> None:
        x = x.to(self.unc.device, self.unc.dtype)
        Qu, B = self.unc.shape[0], x.shape[0]
        first = max(0, B - Qu)
        idx = (self.unc_ptr + torch.arange(first, B, device=self.unc.device)) % Qu
        self.unc[idx] = x[first:]
        self.unc_ptr = (self.unc_ptr + B) % Qu
        self.unc_fill = torch.clamp(self.unc_fill + B, max=Qu)

    def prefill(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
        """Fill all queues from a data set x: (N, *shape), y: (N,) before training.

        Each class queue gets min(Q, n_c) random samples of its class; the global queue gets
        min(Qu, N) random samples of the whole set. Raises ValueError if a class has no sample.
        """
        if x.shape[1:] != self.sample_shape or y.shape != x.shape[:1]:
            raise ValueError(f"prefill expects x (N, {self.sample_shape}) and y (N,), got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        ys = y.long().cpu()
        counts = torch.bincount(ys, minlength=self.num_classes)
        if len(counts) > self.num_classes or (counts == 0).any():
            missing = torch.nonzero(counts[: self.num_classes] == 0)[:, 0].tolist()
            raise ValueError(f"labels must cover classes 0..{self.num_classes - 1}; class(es) "
                             f"{missing[:10]} have no sample or labels exceed the range")
        perm = torch.randperm(len(ys), generator=generator)
        Q, Qu = self.cls.shape[1], self.unc.shape[0]
        # stable sort by class keeps the random order within each class; take the first Q
        order = torch.sort(ys[perm], stable=True).indices
        start = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(ys)) - start[ys[perm][order]]
        chosen = perm[order[rank < Q]]
        self._push_class(x[chosen], y[chosen])
        self._push_uncond(x[perm[:Qu]])

    # ------------------------------------------------------------------- draws
    def _draw(self, fill: torch.Tensor, capacity: int, n: int, g: torch.Generator) -> torch.Tensor:
        """Slot indices (R, n) for R rings with `fill` (R,) filled slots: without replacement
        where fill >= n (random permutation of the filled slots), with replacement otherwise."""
        R = fill.shape[0]
        u = torch.rand(R, capacity, generator=g, device=g.device).to(fill.device)
        u = u.masked_fill(torch.arange(capacity, device=fill.device)[None] >= fill[:, None], 2.0)
        perm = u.argsort(dim=1)[:, :n] if n <= capacity else None
        rep = (torch.rand(R, n, generator=g, device=g.device).to(fill.device) * fill[:, None])
        rep = rep.long().clamp(max=capacity - 1)
        if perm is None:
            return rep
        return torch.where((fill >= n)[:, None], perm, rep)

    def sample_class(self, classes: torch.Tensor, n: int, generator: torch.Generator):
        """classes: (K',) -> (K', n, *shape) class-real samples from each class's queue."""
        classes = classes.to(self.cls.device).long()
        fill = self.cls_fill[classes]
        if bool((fill == 0).any()):
            raise RuntimeError("a class queue is empty: call prefill before drawing")
        slots = self._draw(fill, self.cls.shape[1], n, generator)
        return self.cls[classes[:, None], slots]

    def sample_uncond(self, k: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """-> (k, n, *shape): k independent draws of n samples from the global queue."""
        if int(self.unc_fill) == 0:
            raise RuntimeError("the unconditional queue is empty: call prefill before drawing")
        slots = self._draw(self.unc_fill.expand(k), self.unc.shape[0], n, generator)
        return self.unc[slots]

    # ------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"cls": self.cls, "cls_ptr": self.cls_ptr, "cls_fill": self.cls_fill,
                "unc": self.unc, "unc_ptr": self.unc_ptr, "unc_fill": self.unc_fill}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            cur = getattr(self, k)
            if v.shape != cur.shape:
                raise ValueError(f"queue state {k!r} has shape {tuple(v.shape)}, expected "
                                 f"{tuple(cur.shape)} (different data or queue sizes)")
            setattr(self, k, v.to(cur.device, cur.dtype))
