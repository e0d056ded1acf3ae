"""Training in JAX, exact to the original's training step.

The step, pure functions checked against the original code's fixtures:
  `spectral`  STFT magnitudes and the (multi-resolution) spectral losses
  `codebook`  the bottleneck's EMA codebook state, its update and random restarts
  `vqvae`     the VQ-VAE loss (`lmix`, spectral, commitment) and `vqvae_step`
  `prior`     the prior loss in bits (`prior_loss`), growing label tables for fine-tuning
  `optim`     the original's learning-rate schedule and Adam (`original_adam`)
The runs:
  `data`      audio and codes folders, the held-out split, windows pure in (seed, step)
  `steps`     `VQVAETask`, `PriorTask`: `(state, batch) -> (state, metrics)`
  `loop`      the run folder: checkpoints, resume, metrics, evaluation (`fit`)
`jukebox-jax train` (`cli_train.py`) puts them together.
"""
