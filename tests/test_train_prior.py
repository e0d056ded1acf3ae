"""One training step of each of the five released prior structures against the original's
(`<stem>.training.{npz,json}`, README "Training fixtures" / "Priors"): train-mode logits,
the losses, every parameter's gradient, and the params after one step of the original Adam;
plus dropout, remat and growing the label tables for fine-tuning."""

from __future__ import annotations

import dataclasses
import functools
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from dropout_checks import assert_drops_at_its_rate, dropout_calls
from jax.flatten_util import ravel_pytree

from convert import convert_checkpoint
from convert.table import Row
from convert.table_prior import prior_rows
from jukebox_jax import Jukebox, JukeboxConfig
from jukebox_jax.config import DType, PriorConfig, WeightFormat
from jukebox_jax.errors import ConfigError, InputError, ParamsError
from jukebox_jax.prior.prior import Prior, condition, forward, to_execution
from jukebox_jax.prior.transformer import Execution, Remat
from jukebox_jax.train.loop import Run, RunConfig, fit
from jukebox_jax.train.optim import OptimConfig, global_norm, original_adam
from jukebox_jax.train.prior import grow_label_tables, prior_loss, prior_value_and_grad
from jukebox_jax.train.steps import PriorTask, weights

LEVEL = {
    "prior_5b_level2": 2,
    "prior_5b_lyrics_level2": 2,
    "prior_1b_lyrics_level2": 2,
    "upsampler_level1": 1,
    "upsampler_level0": 0,
}


def slot(tree: dict, row: Row) -> np.ndarray:
    """Our array that `row` names (its layer's slot of a stacked param), in our layout."""
    for name in row.path[1:]:  # path[0] is the prior's `prior_level_{L}`
        tree = tree[name]
    return np.asarray(tree if row.index is None else tree[row.index])


def from_original(template: dict, rows: list[Row], arrays: dict[str, np.ndarray]) -> dict:
    """A tree shaped like `template` filled from arrays named as the original state_dict
    (`arrays[row.original]`; a tied row's second name is skipped)."""
    out = jax.tree.map(lambda x: np.zeros(x.shape, np.float32), template)
    for row in rows:
        if not row.tied:
            target = out
            for name in row.path[1:-1]:
                target = target[name]
            value = row.transform(arrays[row.original])
            if row.index is None:
                target[row.path[-1]] = value
            else:
                target[row.path[-1]][row.index] = value
    return out


def rel(a, b) -> float:
    """Relative L2 error of `a` against `b` (float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@dataclasses.dataclass
class Case:
    stem: str
    cfg: PriorConfig
    params: dict
    rows: list[Row]
    npz: dict
    json: dict
    inputs: tuple  # tokens, labels, upper_codes

    @functools.cached_property
    def step(self):
        """`((loss, metrics), grads)` of our training loss."""
        return prior_value_and_grad(self.cfg, self.params, *self.inputs)


@pytest.fixture(scope="module", params=list(LEVEL))
def case(request, fixtures) -> Case:
    stem = request.param
    jb = convert_checkpoint(fixtures / "vqvae.pth.tar", fixtures / f"{stem}.pth.tar")
    cfg = jb.config.prior(LEVEL[stem])
    npz = dict(np.load(fixtures / f"{stem}.training.npz"))
    upper = npz.get("z_cond")
    inputs = (jnp.asarray(npz["z"], jnp.int32), jnp.asarray(npz["y"], jnp.int32))
    inputs += (None if upper is None else jnp.asarray(upper, jnp.int32),)
    meta = json.loads((fixtures / f"{stem}.training.json").read_text())
    return Case(stem, cfg, jb.params[f"prior_level_{cfg.level}"], prior_rows(cfg, 0), npz, meta, inputs)


def test_train_mode_logits(case, fixtures):
    """Train mode (dropout path on, every rate 0 as in the original) gives the original's
    train-mode logits (1b_lyrics: the joint sequence and vocabulary). The original's train-mode
    attention scaling is not ours (module docstring); its effect, measured here on the
    original's own two outputs, is far below the tolerance."""

    @jax.jit
    def train_logits(params, *inputs):
        rngs = {"dropout": jax.random.key(0)}
        return Prior(case.cfg, deterministic=False).apply({"params": params}, *inputs, rngs=rngs).logits

    logits = np.asarray(train_logits(to_execution(case.cfg, case.params, Execution.SCAN), *case.inputs))
    ref = case.npz["logits"]
    assert logits.shape == ref.shape
    assert np.abs(logits - ref).max() / np.abs(ref).max() < 1e-5
    eval_ref = dict(np.load(fixtures / f"{case.stem}.reference.npz"))
    eval_ref = eval_ref.get("logits_full", eval_ref["logits"])
    # ~5e-7 (0 for the upsamplers, whose head width 16 makes s a power of two)
    assert np.abs(eval_ref - ref).max() / np.abs(ref).max() < 2e-6


