#!/usr/bin/env bash
# Retrains the default model that ships in jukebox_jax/default_model (README, "The default model"):
#
#   scripts/train_default.sh [WORK [VQVAE]]
#
# the synthetic songs, then the VQ-VAE, the top prior and both upsamplers, each with the
# project's own `jukebox-jax train`, into WORK (default /tmp/jukebox_default). The VQ-VAE learns
# the songs in every key (WORK/data); the priors learn the same songs transposed to C major
# (WORK/data_c), so that none of them has to find the key (benchmarks/RESULTS.md). Given VQVAE
# (a model folder holding a VQ-VAE), the priors learn its codes and no VQ-VAE is trained.
# Every step resumes if rerun after an interruption (a finished step only saves its model
# again), and on one CPU a rerun from scratch gives the same weights bit for bit; another CPU's
# XLA kernels round differently, which training amplifies: a different model of the same recipe.
# The shipped one: the VQ-VAE from this script's run on an AMD EPYC VM, the priors from
# `scripts/train_default.sh WORK jukebox_jax/default_model` on an Intel Xeon VM, both 2 cores,
# no GPU (benchmarks/RESULTS.md, "The default model").
set -euo pipefail
WORK=${1:-/tmp/jukebox_default}
J=${JUKEBOX_JAX:-jukebox-jax}
resume() { [ -f "$1/run.json" ] && echo --resume || true; }
$J data synth --out "$WORK/data_c" --songs 800 --seconds 20 --seed 0 --sample-rate 16000 --no-vocals --comping beat \
  --key C --scale major
if [ $# -ge 2 ]; then
  VQVAE=$2
else
  $J data synth --out "$WORK/data" --songs 800 --seconds 20 --seed 0 --sample-rate 16000 --no-vocals --comping beat
  $J train vqvae --data "$WORK/data" --out "$WORK/vqvae" --config small_vqvae --steps 900 --batch-size 8 --seconds 0.5 \
    --lr 1e-3 --warmup 50 --save-every 150 --eval-every 300 $(resume "$WORK/vqvae")
  VQVAE=$WORK/vqvae/model
fi
$J train prior --level 2 --data "$WORK/data_c" --vqvae "$VQVAE" --out "$WORK/top" --config small_top \
  --steps 6000 --batch-size 8 --lr 1e-3 --warmup 50 --save-every 200 --eval-every 400 $(resume "$WORK/top")
$J train prior --level 1 --data "$WORK/top/codes" --vqvae "$WORK/top/model" --out "$WORK/up1" --config small_upsampler_level_1 \
  --steps 4800 --batch-size 8 --lr 1e-3 --warmup 50 --save-every 200 --eval-every 400 $(resume "$WORK/up1")
$J train prior --level 0 --data "$WORK/top/codes" --vqvae "$WORK/up1/model" --out "$WORK/up0" --config small_upsampler_level_0 \
  --steps 3000 --batch-size 8 --lr 1e-3 --warmup 50 --save-every 200 --eval-every 400 $(resume "$WORK/up0")
echo "the default model: $WORK/up0/model"
