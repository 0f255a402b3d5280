#!/usr/bin/env bash
# Rebuilds the small pre-trained digits model shipped in assets/runs/digits-default (the app's first active model).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf assets/runs/digits-default
.venv/bin/python -m vae_core.train --data digits --epochs 40 --latent-dim 8 --hidden 128 --log-every 4 --seed 0 \
  --threads 1 --out assets/runs/digits-default