def test_losses(case):
    (loss, metrics), _ = case.step
    assert float(loss) == float(metrics["loss"])
    for name in ("loss", "gen_loss", "prime_loss", "bpd"):
        want = case.json[name]
        assert abs(float(metrics[name]) - want) <= 1e-5 * abs(want), name  # exactly 0 where the json has 0
    assert (case.json["prime_loss_dims"] > 0) == (case.json["prime_loss"] > 0)


def test_gradients(case):
    """Every parameter's gradient (`grad/<name>` for each original name; the tied x_emb/x_out
    is one param of ours holding the sum, which both names store) within 1e-4 of its norm
    (measured: <= 1.3e-6)."""
    _, grads = case.step
    names = {k.removeprefix("grad/") for k in case.npz if k.startswith("grad/")}
    assert names == {row.original for row in case.rows}
    assert len(names) == case.json["grad_keys"]
    for row in case.rows:
        theirs = row.transform(case.npz[f"grad/{row.original}"])
        assert rel(slot(grads, row), theirs) < 1e-4, row.original


def test_one_adam_step(case):
    """The original `FusedAdam` step from the original's gradients (so that the step alone is
    checked): the clipping norm, then every stored param (`adam_step1/<name>`) to float32
    rounding: within 2 ulps of the tensor's largest value."""
    opt = case.json["optimizer"]
    cfg = OptimConfig(
        lr=opt["lr"], lr_warmup=0, beta1=opt["betas"][0], beta2=opt["betas"][1], eps=opt["eps"],
        weight_decay=opt["weight_decay"], clip=opt["clip"],
    )  # fmt: skip
    grads = from_original(case.params, case.rows, {row.original: case.npz[f"grad/{row.original}"] for row in case.rows})
    assert abs(float(global_norm(grads)) / opt["grad_norm"] - 1) < 1e-6
    # The step is elementwise but for the global norm: on the params raveled into one leaf it
    # is the same arithmetic, and compiles in no time (the tree form: test_train_optim.py).
    flat, unravel = ravel_pytree(case.params)
    tx = original_adam(cfg)
    updates, state = jax.jit(tx.update)(ravel_pytree(grads)[0], tx.init(flat), flat)
    stepped = unravel(optax.apply_updates(flat, updates))
    assert int(state.count) == 1
    checked = {row.original for row in case.rows if row.original in opt["adam_step1_keys"]}
    assert checked == set(opt["adam_step1_keys"])
    for row in case.rows:
        if row.original in checked:
            ours, theirs = slot(stepped, row), row.transform(case.npz[f"adam_step1/{row.original}"])
            start = slot(case.params, row)
            assert np.abs(theirs - start).max() > 0, row.original  # the step moved it
            assert np.abs(ours - theirs).max() <= 2 * np.spacing(np.abs(theirs).max()), row.original


@pytest.mark.slow
@pytest.mark.parametrize("case", ["prior_5b_level2"], indirect=True)  # one structure is enough
def test_dropout_draws_from_the_rng(case):
    """With dropout on (rates > 0), a key gives a different loss, the same key the same loss,
    and no key the deterministic loss."""
    t = dataclasses.replace(case.cfg.transformer, attn_dropout=0.2, resid_dropout=0.2, emb_dropout=0.2)
    cfg = dataclasses.replace(case.cfg, transformer=t)
    loss = jax.jit(lambda rng: prior_loss(cfg, case.params, *case.inputs, rng=rng)[0])
    a, b = float(loss(jax.random.key(1))), float(loss(jax.random.key(2)))
    assert a != b and float(loss(jax.random.key(1))) == a
    base = float(case.step[0][0])  # no dropout
    assert a != base and float(loss(None)) == pytest.approx(base, rel=1e-6)


