"""`Jukebox`: a config plus its params, with the model's public methods.

Any subset of parts may be present (a VQ-VAE alone, one prior alone, or all). Methods are
pure: they read `params` and return arrays; the jitted kernels take the config statically.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jukebox_jax import checkpoint, integrity, prior
from jukebox_jax.config import JukeboxConfig, Lyrics, PriorConfig, VQVAEConfig
from jukebox_jax.params import Params, init_params
from jukebox_jax.prior import Execution, PriorOutput, prior_losses
from jukebox_jax.sampling import Method, decode_chunks, prefill, sampling_method
from jukebox_jax.vqvae import VQVAE


@dataclasses.dataclass(frozen=True)
class Jukebox:
    """A config and its params (canonical layout). Execution layouts derived from the params
    (the per-layer weights decoding runs on) are made once per `Jukebox` and kept with it."""

    config: JukeboxConfig
    params: Params = dataclasses.field(repr=False)
    _derived: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def init(cls, config: JukeboxConfig, key: jax.Array) -> Jukebox:
        """Random weights for every part of `config`."""
        return cls(config, init_params(config, key))

    def fingerprint(self) -> str:
        """A digest of the config and every weight (`integrity.py`), computed once: what a
        sampling job records to know which model it was made with."""
        if "fingerprint" not in self._derived:
            self._derived["fingerprint"] = integrity.fingerprint(self.config.to_dict(), integrity.tree_digests(self.params))
        return self._derived["fingerprint"]

    # -- VQ-VAE -------------------------------------------------------------------------

    def encode(self, audio: jax.Array, *, start_level: int = 0, end_level: int | None = None) -> list[jax.Array]:
        """Audio `[B, T, 1]` float32 in [-1, 1] -> int32 codes `[B, T / hop]` per level,
        level 0 (finest) first, for levels `start_level..end_level-1` (default: all).

        `T` must be a multiple of the hop of the deepest level asked for (128 for all three
        levels of the released VQ-VAE)."""
        cfg = self._vqvae_config()
        end_level = cfg.levels if end_level is None else end_level
        if not 0 <= start_level < end_level <= cfg.levels:
            raise ValueError(f"need 0 <= start_level < end_level <= {cfg.levels}, got {start_level}, {end_level}")
        audio = jnp.asarray(audio)
        hop = cfg.hop_lengths[end_level - 1]
        if audio.ndim != 3 or audio.shape[-1] != 1:
            raise ValueError(f"audio must be [batch, time, 1] (mono), got shape {audio.shape}")
        if audio.shape[1] % hop or audio.shape[1] == 0:
            raise ValueError(
                f"audio length {audio.shape[1]} is not a positive multiple of {hop} samples (the hop of "
                f"level {end_level - 1}); pad or trim it"
            )
        if not jnp.issubdtype(audio.dtype, jnp.floating):
            raise ValueError(f"audio must be float in [-1, 1], got {audio.dtype}")
        return _encode(self.params["vqvae"], audio.astype(jnp.float32), cfg, start_level, end_level)

    def decode(self, codes: Sequence[jax.Array], start_level: int = 0) -> jax.Array:
        """Codes of levels `start_level, start_level + 1, ...` -> audio `[B, T, 1]`.

        As the original `decode(zs[l:], start_level=l)`, only `codes[0]` (level
        `start_level`) is decoded; the rest are accepted for symmetry with `encode`."""
        cfg = self._vqvae_config()
        if isinstance(codes, (jax.Array, np.ndarray)) or not len(codes):
            raise TypeError("codes must be a non-empty list of [batch, time] arrays, one per level")
        if not 0 <= start_level < cfg.levels or start_level + len(codes) > cfg.levels:
            raise ValueError(f"{len(codes)} levels of codes from start_level {start_level} do not fit {cfg.levels} levels")
        z = jnp.asarray(codes[0])
        if z.ndim != 2 or not jnp.issubdtype(z.dtype, jnp.integer):
            raise ValueError(f"codes must be integer [batch, time], got {z.dtype} {z.shape}")
        _check_range("codes", z, cfg.l_bins)
        return _decode(self.params["vqvae"], z.astype(jnp.int32), cfg, start_level)

    # -- Priors -------------------------------------------------------------------------

    def prior_forward(
        self,
        level: int,
        tokens: jax.Array,
        labels: jax.Array,
        upper_codes: jax.Array | None = None,
        *,
        capture: Iterable[int] = (),
        unroll: bool = False,
    ) -> PriorOutput:
        """Teacher-forced pass of the prior of `level`, with everything it computes:
        `logits` over its whole vocabulary (joint lyrics+music for 1b_lyrics), the 5b_lyrics
        `lyric_logits`, and, for the layer indices in `capture`, the residual stream after
        each and its attention probabilities (lyric alignment reads the enc-dec/prime ones).
        `unroll` runs the layer stack unrolled instead of scanned (same numbers)."""
        cfg = self._prior_config(level)
        if jnp.shape(tokens)[-1:] == (0,):
            raise ValueError("tokens must hold at least one position")
        tokens, labels, upper_codes = self._check_prior_inputs(cfg, tokens, labels, upper_codes)
        capture = frozenset(capture)
        if not capture <= set(range(cfg.transformer.depth)):
            raise ValueError(f"capture {sorted(capture)}: the level-{level} prior has layers 0..{cfg.transformer.depth - 1}")
        execution = Execution.UNROLLED if unroll else Execution.SCAN
        return prior.forward(cfg, self.params[f"prior_level_{level}"], tokens, labels, upper_codes, capture, execution)

    def prior_logits(self, level: int, tokens: jax.Array, labels: jax.Array, upper_codes: jax.Array | None = None) -> jax.Array:
        """Teacher-forced music logits `[B, T, l_bins]`: position i predicts `tokens[:, i]`.

        tokens: `[B, T]` codes of `level`, T <= the prior's `n_ctx`.
        labels: `[B, 4 + genre slots + n_tokens]` in the original layout `[total_length,
          offset, sample_length, artist, genres..., lyric tokens...]`, already windowed.
        upper_codes: `[B, n_ctx // cond_downsample]` codes of the level above (upsamplers).
        """
        cfg = self._prior_config(level)
        logits = self.prior_forward(level, tokens, labels, upper_codes).logits
        if cfg.lyrics is Lyrics.JOINT_SEQUENCE:  # the music part of the joint sequence and vocabulary
            logits = logits[:, cfg.n_tokens :, cfg.n_vocab :]
        return logits

    def prior_loss(self, level: int, tokens: jax.Array, labels: jax.Array, upper_codes: jax.Array | None = None) -> dict[str, jax.Array]:
        """The original's losses in bits per token: `gen_loss` (music), `prime_loss` (lyrics,
        0 without) and `loss`, their training mix. Arguments as `prior_logits`."""
        cfg = self._prior_config(level)
        out = self.prior_forward(level, tokens, labels, upper_codes)
        return prior_losses(cfg, out, jnp.asarray(tokens), jnp.asarray(labels))

    def _prior_config(self, level: int) -> PriorConfig:
        try:
            return self.config.prior(level)
        except KeyError as e:
            raise ValueError(e.args[0]) from None

    def sample(
        self,
        level: int,
        key: jax.Array,
        labels: jax.Array,
        n_tokens: int,
        upper_codes: jax.Array | None = None,
        prompt: jax.Array | None = None,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.0,
        *,
        method: Method | None = None,
        chunk_size: int | None = None,
        steps_per_call: int | None = None,
        on_tokens: Callable[[int, int], None] | None = None,
    ) -> jax.Array:
        """Samples one window of the prior of `level` with a KV cache -> codes `[B, n_tokens]`,
        including the `prompt [B, P]` (P < n_tokens) it continues, if any.

        `labels` and `upper_codes` as `prior_logits` (their batch size is the number of
        samples). `top_k=1` is greedy; otherwise tokens are drawn at `temperature`, from the
        `top_k` most likely or the `top_p` nucleus; or pass a sampling `method` object
        (`jukebox_jax.sampling.Greedy`, `Temperature`, `TopK`, `TopP`) instead. The prompt is read in chunks of
        `chunk_size` (default: one). The new tokens are decoded in jitted calls of
        `steps_per_call` (default: one call), after each of which `on_tokens(done, total)`
        is told how many of the window's new tokens exist. For 1b_lyrics the window is sampled over the joint
        vocabulary after the lyric prefix, and lyric ids drawn at music positions become 0,
        as the original's `prior_postprocess`."""
        cfg = self._prior_config(level)
        if method is None:
            method = sampling_method(temperature, top_k, top_p)
        elif (temperature, top_k, top_p) != (1.0, 0, 0.0):
            raise ValueError(f"give method= or temperature/top_k/top_p, not both (got {method} and {temperature}, {top_k}, {top_p})")
        if not 0 < n_tokens <= cfg.n_ctx:
            raise ValueError(f"n_tokens must be in 1..{cfg.n_ctx} (the prior's window), got {n_tokens}")
        batch = jnp.shape(labels)[0]
        prompt = jnp.zeros((batch, 0), jnp.int32) if prompt is None else prompt
        if jnp.shape(prompt)[1] >= n_tokens:
            raise ValueError(f"the prompt ({jnp.shape(prompt)[1]} tokens) must be shorter than n_tokens={n_tokens}")
        prompt, labels, upper_codes = self._check_prior_inputs(cfg, prompt, labels, upper_codes)
        params = self.decode_params(level)
        ctx = prior.condition(cfg, self.params[f"prior_level_{level}"], labels, upper_codes)
        seq = prior.sequence(cfg, prompt, labels)
        total = seq.shape[1] + n_tokens - prompt.shape[1]
        state, _ = prefill(cfg, params, ctx, seq, key, chunk_size)
        n_new = total - seq.shape[1]
        for state in decode_chunks(cfg, params, ctx, state, method, n_new, steps_per_call or n_new):
            if on_tokens is not None:
                on_tokens(int(state.step) - seq.shape[1], n_new)
        tokens = state.tokens[:, :total]
        if cfg.lyrics is Lyrics.JOINT_SEQUENCE:
            tokens = jnp.maximum(tokens[:, cfg.n_tokens :] - cfg.n_vocab, 0)
        return tokens

    def decode_params(self, level: int) -> Params:
        """The prior's params as cached passes run them fastest (`prior.decode_params`), made
        once and kept: one buffer per layer as views of `params` on a CPU, `params` itself on
        an accelerator. Never a second copy of the weights."""
        if level not in self._derived:
            self._derived[level] = prior.decode_params(self._prior_config(level), self.params[f"prior_level_{level}"])
        return self._derived[level]

    @staticmethod
    def _check_prior_inputs(cfg: PriorConfig, tokens, labels, upper_codes):
        """Checks and casts `tokens [B, T]` (T may be 0 for a sampling prompt), `labels` and
        `upper_codes`; raises ValueError naming the problem."""
        tokens, labels = jnp.asarray(tokens), jnp.asarray(labels)
        if tokens.ndim != 2 or tokens.shape[1] > cfg.n_ctx or not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ValueError(f"tokens must be integer [batch, <= {cfg.n_ctx}], got {tokens.dtype} {tokens.shape}")
        if labels.shape != (tokens.shape[0], cfg.n_labels) or not jnp.issubdtype(labels.dtype, jnp.integer):
            raise ValueError(
                f"labels must be integer [batch={tokens.shape[0]}, {cfg.n_labels}] (4 + genre slots + {cfg.n_tokens} "
                f"lyric tokens), got {labels.dtype} {labels.shape}"
            )
        _check_range("tokens", tokens, cfg.l_bins)
        if cfg.conditioner is None:
            if upper_codes is not None:
                raise ValueError(f"the level-{cfg.level} prior is not conditioned on upper codes; pass upper_codes=None")
        else:
            want = (tokens.shape[0], cfg.n_ctx // cfg.cond_downsample)
            if upper_codes is None or jnp.shape(upper_codes) != want:
                raise ValueError(f"upper_codes must be the level-{cfg.level + 1} codes of the window, {want}, got {jnp.shape(upper_codes)}")
            upper_codes = jnp.asarray(upper_codes)
            _check_range("upper_codes", upper_codes, cfg.l_bins)
            upper_codes = upper_codes.astype(jnp.int32)
        return tokens.astype(jnp.int32), labels.astype(jnp.int32), upper_codes

    def _vqvae_config(self) -> VQVAEConfig:
        if self.config.vqvae is None:
            raise ValueError("this Jukebox has no VQ-VAE: convert or load one with it")
        return self.config.vqvae

    # -- Saving -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Writes the folder `path`: `config.json` and an orbax checkpoint `params/`, with
        checksums; an existing checkpoint there is replaced atomically (`checkpoint.py`)."""
        checkpoint.save(Path(path), self.config, self.params)

    @classmethod
    def load(cls, path: str | os.PathLike, *, verify: bool = True) -> Jukebox:
        """Reads what `save` wrote; verifies the checksums (unless `verify` is false) and
        checks every array against the config; raises `CheckpointError` naming the file."""
        return cls(*checkpoint.load(Path(path), verify=verify))

    def __repr__(self) -> str:
        parts = (["vqvae"] if self.config.vqvae else []) + [f"prior_level_{p.level}" for p in self.config.priors]
        n = sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(self.params))
        return f"Jukebox({', '.join(parts)}; {n / 1e6:.2f} M params)"


def _check_range(name: str, x: jax.Array, n: int) -> None:
    if x.size and not (0 <= int(x.min()) and int(x.max()) < n):
        raise ValueError(f"{name} must lie in [0, {n}), got [{int(x.min())}, {int(x.max())}]")


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _encode(params: Params, audio: jax.Array, cfg: VQVAEConfig, start_level: int, end_level: int) -> list[jax.Array]:
    return VQVAE(cfg).apply({"params": params}, audio, start_level, end_level, method=VQVAE.encode)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _decode(params: Params, codes: jax.Array, cfg: VQVAEConfig, level: int) -> jax.Array:
    return VQVAE(cfg).apply({"params": params}, codes, level, method=VQVAE.decode)
