"""The training field of one feature block at the paper's 4 cross / 2 self iterations: featsel's
checked route, its sync-free route (`featsel.ot.fixed`), the sync-free route replayed from a
CUDA graph (GPU only), and the paper code's plain loop (`bench_train.paper_displacement`).

    python -m benchmarks.bench_field                      # CPU, 1 thread, small shapes
    python -m benchmarks.bench_field --device cuda --shapes 257x64,257x1280,1028x64,1028x1280 \
        --out benchmarks/results/bench_field_cuda.json

Shapes `LxD`: L problems (one class, L locations) of 64 generated points against 128
class-real, 32 unconditional and themselves, in D dimensions, three taus. Times are medians of
--repeats calls, each followed by a device synchronisation; the same inputs go to every route,
and `maxrel_vs_paper` = max |V - V_paper| / max |V_paper| checks that they compute one field.
Ratios (paper / route) are within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from benchmarks.bench_train import paper_displacement


def _timed(fn, device: torch.device, repeats: int) -> float:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    ts = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def _graphed(fn, static_out_holder: list):
    """Capture fn (no host sync inside) in a CUDA graph; returns replay()."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out_holder.append(fn())
    return graph.replay


def bench_shape(L: int, D: int, device: torch.device, repeats: int) -> dict:
    from featsel.ot import FieldConfig, cfg_field

    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, L, 64, D, generator=g).to(device)
    p = (torch.randn(1, L, 128, D, generator=g) + 0.3).to(device)
    r = torch.randn(1, L, 32, D, generator=g).to(device)
    w = torch.tensor([1.0], device=device)
    checked, free = FieldConfig(sync_free="never"), FieldConfig(sync_free="always")
    routes = {
        "checked": lambda: cfg_field(q, p, r, w, checked, errors=False)[0],
        "sync_free": lambda: cfg_field(q, p, r, w, free, errors=False)[0],
        "paper": lambda: paper_displacement(q[0], p[0], r[0], w.expand(L)).unsqueeze(0),
    }
    if device.type == "cuda":
        holder: list = []
        replay = _graphed(routes["sync_free"], holder)
        routes["graph"] = lambda: (replay(), holder[0])[1]
    ref = routes["paper"]()
    row: dict = {"L": L, "D": D, "device": str(device)}
    for name, fn in routes.items():
        row[f"{name}_s"] = _timed(fn, device, repeats)
        v = fn()
        row[f"{name}_maxrel_vs_paper"] = float((v - ref).abs().max() / ref.abs().max())
    for name in routes:
        if name != "paper":
            row[f"{name}_speedup_vs_paper"] = row["paper_s"] / row[f"{name}_s"]
    return row


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--shapes", default="257x64,257x256")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    rows = []
    for shape in a.shapes.split(","):
        L, D = (int(v) for v in shape.lower().split("x"))
        rows.append(bench_shape(L, D, device, a.repeats))
        print(json.dumps(rows[-1]), flush=True)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(a.out).with_suffix(".tmp")
        tmp.write_text(json.dumps({"torch": torch.__version__, "threads": a.threads,
                                   "rows": rows}, indent=1))
        os.replace(tmp, a.out)
    return rows


if __name__ == "__main__":
    main()