@pytest.mark.parametrize("case", ["prior_5b_lyrics_level2"], indirect=True)  # the one with a lyric encoder
def test_every_dropout_of_a_prior_runs_at_its_configured_rate(case):
    """The six rates of the prior's stack and its lyric encoder (embedding, attention, residual),
    each drawn apart, each call dropping its rate's share (only "dropout changes the loss" was
    checked: halved rates passed)."""
    t = dataclasses.replace(case.cfg.transformer, attn_dropout=0.3, resid_dropout=0.2, emb_dropout=0.1)
    enc = dataclasses.replace(case.cfg.lyric_encoder, attn_dropout=0.25, resid_dropout=0.15, emb_dropout=0.05)
    cfg = dataclasses.replace(case.cfg, transformer=t, lyric_encoder=enc)
    tokens, labels, _ = case.inputs
    calls = dropout_calls(lambda: prior_loss(cfg, case.params, tokens, labels, rng=jax.random.key(3), execution=Execution.UNROLLED))
    assert {rate for rate, _, _ in calls} == {0.3, 0.2, 0.1, 0.25, 0.15, 0.05}
    for call in calls:
        assert_drops_at_its_rate(*call)


@pytest.mark.parametrize("case", ["prior_5b_lyrics_level2"], indirect=True)  # the one with a lyric encoder
def test_a_training_step_draws_the_lyric_encoders_dropout(case):
    """Dropout in the lyric encoder alone (the original's `prime_*_dropout`) is on in a training
    step: two seeds give two losses, neither the deterministic one."""
    enc = dataclasses.replace(case.cfg.lyric_encoder, attn_dropout=0.2, resid_dropout=0.2, emb_dropout=0.2)
    task = PriorTask(dataclasses.replace(case.cfg, lyric_encoder=enc), OptimConfig(lr=1e-4))
    tokens, labels, _ = case.inputs
    step = jax.jit(task.step)
    a, b = (float(step(task.init(case.params, seed), {"tokens": tokens, "labels": labels})[1]["loss"]) for seed in (1, 2))
    base = float(case.step[0][0])  # no dropout
    assert a != b and base not in (a, b)
    start = task.init(case.params, 1)
    after, first = step(start, {"tokens": tokens, "labels": labels})
    again = after.replace(params=start.params, opt_state=start.opt_state)  # the first step's weights, the next key
    assert float(step(again, {"tokens": tokens, "labels": labels})[1]["loss"]) != float(first["loss"])  # the key moves on


@pytest.mark.parametrize("case", ["prior_5b_level2"], indirect=True)  # a top prior
def test_a_top_priors_batch_may_hold_upper_none(case):
    """`"upper": None` (a batch made alike for every level) is no upper level, not a float array."""
    tokens, labels, _ = case.inputs
    task = PriorTask(case.cfg, OptimConfig())
    got = jax.jit(task.evaluate)(task.init(case.params, 0), {"tokens": tokens, "labels": labels, "upper": None})
    assert float(got["loss"]) == pytest.approx(float(case.step[0][0]), rel=1e-6)


@pytest.mark.parametrize("case", ["prior_5b_lyrics_level2"], indirect=True)  # a prior with lyrics
def test_a_short_window_mixes_the_losses_by_its_own_length(case):
    """Windows shorter than n_ctx (as the loss takes them): lyric and music losses weighted by
    n_tokens and the window's own length, as the original's `z_forward` (n_ctx gave both)."""
    tokens, labels, _ = case.inputs
    t = case.cfg.n_ctx // 2
    loss, m = jax.jit(lambda z: prior_loss(case.cfg, case.params, z, labels))(tokens[:, :t])
    n = case.cfg.n_tokens
    want = (case.cfg.prime_loss_fraction * m["prime_loss"] * n + m["gen_loss"] * t) / (n + t)
    assert float(loss) == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize("case", ["upsampler_level1"], indirect=True)  # one structure is enough
