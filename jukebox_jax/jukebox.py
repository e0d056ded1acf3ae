"""`Jukebox`: a config plus its params, with the model's public methods.

Any subset of parts may be present (a VQ-VAE alone, one prior alone, or all). Methods are
pure: they read `params` and return arrays; the jitted kernels take the config statically.
Every argument is checked on the host before anything is traced (`checks.py`); a bad one
raises `InputError` naming it, its allowed range and the fix.

A `Jukebox` placed on a device mesh (`shard`, or `load(mesh=...)`) keeps its mesh and rules,
and every method runs under them with the same API (`sharding.py`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from collections.abc import Callable, Iterable, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jukebox_jax import checkpoint, checks, integrity, prior, sharding, tokenizer
from jukebox_jax.config import DType, JukeboxConfig, Lyrics, PriorConfig, VQVAEConfig, WeightFormat
from jukebox_jax.errors import DivergedError, InputError, shown
from jukebox_jax.labels import int32_seconds, window_labels
from jukebox_jax.params import Params, abstract_params, cast, check_params, init_params
from jukebox_jax.prior import Execution, PriorOutput, prior_losses
from jukebox_jax.quantize import config_with_weights, quantize_params
from jukebox_jax.sampling import Method, TopK, decode_chunks, prefill, sampling_method
from jukebox_jax.sampling.decode import BROKEN, placed_like
from jukebox_jax.sampling.methods import check_is_method
from jukebox_jax.vqvae import VQVAE


@dataclasses.dataclass(frozen=True, eq=False)
class Jukebox:
    """A config and its params (canonical layout; checked against the config: `ParamsError`
    names every missing, unexpected or mis-shaped array). Execution layouts derived from the
    params (the per-layer weights decoding runs on) are made once per `Jukebox` and kept with
    it, as are the weights' digests (`fingerprint`): change weights by replacing arrays
    (`jb.params[part] = ...`), not by writing into numpy arrays in place, which goes unseen.
    `mesh` and `rules` (None: one device) are set by `shard` and `load(mesh=...)`. Two
    models are equal only if they are the same object (compare `fingerprint()`s for weights)."""

    config: JukeboxConfig
    params: Params = dataclasses.field(repr=False)
    mesh: Mesh | None = dataclasses.field(default=None, repr=False)
    rules: sharding.Rules | None = dataclasses.field(default=None, repr=False)
    _derived: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        _check_config(self.config)
        if not isinstance(self.params, dict):
            raise InputError(f"params must be a dict of each part's params, got {type(self.params).__name__}")
        check_params(abstract_params(self.config), self.params)
        for name, part in self.params.items():
            self._keep(("checked", name), part, True)

    @classmethod
    def init(cls, config: JukeboxConfig, key: jax.Array) -> Jukebox:
        """Random weights for every part of `config`."""
        _check_config(config)
        return cls(config, init_params(config, checks.key(key)))

    def with_prior(self, prior: PriorConfig, params: Params) -> Jukebox:
        """This model with the prior of `prior`'s level replaced (or added) by `prior` and its
        `params`: a fine-tuned prior (`train.steps.weights` of its state) back in its model
        (placed on this model's mesh, if any)."""
        jb = Jukebox(self.config.with_prior(prior), {**self.params, f"prior_level_{prior.level}": params})
        return jb if self.mesh is None else jb.shard(self.mesh, self.rules)

    def astype(self, dtype: DType | str) -> Jukebox:
        """This model with its priors' transformer weights stored, and their activations and KV
        caches computed, in `dtype` ('float32', 'bfloat16', 'float16'; `JukeboxConfig.astype`
        says what stays float32 and why). Casting back to float32 restores the weights exactly
        only if they were float32-representable in `dtype`."""
        config = self.config.astype(dtype)
        return self if config == self.config else Jukebox(config, cast(config, self.params), self.mesh, self.rules)

    def shard(self, mesh: Mesh, rules: sharding.Rules | None = None) -> Jukebox:
        """This model on `mesh` (`sharding.make_mesh`): each param placed in its shards
        (`sharding.shardings`; `rules` overrides `sharding.RULES`), and every method run
        under the mesh. In a run of several processes, each process calls it with the same
        params (e.g. from the same key) and keeps only its own shards."""
        rules = sharding.check_mesh(mesh, rules)
        jb = Jukebox(self.config, jax.device_put(self.params, sharding.shardings(self.config, mesh, rules)), mesh, rules)
        if (digests := self._fresh("digests", self.params)) is not None:
            jb._keep("digests", jb.params, digests)  # the same values
        return jb

    def _gathered(self, x):
        """`x` (a tree) replicated over the mesh, if any: what every process can read whole."""
        return x if self.mesh is None else jax.device_put(x, sharding.replicated(self.mesh))

    def _running(self, part: PriorConfig | VQVAEConfig) -> contextlib.AbstractContextManager:
        """The mesh and `part`'s rules (`sharding.use`) if this model has a mesh."""
        if self.mesh is None:
            return contextlib.nullcontext()
        return sharding.use(self.mesh, sharding.part_rules(part, sharding.shape_of(self.mesh), self.rules))

    def quantize(self, weights: WeightFormat | str) -> Jukebox:
        """This model with its priors' transformer projection matrices (attention and MLP, the
        lyric encoder's too) stored as `weights` ('int8': symmetric per output channel, a
        float32 scale per channel, dequantised inside each matmul; `quantize.py` says what
        stays float and why). 'float' keeps a float model as it is. Quantizing int8 weights
        again is an `InputError`; `astype` afterwards keeps them int8 and changes the compute
        and cache dtype. A sharded model stays on its mesh, each scale split as its kernel."""
        config = config_with_weights(self.config, weights)
        if config == self.config:
            return self
        jb = Jukebox(config, quantize_params(self.config, self.params, config))
        return jb if self.mesh is None else jb.shard(self.mesh, self.rules)

    def fingerprint(self) -> str:
        """A digest of the config and every weight (`integrity.py`): what a sampling job
        records to know which model it was made with."""
        return integrity.fingerprint(self.config.to_dict(), self._digests())

    def vqvae_fingerprint(self) -> str:
        """A digest of the VQ-VAE's config and weights alone: what codes record to know which
        VQ-VAE made them (`train.data.encode_folder`), whatever priors sit beside it."""
        vqvae = {k: v for k, v in self._digests().items() if k.split("/")[0] == "vqvae"}
        return integrity.fingerprint({"vqvae": self.config.to_dict()["vqvae"]}, vqvae)

    def _digests(self) -> dict[str, str]:
        """`integrity.tree_digests(self.params)`, hashed once per `Jukebox` (a verified load
        or a save already did)."""
        checks.alive(self.params)
        return self._kept("digests", self.params, lambda: checkpoint.digests(self.params))

    def _part(self, name: str) -> Params:
        """`params[name]` (`"vqvae"`, `"prior_level_{L}"`), checked against the config again if
        its arrays were replaced since (`jb.params[name] = ...`): a `ParamsError`, not Flax's."""
        checks.float32_mode()
        part = self.params.get(name)
        self._kept(("checked", name), part, lambda: check_params({name: abstract_params(self.config)[name]}, {name: part}) or True)
        checks.alive(part)  # donated since it was checked
        return part

    def _kept(self, key: Any, tree: Params, make: Callable[[], Any]) -> Any:
        """`make()`, made once and kept under `key` while `tree` holds the arrays it was made
        from: params changed in place (`jb.params[part] = ...`) make it again."""
        if (value := self._fresh(key, tree)) is None:
            value = make()
            self._keep(key, tree, value)
        return value

    def _fresh(self, key: Any, tree: Params) -> Any:
        """What is kept under `key`, if made from the arrays `tree` holds now (else None)."""
        leaves, value = self._derived.get(key, ((), None))
        now = jax.tree.leaves(tree)
        return value if len(leaves) == len(now) and all(a is b for a, b in zip(leaves, now)) else None

    def _keep(self, key: Any, tree: Params, value: Any) -> None:
        self._derived[key] = (jax.tree.leaves(tree), value)  # the arrays themselves: an id could be reused

    # -- VQ-VAE -------------------------------------------------------------------------

    def encode(self, audio: jax.Array, *, start_level: int = 0, end_level: int | None = None) -> list[jax.Array]:
        """Audio `[B, T, 1]` float in [-1, 1] -> int32 codes `[B, T / hop]` per level,
        level 0 (finest) first, for levels `start_level..end_level-1` (default: all).

        The audio must be at the VQ-VAE's `sample_rate` (44.1 kHz released, 16 kHz the
        default model's): `audio.load(path, jb.config.vqvae.sample_rate)` reads and resamples
        a file; an array at another rate cannot be told apart and is encoded as given.

        `T` must be a multiple of the hop of the deepest level asked for (128 for all three
        levels of the released VQ-VAE). NaN and Inf are refused, and so is a peak past
        `checks.MAX_AUDIO_PEAK` (8: unscaled integer PCM); samples in between are encoded
        as given, not clipped (decoded audio overshoots [-1, 1] and may be re-encoded)."""
        cfg = self._vqvae_config()
        start_level = checks.integer("start_level", start_level, 0, cfg.levels - 1, f" (the VQ-VAE has {cfg.levels} levels)")
        end_level = checks.integer("end_level", cfg.levels if end_level is None else end_level, start_level + 1, cfg.levels, " (above start_level)")
        audio = checks.audio(audio)
        hop = cfg.hop_lengths[end_level - 1]
        if audio.shape[1] % hop:
            raise InputError(
                f"audio length {audio.shape[1]} is not a positive multiple of {hop} samples (the hop of "
                f"level {end_level - 1}); pad or trim it"
            )
        with self._running(cfg):
            return self._gathered(_encode(self._part("vqvae"), audio, cfg, start_level, end_level))

    def decode(self, codes: Sequence[jax.Array], start_level: int = 0) -> jax.Array:
        """Codes of levels `start_level, start_level + 1, ...` -> audio `[B, T, 1]`.

        As the original `decode(zs[l:], start_level=l)`, only `codes[0]` (level
        `start_level`) is decoded; the rest are accepted for symmetry with `encode`."""
        cfg = self._vqvae_config()
        if not isinstance(codes, (list, tuple)) or not codes:
            raise InputError(f"codes must be a non-empty list of [batch, time] arrays, one per level, got {type(codes).__name__}; wrap one level's codes in a list")
        start_level = checks.integer("start_level", start_level, 0, cfg.levels - 1, f" (the VQ-VAE has {cfg.levels} levels)")
        if start_level + len(codes) > cfg.levels:
            raise InputError(f"{len(codes)} levels of codes from start_level {start_level} do not fit {cfg.levels} levels")
        z = checks.int_array("codes[0]", codes[0], 2, "[batch, time]")
        checks.in_range("codes[0]", z, 0, cfg.l_bins, f"the VQ-VAE codebook has {cfg.l_bins} codes")
        with self._running(cfg):
            return self._gathered(_decode(self._part("vqvae"), jnp.asarray(z, jnp.int32), cfg, start_level))

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
        tokens, labels, upper_codes = checks.prior_inputs(cfg, tokens, labels, upper_codes)
        capture = _layers(cfg, capture)
        execution = Execution.UNROLLED if unroll else Execution.SCAN
        with self._running(cfg):
            return prior.forward(cfg, self._part(f"prior_level_{level}"), tokens, labels, upper_codes, capture, execution)

    def prior_logits(self, level: int, tokens: jax.Array, labels: jax.Array, upper_codes: jax.Array | None = None) -> jax.Array:
        """Teacher-forced music logits `[B, T, l_bins]`: position i predicts `tokens[:, i]`.

        tokens: `[B, T]` codes of `level`, T <= the prior's `n_ctx`.
        labels: `[B, 4 + genre slots + n_tokens]` in the original layout `[total_length,
          offset, sample_length, artist, genres..., lyric tokens...]`, already windowed
          (`sample_length` the prior's window, `n_ctx * raw_to_tokens`: each level its own).
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
        return prior_losses(cfg, out, tokens, labels)

    def labels(
        self,
        level: int,
        *,
        total_seconds: float,
        artist: tokenizer.Artist = "unknown",
        genre: tokenizer.Genre = "unknown",
        lyrics: tokenizer.Lyrics = "",
        offset_seconds: float = 0.0,
        n_samples: int = 1,
    ) -> np.ndarray:
        """The labels `[n_samples, n_labels]` int32 that the prior of `level` takes (`sample`,
        `prior_logits`, ...) for the window starting `offset_seconds` into a song of
        `total_seconds` by `artist`, in `genre`, with `lyrics`.

        artist, genre: names in the prior's tables (a model's own, `config.prior(level).labels
          .artists`/`.genres`, as the default model's; else the released v2 for 5b, 5b_lyrics
          and the upsamplers, v3 for 1b_lyrics, see `tokenizer`), or ids. The released tables
          have 'unknown' (id 0), the default for both; a model's own tables hold only their
          names. A v2 genre name may be several words ("country rock"), one genre slot each,
          and a genre may also be a sequence of ids. An unknown name is an error suggesting
          close ones.
        lyrics: the whole song's text (or its token ids); the window's tokens are the ones
          around its place in the song. Ignored by priors that do not read lyrics.
        total_seconds: the song's length: for a prior that reads timing (the top level), at most
          its `max_duration` (600 s for the released ones), a song shorter than `min_duration`
          conditioned as the shortest length it knows; otherwise what int32 audio samples hold.
        offset_seconds: where the window starts, in [0, total_seconds). The window at token
          `start` of a sample starts `start * raw_to_tokens / sample_rate` seconds later.
        """
        cfg = self._prior_config(level)
        n_samples = checks.integer("n_samples", n_samples, 1)
        rate = cfg.labels.sample_rate if cfg.labels else self._vqvae_config().sample_rate
        if cfg.labels and cfg.labels.timing:
            longest, why = cfg.labels.max_duration, f"the level-{cfg.level} prior's timing covers songs up to {cfg.labels.max_duration:g} s"
        else:
            longest, why = int32_seconds(rate), "labels hold lengths as int32 audio samples"
        total_seconds = checks.finite_real("total_seconds", total_seconds)
        if not 0 < total_seconds <= longest:
            raise InputError(f"total_seconds must be in (0, {longest:g}] ({why}), got {total_seconds:g}")
        offset_seconds = checks.finite_real("offset_seconds", offset_seconds)
        total = max(round(total_seconds * rate), 1)
        if not 0 <= offset_seconds < total_seconds:  # checked in seconds first: 1e303 s is no number of samples
            raise InputError(f"offset_seconds must be in [0, total_seconds={total_seconds:g}), got {offset_seconds:g}")
        offset = round(offset_seconds * rate)
        if offset >= total:  # and once rounded to samples
            raise InputError(
                f"offset_seconds {offset_seconds!r} is sample {offset} at {rate} Hz, not before the song's end at sample "
                f"{total}: give at most {(total - 1) / rate!r} s"
            )
        song = tokenizer.song_labels(cfg, total, artist, genre, lyrics, offset)
        return np.repeat(window_labels(cfg, song, 0)[None].astype(np.int32), n_samples, axis=0)

    def _prior_config(self, level: int) -> PriorConfig:
        levels = [p.level for p in self.config.priors]
        checks.integer("level", level, 0, note=f" (this model's priors: levels {levels})")
        return self.config.prior(level)

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
        samples). `key`: one key (sample `i` draws with `fold_in(key, i)`), or one per sample
        `[B]`; a sample's draws depend on its key alone, not on the others in the batch (whose
        size changes the logits by float rounding: a near-tie draw may flip). Position `t`
        draws from `fold_in(that key, t)`: windows sampled one after another want a key each
        (`fold_in(key, start)`, as `generation.sample_levels` does), or they repeat their draws.
        `top_k=1` is greedy; otherwise tokens are drawn at `temperature`, from the
        `top_k` most likely or the `top_p` nucleus; or pass a sampling `method` object
        (`jukebox_jax.sampling.Greedy`, `Temperature`, `TopK`, `TopP`) instead. The prompt is read in chunks of
        `chunk_size` tokens (default: the whole prompt in one call). The new tokens are decoded in jitted calls of
        `steps_per_call` (default: one call), after each of which `on_tokens(done, total)`
        is told how many of the window's new tokens exist. For 1b_lyrics the window is sampled over the joint
        vocabulary after the lyric prefix, and lyric ids drawn at music positions become 0,
        as the original's `prior_postprocess`."""
        cfg = self._prior_config(level)
        if method is None:
            method = sampling_method(temperature, top_k, top_p)
        elif (temperature, top_k, top_p) != (1.0, 0, 0.0):
            raise InputError(f"give method= or temperature/top_k/top_p, not both (got {method} and {temperature}, {top_k}, {top_p})")
        check_method(cfg, method)
        n_tokens = checks.integer("n_tokens", n_tokens, 1, cfg.n_ctx, " (the prior's window)")
        if chunk_size is not None:
            checks.integer("chunk_size", chunk_size, 1)
        if steps_per_call is not None:
            checks.integer("steps_per_call", steps_per_call, 1)
        if on_tokens is not None and not callable(on_tokens):
            raise InputError(f"on_tokens must be a function (done, total) -> None, got {shown(on_tokens)}")
        prompt, labels, upper_codes = checks.prior_inputs(cfg, prompt, labels, upper_codes, prompt=True)
        checks.untraced("key", key)
        key = checks.key(key, batch=labels.shape[0])
        if prompt.shape[1] >= n_tokens:
            raise InputError(f"the prompt ({prompt.shape[1]} tokens) must be shorter than n_tokens={n_tokens}")
        params = self.decode_params(level)
        with self._running(cfg):
            ctx = prior.condition(cfg, self._part(f"prior_level_{level}"), labels, upper_codes)
            seq = prior.sequence(cfg, prompt, labels)
            total = seq.shape[1] + n_tokens - prompt.shape[1]
            prefilled, _ = prefill(cfg, params, ctx, seq, key, chunk_size)
            n_new = total - seq.shape[1]
            for state in decode_chunks(cfg, params, ctx, prefilled, method, n_new, steps_per_call or n_new):
                if on_tokens is not None:
                    on_tokens(int(state.step) - seq.shape[1], n_new)
            # On the host: an op on the request's own length would compile for each length asked.
            tokens = np.asarray(self._gathered(state.tokens))[:, :total]
            if (tokens == BROKEN).any():
                fix = "sample with --dtype bfloat16 (float32's range)" if cfg.precision.compute is DType.FLOAT16 else "check its weights"
                raise DivergedError(
                    f"the level-{cfg.level} prior's logits became NaN or infinite while sampling (activations past "
                    f"{cfg.precision.compute.value}'s range, or weights that hold NaN): {fix}"
                )
            if cfg.lyrics is Lyrics.JOINT_SEQUENCE:
                tokens = np.maximum(tokens[:, cfg.n_tokens :] - cfg.n_vocab, 0)
        return jax.device_put(placed_like(params, tokens)) if self.mesh is None else self._gathered(tokens)  # where the model is

    def decode_params(self, level: int) -> Params:
        """The prior's params as cached passes run them fastest (`prior.decode_params`), made
        once and kept (made again if `params` is changed in place): one buffer per layer as
        views of `params` on a CPU, `params` itself on an accelerator. Never a second copy of
        the weights; the dicts are new each call, so editing them (to ablate a layer, say)
        changes nothing the model holds: `sample` and `prior_logits` read `params`."""
        cfg = self._prior_config(level)
        part = self._part(f"prior_level_{cfg.level}")
        return jax.tree.map(lambda x: x, self._kept(cfg.level, part, lambda: prior.decode_params(cfg, part)))

    def _vqvae_config(self) -> VQVAEConfig:
        if self.config.vqvae is None:
            raise InputError("this Jukebox has no VQ-VAE: convert or load one with it")
        return self.config.vqvae

    # -- Saving -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Writes the folder `path`: `config.json` and an orbax checkpoint `params/`, with
        checksums; an existing checkpoint there is replaced atomically (`checkpoint.py`)."""
        checkpoint.save(Path(path), self.config, self.params, self._digests())

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        verify: bool = True,
        dtype: DType | str | None = None,
        mesh: Mesh | None = None,
        rules: sharding.Rules | None = None,
    ) -> Jukebox:
        """Reads what `save` wrote; verifies the checksums (unless `verify` is false) and
        checks every array against the config; raises `CheckpointError` naming the file.

        mesh: restore each array straight into its shards on `mesh` (as `shard(mesh, rules)`
          places them; each process reads only its own), never the whole model on one device.
        dtype: then cast (`astype`), one array at a time, keeping the shards."""
        if mesh is not None:
            rules = sharding.check_mesh(mesh, rules)
        elif rules is not None:
            raise InputError("rules= places the params on a mesh: give mesh= too")
        if dtype is not None:
            dtype = DType.parse(dtype)
        config, params, digests = checkpoint.load(Path(path), verify=verify, mesh=mesh, rules=rules)
        jb = cls(config, params, mesh, rules)
        if digests is not None:
            jb._keep("digests", params, digests)  # checked equal to the arrays' own
        return jb if dtype is None else jb.astype(dtype)

    def __repr__(self) -> str:
        parts = (["vqvae"] if self.config.vqvae else []) + [f"prior_level_{p.level}" for p in self.config.priors]
        n = sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(self.params))
        return f"Jukebox({', '.join(parts)}; {n / 1e6:.2f} M params)"


def _layers(cfg: PriorConfig, capture: Iterable[int]) -> frozenset[int]:
    """The layer indices of `capture`, each in the prior's stack."""
    try:
        layers = frozenset(capture)
    except TypeError:
        raise InputError(f"capture must be a set of layer indices, got {capture!r}") from None
    depth = cfg.transformer.depth
    outside = sorted((i for i in layers if not isinstance(i, Integral) or isinstance(i, bool) or not 0 <= i < depth), key=repr)
    if outside:
        raise InputError(f"capture {outside}: the level-{cfg.level} prior has layers 0..{depth - 1}")
    return layers


def _check_config(config: Any) -> None:
    if not isinstance(config, JukeboxConfig):
        raise InputError(
            f"config must be a JukeboxConfig (e.g. JukeboxConfig.from_preset('small')), got {type(config).__name__}"
        )


def check_method(cfg: PriorConfig, method: Method) -> None:
    """A sampling method object whose top-k fits the prior's vocabulary."""
    check_is_method(method)
    if isinstance(method, TopK) and method.k > cfg.bins:
        raise InputError(f"top_k must be at most {cfg.bins} (the level-{cfg.level} prior's vocabulary), got {method.k}")


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _encode(params: Params, audio: jax.Array, cfg: VQVAEConfig, start_level: int, end_level: int) -> list[jax.Array]:
    return VQVAE(cfg).apply({"params": params}, audio, start_level, end_level, method=VQVAE.encode)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _decode(params: Params, codes: jax.Array, cfg: VQVAEConfig, level: int) -> jax.Array:
    return VQVAE(cfg).apply({"params": params}, codes, level, method=VQVAE.decode)
