"""The prior's training loss (original `SimplePrior.z_forward` in train mode) and its gradient,
on canonical params; and growing a converted prior's artist and genre tables for fine-tuning.

Train mode differs from the teacher-forced pass of `jukebox_jax.prior` only by dropout (on
when an `rng` is given; every released config has all dropouts 0, so the original draws
nothing). The original's train mode also scales attention differently, `(q s) . (k s)` with
`s = head_dim^-1/4` against `(q . k) s^2`. We keep one formula (`attention.attend`): float32
rounding only, measured on the fixtures (`tests/test_train_prior.py`): the original's own
train- and eval-mode logits differ by <= 5.7e-7 of their largest (0 where `s` is a power of
two), and ours are within 7.1e-7 of its train-mode ones, as close as to its eval-mode ones.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from jukebox_jax import checks
from jukebox_jax.config import LabelConfig, PriorConfig
from jukebox_jax.errors import ConfigError, InputError, ParamsError
from jukebox_jax.prior.conditioners import LabelConditioner
from jukebox_jax.prior.prior import Params, Prior, prior_losses, to_execution
from jukebox_jax.prior.transformer import Execution, Remat

Metrics = dict[str, jax.Array]


def _check_shapes(cfg: PriorConfig, tokens: jax.Array, labels: jax.Array, upper_codes: jax.Array | None) -> None:
    """Shapes only (values are the data pipeline's to check: these may be traced)."""
    if tokens.ndim != 2 or not 1 <= tokens.shape[1] <= cfg.n_ctx:
        raise InputError(f"tokens must be [batch, <= {cfg.n_ctx}] level-{cfg.level} codes, got shape {tokens.shape}")
    if labels.shape != (tokens.shape[0], cfg.n_labels):
        raise InputError(
            f"labels must be [batch={tokens.shape[0]}, {cfg.n_labels}] (4 + genre slots + {cfg.n_tokens} lyric "
            f"tokens), got shape {labels.shape}"
        )
    if cfg.conditioner is None and upper_codes is not None:
        raise InputError(f"the level-{cfg.level} prior is not conditioned on upper codes; pass upper_codes=None")
    if cfg.conditioner is not None:
        want = (tokens.shape[0], cfg.n_ctx // cfg.cond_downsample)
        got = None if upper_codes is None else upper_codes.shape
        if got != want:
            raise InputError(f"upper_codes must be {want}: the level-{cfg.level + 1} codes of the window, got {got}")


def prior_loss(
    cfg: PriorConfig,
    params: Params,
    tokens: jax.Array,
    labels: jax.Array,
    upper_codes: jax.Array | None = None,
    *,
    rng: jax.Array | None = None,
    remat: Remat = Remat.NONE,
    execution: Execution = Execution.SCAN,
) -> tuple[jax.Array, Metrics]:
    """The original training loss of one batch, in bits per token, on canonical `params`.

    tokens `[b, t]` (t <= n_ctx) music codes; labels `[b, n_labels]`; upper_codes
    `[b, n_ctx // cond_downsample]` (upsamplers, else None). `rng`: dropout on, drawn from it
    (None: off). `remat` recomputes the scanned layers in the backward pass (the original's
    `checkpoint_res`; no numerical effect). Returns `(loss, metrics)`: `loss`, `gen_loss`
    (music), `prime_loss` (lyrics, 0 without) as `prior_losses`, and `bpd`, the original's
    logged name for `gen_loss` (bits per music token)."""
    _check_shapes(cfg, tokens, labels, upper_codes)
    model = Prior(cfg, execution, remat, deterministic=rng is None)
    rngs = None if rng is None else {"dropout": rng}
    out = model.apply({"params": to_execution(cfg, params, execution)}, tokens, labels, upper_codes, rngs=rngs)
    losses = prior_losses(cfg, out, tokens, labels)
    return losses["loss"], {**losses, "bpd": losses["gen_loss"]}


@functools.partial(jax.jit, static_argnames=("cfg", "remat", "execution"))
def prior_value_and_grad(
    cfg: PriorConfig,
    params: Params,
    tokens: jax.Array,
    labels: jax.Array,
    upper_codes: jax.Array | None = None,
    *,
    rng: jax.Array | None = None,
    remat: Remat = Remat.NONE,
    execution: Execution = Execution.SCAN,
) -> tuple[tuple[jax.Array, Metrics], Params]:
    """`((loss, metrics), grads)` of `prior_loss` with respect to `params` (same tree), jitted."""
    fn = functools.partial(prior_loss, cfg, rng=rng, remat=remat, execution=execution)
    return jax.value_and_grad(fn, has_aux=True)(params, tokens, labels, upper_codes)


def grow_label_tables(
    cfg: PriorConfig, params: Params, labels: LabelConfig, key: jax.Array
) -> tuple[PriorConfig, Params]:
    """A prior to fine-tune with more artists or genres: `labels` is the new `LabelConfig`,
    which may only raise `artist_bins` and `genre_bins` over `cfg.labels` and name the new ids
    (`artists`, `genres`: the old names first, in their order); every other field keeps what
    the labels mean (timing, label set, lyric characters). The old rows are kept, so old ids
    give the same logits; the new rows are drawn from `key` as the original initialises these
    tables (normal, std `0.01 * init_scale`). Returns the new config and params (the prior's
    canonical params)."""
    key = checks.key(key)
    old = cfg.labels
    if old is None:
        raise ConfigError(f"the level-{cfg.level} prior has no artist/genre labels to grow")
    free = ("artist_bins", "genre_bins", "artists", "genres")
    if changed := [f.name for f in dataclasses.fields(old) if f.name not in free and getattr(labels, f.name) != getattr(old, f.name)]:
        raise ConfigError(f"only the artist and genre tables may grow ({', '.join(free)}); these changed: {', '.join(changed)}")
    for kind in ("artists", "genres"):
        was, now = getattr(old, kind), getattr(labels, kind)
        if was is not None and (now is None or tuple(now[: len(was)]) != tuple(was)):
            raise ConfigError(f"{kind}: the grown table must begin with the prior's own names, in their order (an old id keeps its name)")
    if labels.artist_bins < old.artist_bins or labels.genre_bins < old.genre_bins:
        raise ConfigError(
            f"label tables can only grow: artist_bins {old.artist_bins} -> {labels.artist_bins}, "
            f"genre_bins {old.genre_bins} -> {labels.genre_bins}"
        )
    new_cfg = dataclasses.replace(cfg, labels=labels)
    example = jax.ShapeDtypeStruct((1, 4 + labels.max_bow_genre_size), jnp.int32)
    boxed = jax.eval_shape(LabelConditioner(new_cfg).init, jax.random.key(0), example)["params"]
    tables = dict(params["labels"])
    for i, name in enumerate(("artist_emb", "genre_emb")):
        table, want = tables[name]["embedding"], boxed[name]["embedding"]  # [bins, w], a boxed `layers.Param`
        if table.shape[1:] != want.value.shape[1:]:
            raise ParamsError(f"labels/{name}/embedding has shape {table.shape}; the config wants {want.value.shape}")
        rows = want.init.sample(jax.random.fold_in(key, i), (want.value.shape[0] - table.shape[0], table.shape[1]))
        tables[name] = {"embedding": jnp.concatenate([table, rows.astype(table.dtype)])}  # [new bins, w]
    return new_cfg, {**params, "labels": tables}