def test_an_ema_evaluation_reads_the_averaged_weights(case):
    """With `ema_mu`, held-out losses are those of the EMA, the weights the run writes."""
    task = PriorTask(case.cfg, OptimConfig(lr=1e-2, lr_warmup=0, ema_mu=0.5))
    batch = dict(zip(("tokens", "labels", "upper"), case.inputs, strict=True))
    state, _ = jax.jit(task.step)(task.init(case.params, 0), batch)
    loss = jax.jit(lambda p: prior_loss(task.model, p, *case.inputs)[0])
    ema, raw = float(loss(weights(state))), float(loss(state.params))
    assert abs(float(jax.jit(task.evaluate)(state, batch)["loss"]) - ema) <= 1e-6 * ema
    assert abs(raw - ema) > 1e-4 * ema


@pytest.mark.parametrize("case", ["upsampler_level1"], indirect=True)  # one structure is enough
def test_a_task_takes_names_and_checks_its_params_and_batches(case):
    """Names as the rest of the API takes them ('full' was an AttributeError inside the step);
    the params copied into the state (`fit` donated the caller's: "Array has been deleted");
    params of another structure named by `init` (a flax shape error in the first step); a batch
    lacking a key named by the step (a bare KeyError)."""
    task = PriorTask(case.cfg, OptimConfig(), remat="full", compute="bfloat16")
    assert (task.remat, task.compute) == (Remat.FULL, DType.BFLOAT16)
    # the step computes in bfloat16: its loss off float32's by bfloat16's rounding, not float32's
    batch = dict(zip(("tokens", "labels", "upper"), case.inputs, strict=True))
    loss = lambda t: float(jax.jit(t.step)(t.init(case.params, 0), batch)[1]["loss"])
    exact, mixed = loss(PriorTask(case.cfg, OptimConfig())), loss(task)
    assert 1e-5 < abs(mixed / exact - 1) < 2e-2, (mixed, exact)
    pointers = lambda tree: {leaf.unsafe_buffer_pointer() for leaf in jax.tree.leaves(tree)}
    assert not pointers(task.init(case.params, 0).params) & pointers(case.params)  # copies: `loop.fit` donates the state
    with pytest.raises(ParamsError):
        task.init({k: v for k, v in case.params.items() if k != "pos_emb"}, 0)
    tokens, labels, upper = case.inputs
    with pytest.raises(InputError, match=r"a batch is a dict holding \['tokens', 'labels'\] .*, got \['tokens', 'upper'\]"):
        task.step(task.init(case.params, 0), {"tokens": tokens, "upper": upper})
    with pytest.raises(InputError, match=r"the batch's 'tokens' is float32: give integer ids"):
        task.evaluate(task.init(case.params, 0), {"tokens": tokens.astype(np.float32), "labels": labels})


@pytest.mark.parametrize("case", ["upsampler_level1"], indirect=True)  # one structure is enough
def test_a_batch_outside_the_priors_tables_is_refused(case, tmp_path):
    """Inside the jitted step a negative id reads the table's last row (the loss of artist -1
    was artist 3's): a task's `check_batch` refuses it on the host, from `step` and `evaluate`
    called as they are and from `fit` before its first step. Songs of any length train (their
    timing saturates), as the data pipeline gives them."""
    task = PriorTask(case.cfg, OptimConfig())
    tokens, labels, upper = (np.asarray(x) for x in case.inputs)
    good = {"tokens": tokens, "labels": labels, "upper": upper}
    bad = {
        "tokens[0, 5] is -1": {**good, "tokens": np.where(np.arange(tokens.shape[1]) == 5, -1, tokens)},
        f"tokens[0, 0] is {case.cfg.l_bins}": {**good, "tokens": np.where(np.arange(tokens.shape[1]) == 0, case.cfg.l_bins, tokens)},
        "labels[:, 3] (artist ids)[0] is -1": {**good, "labels": np.where(np.arange(labels.shape[1]) == 3, -1, labels)},
        "upper_codes[0, 0] is -2": {**good, "upper": np.where(np.arange(upper.shape[1]) == 0, -2, upper)},
    }
    state = task.init(case.params, 0)
    for message, batch in bad.items():
        for call in (task.step, task.evaluate):
            with pytest.raises(InputError, match=re.escape(message)):
                call(state, batch)
    longer = labels.copy()
    longer[:, 0] = round(case.cfg.labels.max_duration * case.cfg.labels.sample_rate) * 2  # past the timing's range
    task.evaluate(state, {**good, "labels": longer})
    run = Run(tmp_path / "run", RunConfig(2))
    run.start({"task": "prior"}, False)
    with pytest.raises(InputError, match="artist ids"):
        fit(task.step, state, lambda i: bad["labels[:, 3] (artist ids)[0] is -1"], run)
    assert int(state.step) == 0 and not (tmp_path / "run" / "checkpoints").exists()  # refused before the step: not donated


