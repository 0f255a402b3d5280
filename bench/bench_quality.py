"""Time to quality: the app's default recipe (the Train form's defaults) against the pytorch/examples recipe
(784-400-20 MLP, Adam 1e-3, batch 128), both trained by the engine on the same data and split, in the same run,
timed from start to the first epoch whose validation −ELBO reaches a level.

    python -m bench.bench_quality                          # generated shapes (20k, 32×32)
    python -m bench.bench_quality --data train-images-idx3-ubyte.gz --target-elbo 110

Without --target-elbo the level is the worse of the two recipes' best validation −ELBO within the time budget (plus
2%), i.e. a quality both reach, so each gets a time."""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import Dataset, load_source
from vae_core.training import TrainingJob

EXAMPLES = {"latent_dim": 20, "hidden_sizes": (400,), "lr": 1e-3, "batch_size": 128}  # pytorch/examples vae/main.py
MARGIN = 1.02


@dataclass
class Curve:
    """Validation −ELBO after each epoch, and the seconds from start at which it was measured."""
    recipe: str
    seconds: list[float]
    val_neg_elbo: list[float]

    def time_to(self, level: float) -> float | None:
        return next((t for t, v in zip(self.seconds, self.val_neg_elbo) if v <= level), None)


def recipes(shape: tuple[int, int, int]) -> dict[str, tuple[ModelConfig, TrainConfig]]:
    """The two recipes for images of this shape (everything not named here is the engine's default)."""
    examples = ModelConfig(input_shape=shape, arch="mlp", likelihood="bernoulli", latent_dim=EXAMPLES["latent_dim"],
                           hidden_sizes=EXAMPLES["hidden_sizes"])
    return {
        "app default": (ModelConfig(input_shape=shape), TrainConfig()),
        "pytorch/examples": (examples, TrainConfig(lr=EXAMPLES["lr"], batch_size=EXAMPLES["batch_size"])),
    }


def train_curve(name: str, dataset: Dataset, model: ModelConfig, train: TrainConfig, budget_s: float,
                max_epochs: int) -> Curve:
    """Train (no saving) for at most budget_s seconds or max_epochs epochs; the per-epoch validation curve."""
    train = replace(train, epochs=max_epochs)
    job = TrainingJob(dataset, model, train)
    start = time.time()
    job.start()
    while not job.join(timeout=0.2):
        if time.time() - start > budget_s:
            job.stop()
    job.join()
    epochs = [r for r in job.history()["epochs"] if r.get("val_neg_elbo") is not None]
    return Curve(name, [r["time"] - start for r in epochs], [r["val_neg_elbo"] for r in epochs])


def measure(data: str = "shapes", target_elbo: float | None = None, budget_s: float = 75.0,
            max_epochs: int = 40) -> dict:
    """Both recipes' curves on the same data (the engine's seeded split), the level, and each time to reach it."""
    dataset = load_source(data)
    curves = [train_curve(name, dataset, m, t, budget_s, max_epochs) for name, (m, t) in recipes(dataset.shape).items()]
    level = target_elbo if target_elbo is not None else max(min(c.val_neg_elbo) for c in curves) * MARGIN
    return {
        "data": dataset.name, "n": dataset.n, "shape": list(dataset.shape), "budget_s": budget_s, "level": level,
        "level_given": target_elbo is not None,
        "curves": {c.recipe: {"seconds": c.seconds, "val_neg_elbo": c.val_neg_elbo} for c in curves},
        "time_to_level": {c.recipe: c.time_to(level) for c in curves},
        "best": {c.recipe: min(c.val_neg_elbo) for c in curves},
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.bench_quality", description=__doc__.splitlines()[0])
    p.add_argument("--data", default="shapes", help="digits, shapes, or an IDX / .npz / .npy file")
    p.add_argument("--target-elbo", type=float, default=None, help="validation −ELBO to reach, nats per image")
    p.add_argument("--budget", type=float, default=75.0, help="seconds of training per recipe at most")
    args = p.parse_args(argv)
    result = measure(args.data, args.target_elbo, args.budget)
    print(json.dumps({k: v for k, v in result.items() if k != "curves"}, indent=2))
    return result


if __name__ == "__main__":
    main()
