"""Where training jobs run: one interface for `featsel validate` and `featsel select`.

An executor runs calls ``fn(*args)`` (``fn`` a module-level function, ``args`` picklable) and
yields their results in completion order:

    with make_executor("local", jobs=2) as ex:
        for result in ex.map(fn, [(a1, b1), (a2, b2)]):
            ...

- :class:`LocalExecutor` (``--executor local``, the default): ``jobs`` = 1 runs the calls in
  this process, one after another; ``jobs`` = K > 1 in a pool of K spawned worker processes
  (``concurrent.futures.ProcessPoolExecutor``), each with ``cores / K`` torch threads;
- :class:`RayExecutor` (``--executor ray``, the optional extra ``featsel[cluster]``): one Ray task
  per call with ``num_cpus`` / ``num_gpus`` per job (torch gets ``num_cpus`` threads; Ray sets
  ``CUDA_VISIBLE_DEVICES`` for the GPUs it grants). ``address`` ``auto``, ``ray://HOST:PORT``
  (Ray Client) or ``HOST:PORT`` joins a running cluster (which may itself run on Slurm or
  Kubernetes: see Ray's cluster guides); without it Ray starts on this machine with
  ``jobs * num_cpus`` CPUs, so ``--jobs`` means the same as with the local pool. Every node must
  import the same featsel and see the output folder (a shared file system) and the data.

Scheduling, retries of lost nodes and data movement are Ray's or the pool's; nothing here
speaks a protocol of its own. Errors of the setup (Ray missing, an address that does not answer)
are raised when the executor is made, before the caller writes anything.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "make_executor"]

EXECUTORS = ("local", "ray")
CONNECT_TIMEOUT_S = 3.0   # an --address whose port does not answer within this fails


def _call(fn: Callable[..., Any], args: tuple, threads: int) -> Any:
    """Run ``fn(*args)`` with ``threads`` torch threads (0: leave the setting alone)."""
    from featsel.memory import keep_freed_memory

    keep_freed_memory()
    if threads:
        import torch

        torch.set_num_threads(threads)
    return fn(*args)


class Executor:
    """Runs picklable calls; subclasses implement :meth:`map`. A context manager: leaving it
    releases the workers (:meth:`close`)."""

    name = "executor"

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple]) -> Iterator[Any]:
        """Yield ``fn(*args)`` for every ``args`` in ``calls``, in completion order. An
        exception in a call is raised here (the remaining calls are cancelled when possible)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """What ran the jobs (written into the results)."""
        return {"executor": self.name}

    def close(self) -> None:
        return None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """This machine: in-process (``jobs`` = 1, or a single call) or a spawned process pool of
    ``jobs`` workers with ``max(1, cores // jobs)`` torch threads each."""

    name = "local"

    def __init__(self, jobs: int = 1):
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"--jobs: expected an integer >= 1, got {jobs!r}")
        self.jobs = jobs

    def describe(self) -> dict:
        return {"executor": self.name, "jobs": self.jobs}

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple]) -> Iterator[Any]:
        calls = list(calls)
        if self.jobs == 1 or len(calls) <= 1:
            for args in calls:
                yield fn(*args)
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        with ProcessPoolExecutor(max_workers=min(self.jobs, len(calls)),
                                 mp_context=mp.get_context("spawn")) as ex:
            futs = [ex.submit(_call, fn, tuple(args), threads) for args in calls]
            try:
                for f in as_completed(futs):
                    yield f.result()
            finally:
                for f in futs:
                    f.cancel()


def _import_ray():
    try:
        import ray
    except ImportError as err:
        raise RuntimeError("--executor ray: Ray is not installed; install the optional extra "
                           "with pip install 'featsel[cluster]' (or pip install ray)") from err
    return ray


