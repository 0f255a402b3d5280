"""Training throughput: the engine's TrainingJob against bare loops written here, interleaved in one run; and the
engine's achieved FLOP/s against this machine's fp32 matmul peak.

    python -m bench.bench_train                      # defaults: 20k x 784 synthetic images, 2 epochs, 3 rounds
    python -m bench.bench_train --repeats 9 --threads 1 --json bench-train.json

Every method trains the pytorch/examples VAE (784-400-20 MLP, Adam 1e-3, batch 128, Bernoulli/BCE) on the same
synthetic data split 90/10, and evaluates the held-out 10% once per epoch (as the examples' test() does and as the
engine's epoch-end validation does). "engine" is TrainingJob.run() (training in the calling thread, as the CLI
does); "engine_process" is a ProcessJob (a worker process, as the app trains); "engine_background" is
TrainingJob.start() + join() (a background thread, as the app trained before). The ProcessJob starts as the app's
jobs do: in the spare worker that waits for it (started when the previous job ended; its rehearsal before the job
is off the clock, as in the app), on the kept shared copy of the images; everything from start() to the last
message back is on the clock, and so is the worker's CPU time from the moment it received the job.

Where each run happens: the ProcessJob is started from this process (its worker is a process of its own); every
other method runs in a fresh process forked from the same fork server as the app's workers (in_child), in its main
thread, after the same rehearsal the app's spare worker does (the job before's model and batch), and reports its own
seconds. So every method trains as the CLI and a job's worker do (a process's main thread, as warm as a spare
worker), and none inherits the heap, caches or thread state another method left behind: in one process, the same
run() measured 3% apart depending on which thread it ran in.

Throughput = training images / wall-clock seconds, evaluation included. Each run is also timed in process CPU
seconds: on a machine shared with other work, --threads 1 CPU-time figures are the stable ones (wall clock then
measures the neighbours too). With 2+ threads on a busy small VM, libgomp's spin-waiting can make parallel regions
wait for a scheduler tick (10-30x slower steps, at random); OMP_WAIT_POLICY=PASSIVE avoids that. The load average
and these variables are recorded with the figures. Every process runs with keep_freed_heap() (glibc keeps freed
memory), as the CLI and the app's workers do.

"equal_maths" is the fair overhead anchor (issue 13): a bare loop doing the engine's maths (BCE with logits, the
closed-form KL, fused Adam, the same batch indexing and noise), where the pytorch/examples loops do slower maths
(sigmoid + BCE, unfused Adam) and stay as the "what users run" rows.

A ratio is the median over rounds of that round's ratio, not a ratio of two medians. Every round runs every method
once, the engine's two paths and the equal-maths loop back to back (the loop in the middle, the order reversed each
round). On this 2-vCPU VM the same run's time moves by +-10% from minute to minute even when idle (the host's other
tenants, frequency, cache); runs seconds apart share most of that drift, so their ratio is steadier than either
time, and a ratio of medians can pair one method's fast minute with the other's slow one.

Targets (issue 13): engine >= 0.95x the equal-maths loop on both paths (run() and a ProcessJob) with history
recording on (log_every=1); at the engine's default batch >= 50% of the fp32 matmul peak, counting
3 x 2 x (weights in matmuls) FLOPs per training image (and 2 x weights per validation image).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import Dataset, split_indices
# WORKERS: the app's fork server (torch imported once)
from vae_core.jobs import WORKERS, JobShape, ProcessJob, TrainingJob, default_threads, keep_freed_heap, rehearse

SIDE, LATENT, HIDDEN, BATCH, LR, VAL_FRACTION = 28, 20, 400, 128, 1e-3, 0.1
IN_THIS_PROCESS = ("engine_process",)  # a ProcessJob starts its own worker process, as in the app: started from here
# run back to back every round, the anchor in the middle, so each target ratio compares runs seconds apart
PAIRED = ("engine", "equal_maths", "engine_process")
# the speed ratios reported, (a, b) for a's rate / b's
RATIOS = (("engine", "equal_maths"), ("engine_process", "equal_maths"), ("engine_process", "engine"),
          ("engine_background", "equal_maths"), ("engine_background", "engine"), ("engine", "bare_tensor"),
          ("engine_background", "bare_tensor"), ("engine", "examples_dataloader"))


# ---------------------------------------------------------------- the baseline: pytorch/examples vae/main.py

class ExamplesVAE(nn.Module):
    """pytorch/examples' VAE, verbatim in structure: fc1, fc21/fc22, fc3, fc4 with a sigmoid output (or, with
    logits=True, the decoder's logits: the equal-maths loop's model, the engine's layers exactly)."""

    def __init__(self, logits: bool = False):
        super().__init__()
        self.logits = logits
        self.fc1 = nn.Linear(SIDE * SIDE, HIDDEN)
        self.fc21 = nn.Linear(HIDDEN, LATENT)
        self.fc22 = nn.Linear(HIDDEN, LATENT)
        self.fc3 = nn.Linear(LATENT, HIDDEN)
        self.fc4 = nn.Linear(HIDDEN, SIDE * SIDE)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return self.fc4(h3) if self.logits else torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, SIDE * SIDE))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def examples_loss(recon_x, x, mu, logvar):
    """Reconstruction + KL divergence losses summed over all elements and batch (see Appendix B of the VAE paper)."""
    bce = F.binary_cross_entropy(recon_x, x.view(-1, SIDE * SIDE), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


class ArrayDataset(torch.utils.data.Dataset):
    """A map-style dataset over a numpy array (no file), as torchvision's MNIST is to the examples."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return torch.from_numpy(self.images[i]), 0


class Timer:
    """Wall-clock and process-CPU seconds since construction."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def _examples_epochs(train_batches, test_batches, epochs: int, seed: int) -> None:
    """The examples' train() and test() loops, with per-batch loss.item() as they log it."""
    torch.manual_seed(seed)
    model = ExamplesVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    for _ in range(epochs):
        model.train()
        train_loss = 0.0
        for data in train_batches():
            optimizer.zero_grad()
            recon_batch, mu, logvar = model(data)
            loss = examples_loss(recon_batch, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        model.eval()
        test_loss = 0.0
        with torch.no_grad():
            for data in test_batches():
                recon_batch, mu, logvar = model(data)
                test_loss += examples_loss(recon_batch, data, mu, logvar).item()


def run_examples_dataloader(images: np.ndarray, train_idx, val_idx, epochs: int, seed: int) -> tuple[float, float]:
    """The examples' loop fed by DataLoader(shuffle=True) over a map-style Dataset; (wall, CPU) seconds."""
    loader = torch.utils.data.DataLoader(ArrayDataset(images[train_idx]), batch_size=BATCH, shuffle=True)
    test_loader = torch.utils.data.DataLoader(ArrayDataset(images[val_idx]), batch_size=BATCH, shuffle=False)
    timer = Timer()
    _examples_epochs(lambda: (d for d, _ in loader), lambda: (d for d, _ in test_loader), epochs, seed)
    return timer.elapsed()


def run_bare_tensor(images: np.ndarray, train_idx, val_idx, epochs: int, seed: int) -> tuple[float, float]:
    """The same loop without a DataLoader: a shuffled index into one tensor (the fastest plain PyTorch feed)."""
    train, test = torch.from_numpy(images[train_idx]), torch.from_numpy(images[val_idx])
    gen = torch.Generator().manual_seed(seed)

    def train_batches():
        order = torch.randperm(len(train), generator=gen)
        return (train[order[i:i + BATCH]] for i in range(0, len(train), BATCH))

    timer = Timer()
    _examples_epochs(train_batches, lambda: (test[i:i + BATCH] for i in range(0, len(test), BATCH)), epochs, seed)
    return timer.elapsed()


def run_equal_maths(images: torch.Tensor, train_idx, val_idx, epochs: int, seed: int,
                    batch: int = BATCH) -> tuple[float, float]:
    """The engine's maths in a bare loop: BCE with logits and the closed-form KL averaged over the batch, fused Adam,
    batches indexed from one in-memory tensor by a seeded permutation of the training rows, eps drawn from a seeded
    generator, a loss.item() per step and a validation pass per epoch. What the engine adds on top (history rows,
    per-dimension KL, pause/stop checks, epoch-end metrics) is its overhead. images: (N, 1, 28, 28)."""
    torch.manual_seed(seed)
    model = ExamplesVAE(logits=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
    gen = torch.Generator()
    val = torch.from_numpy(val_idx)

    def loss_of(x: torch.Tensor, eps: torch.Tensor | None) -> torch.Tensor:
        mu, logvar = model.encode(x.view(-1, SIDE * SIDE))  # (B, D)
        z = mu + torch.exp(0.5 * logvar) * (eps if eps is not None else torch.randn_like(mu))
        recon = F.binary_cross_entropy_with_logits(model.decode(z), x.view(-1, SIDE * SIDE), reduction="sum")
        kl = 0.5 * torch.sum(mu.pow(2) + logvar.exp() - logvar - 1)
        return (recon + kl) / len(x)

    timer = Timer()
    for epoch in range(epochs):
        order = train_idx[torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(epoch)).numpy()]
        gen.manual_seed(seed * 1_000_003 + epoch)
        model.train()
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            x = images[torch.from_numpy(rows)]
            eps = torch.randn((len(rows), LATENT), generator=gen)
            loss = loss_of(x, eps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            loss.item()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for start in range(0, len(val), batch):
                loss_of(images[val[start:start + batch]], None).item()
    return timer.elapsed()


# ---------------------------------------------------------------- the engine

def examples_model() -> ModelConfig:
    """The pytorch/examples VAE as the engine's ModelConfig."""
    return ModelConfig(input_shape=(1, SIDE, SIDE), latent_dim=LATENT, hidden_sizes=(HIDDEN,), arch="mlp",
                       likelihood="bernoulli")


def engine_job(dataset: Dataset, epochs: int, batch: int, seed: int, threads: int, kind: type = TrainingJob):
    """A TrainingJob (or ProcessJob) on the examples' model, recording history every step (log_every=1), not saving."""
    model = examples_model()
    train = TrainConfig(epochs=epochs, batch_size=batch, lr=LR, lr_schedule="constant", lr_warmup_steps=0, seed=seed,
                        val_fraction=VAL_FRACTION, log_every=1)
    return kind(dataset, model, train, threads=threads)


def run_engine(dataset: Dataset, epochs: int, seed: int, threads: int, batch: int = BATCH,
               path: str = "run") -> tuple[float, float]:
    """(wall, CPU) seconds of a whole job, every step, history row and validation included: "run" in this thread as
    the CLI does, "process" in a worker process as the app does (its start and streaming included), "thread" in a
    background thread (start() + join(), the app's way before worker processes). CPU seconds are this process's,
    plus the worker's own (as it reports them) for "process"."""
    job = engine_job(dataset, epochs, batch, seed, threads, ProcessJob if path == "process" else TrainingJob)
    timer = Timer()
    if path == "run":
        job.run()
    else:
        job.start().join()
    wall, cpu = timer.elapsed()
    seconds = (wall, cpu + job.worker_cpu_s) if path == "process" else (wall, cpu)
    if job.state != "finished":
        raise RuntimeError(f"engine run ended {job.state}: {job.error}")
    if len(job.history()["steps"]) != job.progress().step:
        raise RuntimeError("history recording was not on for every step")
    return seconds


# ---------------------------------------------------------------- FLOPs

def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """This machine's fp32 matmul rate: the best of a few n x n x n torch.mm (2 n^3 FLOPs), by wall and CPU clock."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    torch.mm(a, b)  # warm-up
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        timer = Timer()
        torch.mm(a, b)
        best = [min(old, new) for old, new in zip(best, timer.elapsed())]
    return {"wall": 2 * n**3 / best[0] / 1e9, "cpu": 2 * n**3 / best[1] / 1e9}


def matmul_weights() -> int:
    """Weights that take part in matmuls (biases excluded): 784*400 + 2*400*20 + 20*400 + 400*784."""
    d = SIDE * SIDE
    return d * HIDDEN + 2 * HIDDEN * LATENT + LATENT * HIDDEN + HIDDEN * d


def flops_per_training_image() -> int:
    """Forward 2 FLOPs per weight, backward twice that: 3 x 2 x weights."""
    return 3 * 2 * matmul_weights()


# ---------------------------------------------------------------- the benchmark

def synthetic(n: int, seed: int = 0) -> Dataset:
    """n images of 28x28 uniform noise in [0, 1] (784 wide), held in memory as the engine's Dataset."""
    images = np.random.default_rng(seed).random((n, 1, SIDE, SIDE), dtype=np.float32)
    return Dataset(images, name="synthetic", source={"kind": "synthetic", "n": n})


def in_worker(fn, threads: int):
    """fn() in a fresh thread with `threads` intra-op threads; its result (or its exception)."""
    out: dict = {}

    def target():
        torch.set_num_threads(threads)
        try:
            out["value"] = fn()
        except BaseException as exc:  # handed back to the caller
            out["error"] = exc

    worker = threading.Thread(target=target, name="bench-worker")
    worker.start()
    worker.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def method_names(big_batch: int) -> list[str]:
    return ["engine", "engine_process", "engine_background", "equal_maths", "bare_tensor", "examples_dataloader",
            f"engine_batch_{big_batch}"]


def _methods(n: int, threads: int, big_batch: int, only: tuple[str, ...]) -> dict:
    """The methods named in only, each as (seed, epochs) -> (wall, CPU) seconds on n synthetic images."""
    dataset = synthetic(n)
    train_idx, val_idx = split_indices(n, VAL_FRACTION, seed=0)  # the engine's own split, for equal work
    flat, images = dataset.images.reshape(n, -1), torch.from_numpy(dataset.images)
    methods = {
        "engine": lambda r, e: run_engine(dataset, e, r, threads),
        "engine_process": lambda r, e: run_engine(dataset, e, r, threads, path="process"),
        "engine_background": lambda r, e: run_engine(dataset, e, r, threads, path="thread"),
        "equal_maths": lambda r, e: run_equal_maths(images, train_idx, val_idx, e, r),
        "bare_tensor": lambda r, e: run_bare_tensor(flat, train_idx, val_idx, e, r),
        "examples_dataloader": lambda r, e: run_examples_dataloader(flat, train_idx, val_idx, e, r),
        f"engine_batch_{big_batch}": lambda r, e: run_engine(dataset, e, r, threads, batch=big_batch),
    }
    return {name: methods[name] for name in only}


def _child_main(conn, name: str, n: int, epochs: int, seed: int, threads: int, big_batch: int) -> None:
    """One timed run of one method in a process of its own (see in_child); sends ("ok", (wall, cpu)) or
    ("error", message)."""
    try:
        keep_freed_heap()  # as the CLI and the app's workers run
        torch.set_num_threads(threads)
        # what the app's spare worker has done before its job (rehearsed the job before it, the same model and batch
        # here), and no more: every method starts as warm as the app's path does
        batch = big_batch if name == f"engine_batch_{big_batch}" else BATCH
        rehearse(JobShape(examples_model(), batch_size=batch, threads=threads))
        conn.send(("ok", _methods(n, threads, big_batch, only=(name,))[name](seed, epochs)))
    except BaseException as exc:  # reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def in_child(name: str, n: int, epochs: int, seed: int, threads: int, big_batch: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of a method in a fresh process forked from the app's fork server, the way the
    app's job workers start, after the rehearsal the app's spare worker does (off the clock). Every method but the
    app's path runs this way: each in the main thread of a process of its own (as the CLI and a job's worker train),
    none inheriting the heap or the caches another method left behind."""
    return forked(_child_main, (name, n, epochs, seed, threads, big_batch), name)


def forked(target, args: tuple, name: str):
    """target(conn, *args) in a fresh process forked from the app's fork server; its answer, which target sends as
    ("ok", value) or ("error", message) (raised here as a RuntimeError naming `name`, as is the process's death)."""
    parent, child = WORKERS.Pipe()
    process = WORKERS.Process(target=target, args=(child, *args), name=f"bench-{name}", daemon=True)
    process.start()
    child.close()
    try:
        kind, value = parent.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"{name}: its benchmark process died (exit code {process.exitcode})") from None
    finally:
        parent.close()
    process.join()
    if kind == "error":
        raise RuntimeError(f"{name}: {value}")
    return value


def round_ratios(seconds: dict[str, dict[str, list[float]]], clock: str) -> dict[str, list[float]]:
    """Each of RATIOS round by round: b's seconds / a's in the same round (a's speed relative to b's)."""
    return {f"{a}_vs_{b}": [tb / ta for ta, tb in zip(seconds[a][clock], seconds[b][clock], strict=True)]
            for a, b in RATIOS}


def measure(n: int = 20_000, epochs: int = 2, repeats: int = 3, threads: int | None = None,
            big_batch: int = 1024) -> dict:
    """Interleaved rounds of every method; median rates, per-round ratios and their medians, FLOP rates, as a
    JSON-ready dict."""
    threads = threads or default_threads()
    # the allocator settings of a process that trains (the CLI sets them, and so do the app's workers): every method
    # here runs under them, the loops too
    heap_kept = keep_freed_heap()
    load_before = os.getloadavg()
    train_idx, val_idx = split_indices(n, VAL_FRACTION, seed=0)  # the engine's own split, as every method uses
    here = _methods(n, threads, big_batch, only=IN_THIS_PROCESS)  # the app's path starts its own worker process
    for run in here.values():  # warm-up: the spare worker, the shared copy of the images, lazy imports
        in_worker(lambda: run(0, 1), threads)
    names = method_names(big_batch)

    def timed(name: str, seed: int) -> tuple[float, float]:
        if name in here:
            return in_worker(lambda: here[name](seed, epochs), threads)
        return in_child(name, n, epochs, seed, threads, big_batch)

    seconds: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in names}
    others = [name for name in names if name not in PAIRED]
    peaks = []
    for r in range(repeats):
        # the anchor between the two paths it judges, the triple's order reversed every round; the rest rotated
        order = list(PAIRED if r % 2 == 0 else PAIRED[::-1]) + others[r % len(others):] + others[:r % len(others)]
        for name in order:
            wall, cpu = timed(name, r + 1)
            seconds[name]["wall"].append(wall)
            seconds[name]["cpu"].append(cpu)
        peaks.append(in_worker(matmul_peak_gflops, threads))
    images, flops = len(train_idx) * epochs, flops_per_training_image()
    # per training image, the validation pass's work too (encode + decode forward: a third of a training step each)
    flops_per_image = flops * (1 + len(val_idx) / len(train_idx) / 3)
    env = {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS") if k in os.environ}
    result = {
        "machine": {"threads": threads, "torch": torch.__version__, "cpus": os.cpu_count(), "env": env,
                    "keep_freed_heap": heap_kept,
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "setup": {"n": n, "train_images": len(train_idx), "val_images": len(val_idx), "epochs": epochs,
                  "repeats": repeats, "batch": BATCH, "big_batch": big_batch,
                  "model": f"{SIDE * SIDE}-{HIDDEN}-{LATENT} MLP", "flops_per_training_image": flops,
                  "flops_per_training_image_with_validation": flops_per_image},
        "seconds": seconds,
    }
    for clock in ("wall", "cpu"):
        rate = {name: images / statistics.median(s[clock]) for name, s in seconds.items()}
        peak = max(p[clock] for p in peaks)
        rounds = round_ratios(seconds, clock)
        result[clock] = {
            "samples_per_s": rate,
            # speed ratios (a's rate / b's), each the median of its per-round ratios (see the module docstring)
            **{f"ratio_{pair}": statistics.median(values) for pair, values in rounds.items()},
            "ratio_rounds": rounds,
            # each method's slowest and fastest repeat as a fraction of its median rate
            "spread": {name: [statistics.median(t[clock]) / max(t[clock]), statistics.median(t[clock]) / min(t[clock])]
                       for name, t in seconds.items()},
            "matmul_peak_gflops": peak,
            "engine_gflops": rate["engine"] * flops_per_image / 1e9,
            "engine_fraction_of_peak": rate["engine"] * flops_per_image / 1e9 / peak,
            "engine_big_batch_fraction_of_peak": rate[f"engine_batch_{big_batch}"] * flops_per_image / 1e9 / peak,
        }
    return result


def rounds_range(figures: dict, pair: str) -> str:
    """The lowest and highest per-round value of a ratio, e.g. "0.93–0.99x"."""
    values = figures["ratio_rounds"][pair]
    return f"{min(values):.2f}–{max(values):.2f}x"


def report(result: dict) -> str:
    """The figures as a few readable lines, wall clock then CPU time."""
    m, s = result["machine"], result["setup"]
    lines = [f"{s['model']}, batch {s['batch']}, {s['train_images']} training + {s['val_images']} validation images, "
             f"{s['epochs']} epochs, {s['repeats']} interleaved rounds (rates: medians; ratios: medians of per-round "
             f"ratios), {m['threads']} threads, "
             f"torch {m['torch']}",
             f"{m['cpus']} CPUs, load average {m['load_average_before'][0]:.1f} before / "
             f"{m['load_average_after'][0]:.1f} after, {m['env'] or 'no OMP variables set'}"]
    for clock in ("wall", "cpu"):
        r = result[clock]
        lines.append(f"by {'wall-clock' if clock == 'wall' else 'process CPU'} time:")
        lines += [f"  {name:<24} {rate:8.0f} images/s" for name, rate in r["samples_per_s"].items()]
        lines += [f"  engine (CLI: run()) / equal-maths loop     {r['ratio_engine_vs_equal_maths']:.3f}x  "
                  f"(target >= 0.95; rounds {rounds_range(r, 'engine_vs_equal_maths')})",
                  f"  engine (app: worker process) / equal-maths {r['ratio_engine_process_vs_equal_maths']:.3f}x  "
                  f"(target >= 0.95; rounds {rounds_range(r, 'engine_process_vs_equal_maths')})",
                  f"  app / CLI (worker process / run())         {r['ratio_engine_process_vs_engine']:.3f}x  "
                  f"(rounds {rounds_range(r, 'engine_process_vs_engine')})",
                  f"  background thread / equal-maths           {r['ratio_engine_background_vs_equal_maths']:.3f}x",
                  f"  background thread / run()                 {r['ratio_engine_background_vs_engine']:.3f}x",
                  f"  engine / examples loop over one tensor     {r['ratio_engine_vs_bare_tensor']:.3f}x",
                  f"  engine_background / examples tensor loop  {r['ratio_engine_background_vs_bare_tensor']:.3f}x",
                  f"  engine / examples DataLoader    {r['ratio_engine_vs_examples_dataloader']:.3f}x",
                  f"  fp32 matmul peak                {r['matmul_peak_gflops']:.1f} GFLOP/s",
                  f"  engine at batch {s['batch']}             {r['engine_gflops']:.1f} GFLOP/s = "
                  f"{100 * r['engine_fraction_of_peak']:.0f}% of peak (target >= 50%); at batch {s['big_batch']}: "
                  f"{100 * r['engine_big_batch_fraction_of_peak']:.0f}%"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.bench_train", description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20_000, help="synthetic images (split 90/10 into train/validation)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads for every method (default: all cores)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    result = measure(args.n, args.epochs, args.repeats, args.threads)
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