@pytest.mark.parametrize("case", ["upsampler_level1"], indirect=True)  # one structure is enough
def test_arrays_a_training_step_was_donated_are_named(case):
    """A model built from a state's params, then the state donated to a step (`fit` donates
    the state it is given): the model, a step or an evaluation on the spent arrays raise an
    `InputError` saying so, not XLA's "Buffer has been deleted or donated"."""
    task = PriorTask(case.cfg, OptimConfig())
    tokens, labels, upper = case.inputs
    batch = {"tokens": tokens, "labels": labels, "upper": upper}
    state = task.init(case.params, 0)
    jb = Jukebox(JukeboxConfig(priors=(case.cfg,)), {f"prior_level_{case.cfg.level}": state.params})
    jb.prior_logits(case.cfg.level, tokens, labels, upper)
    jax.jit(task.step, donate_argnums=0)(state, batch)
    for spent in (
        lambda: jb.prior_logits(case.cfg.level, tokens, labels, upper),
        jb.fingerprint,
        lambda: task.step(state, batch),
        lambda: task.evaluate(state, batch),
    ):
        with pytest.raises(InputError, match=r"donated to a training step .*\(jax\.tree\.map\(jnp\.copy"):
            spent()


@pytest.mark.parametrize("case", ["prior_1b_lyrics_level2"], indirect=True)  # the joint lyric-music vocabulary
def test_narrow_token_dtypes_give_the_int32_loss(case):
    """Music ids are shifted past the lyric vocabulary (`tokens + n_vocab`): in int8 that
    wrapped, and the loss was another's."""
    tokens, labels, _ = case.inputs
    small = tokens % 100
    want = prior_loss(case.cfg, case.params, small, labels)[0]
    for dtype in (jnp.int8, jnp.uint8, jnp.int16):
        assert float(prior_loss(case.cfg, case.params, small.astype(dtype), labels)[0]) == pytest.approx(float(want), rel=1e-6), dtype
    jb = Jukebox(JukeboxConfig(priors=(case.cfg,)), {"prior_level_2": case.params})
    got = jb.prior_loss(2, np.asarray(small, np.int8), labels)["loss"]
    assert float(got) == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize("case", ["upsampler_level1"], indirect=True)
def test_int8_weights_are_not_trained(case):
    """No gradient flows through int8 kernels: refused at `init` (it was grad's TypeError at
    the first step), naming the fix."""
    cfg = dataclasses.replace(case.cfg, precision=dataclasses.replace(case.cfg.precision, weights=WeightFormat.INT8))
    with pytest.raises(InputError, match="int8 weights cannot be trained .* fine-tune the float model, then quantize it"):
        PriorTask(cfg, OptimConfig()).init(case.params, 0)
    # nor 16-bit master weights (they trained without a word): float32 weights, 16-bit compute
    jb = Jukebox(JukeboxConfig(priors=(case.cfg,)), {f"prior_level_{case.cfg.level}": case.params}).astype("bfloat16")
    half = jb.params[f"prior_level_{case.cfg.level}"]
    for cfg, params in ((jb.config.prior(case.cfg.level), half), (case.cfg, jax.tree.map(lambda x: x.astype(jnp.bfloat16), case.params))):
        with pytest.raises(InputError, match=r"the weights are trained in float32 .* compute='bfloat16' for mixed precision"):
            PriorTask(cfg, OptimConfig()).init(params, 0)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["prior_5b_level2"], indirect=True)  # one structure is enough
def test_remat_and_unrolled_give_the_same_gradients(case):
    """Recomputing the layers in the backward pass (the original's `checkpoint_res`) and the
    unrolled stack change nothing beyond float32 reassociation."""
    _, base = case.step
    for kw in ({"remat": Remat.FULL}, {"execution": Execution.UNROLLED}):
        _, grads = prior_value_and_grad(case.cfg, case.params, *case.inputs, **kw)
        errors = jax.tree.map(rel, grads, base)
        assert max(jax.tree.leaves(errors)) < 1e-5, (kw, errors)