def _check_address(address: str) -> None:
    """Fail within ``CONNECT_TIMEOUT_S`` when ``HOST:PORT`` / ``ray://HOST:PORT`` does not
    accept a connection (``auto`` is resolved by Ray itself, which fails at once without a
    running cluster)."""
    if address == "auto":
        return
    hostport = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--address: expected auto, ray://HOST:PORT or HOST:PORT, got "
                         f"{address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise RuntimeError(f"--address: no Ray cluster answers at {address!r} ({why}; waited up "
                           f"to {CONNECT_TIMEOUT_S:g} s); start one (ray start --head) or omit "
                           "--address to start Ray on this machine") from err


class RayExecutor(Executor):
    """One Ray task per call (module docstring). ``address`` None starts Ray here with
    ``jobs * num_cpus`` CPUs (and the GPUs torch sees); otherwise joins that cluster."""

    name = "ray"

    def __init__(self, address: str | None = None, *, jobs: int = 1, num_cpus: float = 1,
                 num_gpus: float = 0):
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"--jobs: expected an integer >= 1, got {jobs!r}")
        if not num_cpus > 0:
            raise ValueError(f"--cpus-per-job: expected a number > 0, got {num_cpus!r}")
        if not num_gpus >= 0:
            raise ValueError(f"--gpus-per-job: expected a number >= 0, got {num_gpus!r}")
        ray = _import_ray()
        if address is not None:
            _check_address(address)
        self.address, self.jobs = address, jobs
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self._ray = ray
        self._pending: list = []
        import logging

        # a Ray session this process already holds (a notebook's) is used as it is, and left open
        self._owned = not ray.is_initialized()
        if self._owned:
            kw: dict[str, Any] = {"logging_level": logging.WARNING}
            if address is None:
                kw.update(num_cpus=max(1, math.ceil(jobs * num_cpus)), include_dashboard=False)
            try:
                ray.init(address=address, **kw)
            except (ConnectionError, TimeoutError) as err:
                why = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise RuntimeError(f"--address: cannot join a Ray cluster at {address!r}: "
                                   f"{why}") from err

    def describe(self) -> dict:
        res = self._ray.cluster_resources()
        return {"executor": self.name, "address": self.address or "local (started here)",
                "num_cpus_per_job": self.num_cpus, "num_gpus_per_job": self.num_gpus,
                "cluster_cpus": res.get("CPU"), "cluster_gpus": res.get("GPU", 0)}

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple]) -> Iterator[Any]:
        ray = self._ray
        task = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)(_call)
        threads = max(1, int(self.num_cpus))
        pending = [task.remote(fn, tuple(args), threads) for args in calls]
        self._pending = pending
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                self._pending = pending
                try:
                    yield ray.get(done[0])
                except ray.exceptions.RayTaskError as err:
                    cause = getattr(err, "cause", None)
                    if isinstance(cause, BaseException):
                        raise cause from None
                    raise RuntimeError(f"a Ray job failed: {str(err).splitlines()[-1]}") from None
        finally:
            for ref in self._pending:
                ray.cancel(ref, force=True)
            self._pending = []

    def close(self) -> None:
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()


def make_executor(name: str, *, jobs: int = 1, address: str | None = None,
                  cpus_per_job: float = 1, gpus_per_job: float | None = None,
                  device: str = "cpu") -> Executor:
    """The executor called ``name`` (one of ``EXECUTORS``). ``gpus_per_job`` None: 1 when
    ``device`` is a CUDA device, else 0. ``address`` is for Ray only."""
    if name not in EXECUTORS:
        raise ValueError(f"--executor: expected one of {', '.join(EXECUTORS)}, got {name!r}")
    if name == "local":
        if address is not None:
            raise ValueError("--address: only with --executor ray (the local executor runs on "
                             "this machine)")
        return LocalExecutor(jobs)
    gpus = (1 if str(device).startswith("cuda") else 0) if gpus_per_job is None else gpus_per_job
    return RayExecutor(address, jobs=jobs, num_cpus=cpus_per_job, num_gpus=gpus)
