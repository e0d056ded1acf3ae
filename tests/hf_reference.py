"""Tiny transformers 4.40.2 reference models with every weight drawn from a seeded generator
(HF leaves codebooks at zero and some weights uninitialised), and original-format copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import JukeboxVQVAE, JukeboxVQVAEConfig

from convert.table import vqvae_rows
from jukebox_jax.config import VQVAEConfig


def hf_vqvae_config(cfg: VQVAEConfig) -> JukeboxVQVAEConfig:
    return JukeboxVQVAEConfig(
        levels=cfg.levels,
        res_downs_t=list(cfg.downs_t),
        res_strides_t=list(cfg.strides_t),
        embed_dim=cfg.emb_width,
        nb_discrete_codes=cfg.l_bins,
        res_conv_width=cfg.width,
        res_conv_depth=cfg.depth,
        res_convolution_multiplier=int(cfg.m_conv),  # HF needs an int here
        res_dilation_growth_rate=cfg.dilation_growth_rate,
        res_dilation_cycle=cfg.dilation_cycle,
        multipliers=list(cfg.multipliers),
        lmu=cfg.mu,
        commit=cfg.commit,
    )


@torch.no_grad()
def tiny_hf_vqvae(cfg: VQVAEConfig, seed: int) -> JukeboxVQVAE:
    """A random HF VQ-VAE whose codebooks are encoder outputs (as the original's `init_k`), so
    codes are spread over the codebook with clear margins."""
    torch.manual_seed(seed)
    model = JukeboxVQVAE(hf_vqvae_config(cfg)).eval()
    for name, p in model.named_parameters():
        fan_in = p[0].numel() if p.ndim > 1 else 1
        p.copy_(torch.randn_like(p) / np.sqrt(fan_in) if p.ndim > 1 else 0.1 * torch.randn_like(p))
    audio = calibration_audio(4, 8 * cfg.hop_lengths[-1], seed + 1)
    for level, block in enumerate(model.bottleneck.level_blocks):
        x = model.encoders[level](audio.permute(0, 2, 1))[-1]  # [N, D, T]
        x = x.permute(0, 2, 1).reshape(-1, cfg.emb_width)
        block.codebook.copy_(x[torch.randint(0, x.shape[0], (cfg.l_bins,))])
    return model


def calibration_audio(n: int, t: int, seed: int) -> torch.Tensor:
    """`[n, t, 1]` sums of sines plus noise, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    time = torch.arange(t) / 44100.0
    freqs = 110 + 3000 * torch.rand(n, 4, 1, generator=g)
    x = torch.sin(2 * np.pi * freqs * time).sum(1) / 4 + 0.02 * torch.randn(n, t, generator=g)
    return x.clamp(-1, 1).unsqueeze(-1)


def save_original(model: JukeboxVQVAE, cfg: VQVAEConfig, path: Path, hps: dict) -> None:
    """Writes `model` in the original checkpoint layout (keys renamed through our table)."""
    sd = model.state_dict()
    state = {r.original: sd[r.hf] for r in vqvae_rows(cfg, hf_prefix="")}
    torch.save({"hps": hps, "model": state, "opt": None, "step": 0}, path)


@torch.no_grad()
def redraw_jukebox(model: torch.nn.Module, seed: int) -> None:
    """Every parameter and buffer of an HF Jukebox model drawn from a seeded generator, scaled
    so activations stay near unit size at any depth: LayerNorm weights 1 + 0.1 n, biases
    0.1 n, projections n / sqrt(fan_in) (`JukeboxConv1D` is [in, out], `nn.Linear` [out, in]),
    convolutions n / sqrt(width of one kernel row), embeddings, positions, start tokens and
    codebooks 0.3 n. Tied weights are drawn once."""
    from transformers.models.jukebox.modeling_jukebox import JukeboxConv1D

    g = torch.Generator().manual_seed(seed)
    modules = dict(model.named_modules())
    for name, p in [*model.named_parameters(), *model.named_buffers()]:
        owner = modules[name.rpartition(".")[0]]
        n = torch.randn(p.shape, generator=g)
        if p.ndim == 1:
            p.copy_(1 + 0.1 * n if isinstance(owner, torch.nn.LayerNorm) and name.endswith("weight") else 0.1 * n)
        elif isinstance(owner, JukeboxConv1D):
            p.copy_(n / np.sqrt(p.shape[0]))
        elif isinstance(owner, torch.nn.Linear):
            p.copy_(n / np.sqrt(p.shape[1]))
        elif p.ndim == 3:
            p.copy_(n / np.sqrt(p[0].numel()))
        else:  # embeddings, pos_emb, start_token, codebooks
            p.copy_(0.3 * n)