@pytest.mark.parametrize("case", ["upsampler_level0"], indirect=True)  # one structure is enough
def test_bad_shapes_are_refused(case):
    tokens, labels, upper = case.inputs
    with pytest.raises(InputError, match="upper_codes must be"):
        prior_loss(case.cfg, case.params, tokens, labels, None)
    with pytest.raises(InputError, match="labels must be"):
        prior_loss(case.cfg, case.params, tokens, labels[:, :-1], upper)
    with pytest.raises(InputError, match="tokens must be"):
        prior_loss(case.cfg, case.params, jnp.zeros((2, case.cfg.n_ctx + 1), jnp.int32), labels, upper)


@pytest.mark.parametrize("case", ["prior_5b_level2"], indirect=True)  # one structure is enough
def test_grow_label_tables(case):
    """New artists and genres for fine-tuning: old ids give exactly the old logits, new rows
    are drawn as the original draws these tables (normal, std 0.01 * init_scale), and a new id
    changes the logits."""
    old = case.cfg.labels
    labels = dataclasses.replace(old, artist_bins=old.artist_bins + 3000, genre_bins=old.genre_bins + 5)
    cfg, params = grow_label_tables(case.cfg, case.params, labels, jax.random.key(0))
    assert cfg.labels == labels
    tables = params["labels"]
    for name, n_old in (("artist_emb", old.artist_bins), ("genre_emb", old.genre_bins)):
        np.testing.assert_array_equal(tables[name]["embedding"][:n_old], case.params["labels"][name]["embedding"])
    new_rows = np.asarray(tables["artist_emb"]["embedding"][old.artist_bins :])  # [3000, w]: 384k draws
    assert new_rows.shape == (3000, cfg.transformer.width)
    assert abs(new_rows.std() / (0.01 * cfg.transformer.init_scale) - 1) < 0.01 and abs(new_rows.mean()) < 1e-4
    tokens, y, upper = case.inputs
    old_ctx, new_ctx = condition(case.cfg, case.params, y), condition(cfg, params, y)
    np.testing.assert_array_equal(new_ctx.start, old_ctx.start)  # the artist and genre embeddings
    np.testing.assert_array_equal(new_ctx.x_cond, old_ctx.x_cond)  # timing
    logits = forward(cfg, params, tokens, y, upper).logits  # the rest of the prior is untouched
    assert np.abs(logits - case.npz["logits"]).max() < 1e-5 * np.abs(case.npz["logits"]).max()
    start = condition(cfg, params, y.at[:, 3].set(labels.artist_bins - 1)).start
    assert np.abs(start - old_ctx.start).max() > 0.1 * np.abs(old_ctx.start).max()
    with pytest.raises(ConfigError, match="can only grow"):
        grow_label_tables(cfg, params, old, jax.random.key(0))
    with pytest.raises(ConfigError, match=r"only the artist and genre tables may grow .*; these changed: t_bins$"):
        grow_label_tables(case.cfg, case.params, dataclasses.replace(labels, t_bins=64), jax.random.key(0))
    # what the other labels mean was let through: the timing's range, the label set, names dropped
    for change, named in (({"max_duration": 300.0}, "max_duration"), ({"v3": True}, "v3"), ({"sample_rate": 16000}, "sample_rate")):
        with pytest.raises(ConfigError, match=f"these changed: {named}$"):
            grow_label_tables(case.cfg, case.params, dataclasses.replace(labels, **change), jax.random.key(0))
    own = dataclasses.replace(old, artists=tuple(f"a{i}" for i in range(old.artist_bins)))
    cfg_own = dataclasses.replace(case.cfg, labels=own)
    for artists in (None, ("b0", *own.artists)):
        with pytest.raises(ConfigError, match="artists: the grown table must begin with the prior's own names"):
            grow_label_tables(cfg_own, case.params, dataclasses.replace(own, artists=artists, artist_bins=own.artist_bins + 1), jax.random.key(0))
    grown, _ = grow_label_tables(cfg_own, case.params, dataclasses.replace(own, artists=(*own.artists, "new"), artist_bins=own.artist_bins + 1), jax.random.key(0))
    assert grown.labels.artists[-1] == "new"
