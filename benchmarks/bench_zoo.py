"""Zoo training: batched (all members at once) vs one model at a time, in the same process.

The one-at-a-time run is ``cfdkit.spurious.train_member`` (plain ``nn.Module`` forward, same data, init, batch
order and Adam as a zoo member); the batched run is ``cfdkit.spurious.train_zoo``. Both train in float32 with the
zoo defaults (Adam 3e-3, batch 50, ``--n-train`` digits, ``--epochs`` epochs). Sequential and batched rounds are
interleaved so that load changes on a shared machine hit both alike. The size of zoo the device trains in
``--budget`` seconds is estimated from the measured batched time per model.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_zoo.py --epochs 10 --rounds 6 --out /tmp/bench_zoo.json
    PYTHONPATH=. python benchmarks/bench_zoo.py --device cuda --gpu-sizes 1024 4096 16384
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time

import numpy as np
import torch

from cfdkit.spurious.zoo import TrainSettings, resolve_device, train_member, train_zoo


def machine_info(device) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": str(device), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        info["cpu_model"] = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")),
                                 platform.processor())
    except (OSError, subprocess.SubprocessError, StopIteration):
        info["cpu_model"] = platform.processor()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        info["loadavg"] = os.getloadavg()
    except OSError:
        pass
    return info


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--n-train", type=int, default=800)
    ap.add_argument("--batched", type=int, default=64, help="members per batched run")
    ap.add_argument("--sequential", type=int, default=4, help="models trained one at a time")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--budget", type=float, default=600.0, help="seconds for the zoo-size estimate")
    ap.add_argument("--gpu-sizes", type=int, nargs="*", default=[], help="zoo sizes to time on --device cuda")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    a = ap.parse_args(argv)
    dev = resolve_device(a.device)
    st = TrainSettings(n_train=a.n_train, epochs=a.epochs)
    res = {"machine": machine_info(dev), "settings": vars(a), "rounds": []}
    print(json.dumps(res["machine"], indent=1))
    if not a.gpu_sizes:
        train_zoo([0.02, 0.05], settings=TrainSettings(n_train=100, epochs=1), device=dev, progress=False)  # warm-up
        seq_t, bat_t = [], []
        for r in range(a.rounds):
            t0 = time.perf_counter()
            for i in range(a.sequential):
                train_member(0.02 + 0.01 * (i % 4), 10_000 * r + i, settings=st, dtype=torch.float32, device=dev)
            _sync(dev)
            seq = (time.perf_counter() - t0) / a.sequential
            t0 = time.perf_counter()
            train_zoo(np.tile([0.02, 0.03, 0.04, 0.05], a.batched // 4), seeds=20_000 * (r + 1) + np.arange(a.batched),
                      settings=st, device=dev, progress=False)
            _sync(dev)
            bat = (time.perf_counter() - t0) / a.batched
            seq_t.append(seq)
            bat_t.append(bat)
            res["rounds"].append({"sequential_s_per_model": seq, "batched_s_per_model": bat, "speedup": seq / bat})
            print(f"round {r}: one at a time {seq:.3f} s/model, batched ({a.batched}) {bat:.3f} s/model, "
                  f"speed-up {seq / bat:.1f}x", flush=True)
        seq, bat = float(np.median(seq_t)), float(np.median(bat_t))
        ratios = np.asarray(seq_t) / np.asarray(bat_t)
        # time per model at the zoo default of 40 epochs (time is linear in epochs)
        scale = 40 / a.epochs
        res.update(sequential_s_per_model=seq, batched_s_per_model=bat, speedup_ratio_of_medians=seq / bat,
                   speedup_median_of_rounds=float(np.median(ratios)), speedup_min=float(ratios.min()),
                   speedup_max=float(ratios.max()), batched_s_per_model_40_epochs=bat * scale,
                   zoo_size_in_budget_40_epochs=int(a.budget / (bat * scale)),
                   sequential_models_in_budget_40_epochs=int(a.budget / (seq * scale)))
        print(f"speed-up: median over rounds {np.median(ratios):.1f}x (min {ratios.min():.1f}x, max {ratios.max():.1f}x), "
              f"ratio of medians {seq / bat:.1f}x; at 40 epochs about {int(a.budget / (bat * scale))} models in "
              f"{a.budget:.0f} s batched (one at a time: {int(a.budget / (seq * scale))})")
    else:
        res["gpu"] = []
        train_zoo([0.02, 0.05], settings=TrainSettings(n_train=100, epochs=1), device=dev, progress=False)
        for M in a.gpu_sizes:
            _sync(dev)
            t0 = time.perf_counter()
            z = train_zoo(np.tile([0.02, 0.03, 0.04, 0.05], M // 4), settings=st, device=dev, progress=False)
            _sync(dev)
            t = time.perf_counter() - t0
            row = {"members": M, "seconds": t, "s_per_model": t / M, "models_in_budget": int(a.budget / (t / M)),
                   "max_memory_gib": torch.cuda.max_memory_allocated(dev) / 2 ** 30 if dev.type == "cuda" else None}
            res["gpu"].append(row)
            print(json.dumps(row), flush=True)
            del z
    if a.out:
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(res, f, indent=1)
        os.replace(tmp, a.out)
    return res


if __name__ == "__main__":
    main()
