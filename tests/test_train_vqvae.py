"""The VQ-VAE training step against the original's (`vqvae.training.{npz,json}`, README
"Training fixtures"): losses, metrics, every gradient, the codebook EMA state of the three
restart variants; the STFT against torch.stft in float64; restart candidates' properties."""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convert import convert_checkpoint
from convert.table import vqvae_rows
from jukebox_jax.config import preset
from jukebox_jax.errors import InputError, ParamsError
from jukebox_jax.train.codebook import CodebookState, ema_update, init_state, restart_candidates, restore_state
from jukebox_jax.train.optim import OptimConfig
from jukebox_jax.train.spectral import MultiResolution, Resolution, stft_magnitude
from jukebox_jax.train.steps import VQVAETask, weights
from jukebox_jax.train.vqvae import (
    Bandwidth,
    VQVAELoss,
    calculate_bandwidth,
    restore_states,
    trainable_params,
    vqvae_loss,
    vqvae_step,
    with_codebooks,
)

VARIANTS = ("restart", "mixed", "norestart")


def rel(ours, ref) -> float:
    """Max abs error over max abs reference (scalars: relative error)."""
    a, b = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def ref(fixtures):
    arrays = np.load(fixtures / "vqvae.training.npz")
    return {name: arrays[name] for name in arrays.files}, json.loads((fixtures / "vqvae.training.json").read_text())


@pytest.fixture(scope="module")
def model(fixtures):
    jb = convert_checkpoint(fixtures / "vqvae.pth.tar")
    return jb.config.vqvae, jb.params["vqvae"]


def level_inputs(arrays: dict, level: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's encoder output `[n, d]` (item-major rows) and codes `[n]` of a level."""
    x_enc = arrays[f"x_enc_{level}"].transpose(0, 2, 1)  # [b, s, d]
    return x_enc.reshape(-1, x_enc.shape[-1]), arrays[f"zs_{level}"].reshape(-1)


@pytest.fixture(scope="module")
def injected(ref, model):
    """Our step on the reference's codes and restart draws (the `restart` variant)."""
    arrays, meta = ref
    cfg, params = model
    states = restore_states(cfg, params, meta["hps"]["sample_length"])
    codes = [arrays[f"zs_{l}"] for l in range(cfg.levels)]
    k_rand = [arrays[f"restart_rand/k_rand_{l}"] for l in range(cfg.levels)]
    step = jax.jit(functools.partial(vqvae_step, cfg, VQVAELoss()))
    return step(params, states, arrays["x"], Bandwidth(**meta["hps"]["bandwidth"]), None, codes, k_rand)


def test_loss_hps_are_the_fixtures(ref, model):
    hps, loss, (cfg, _) = ref[1]["hps"], VQVAELoss(), model
    assert (loss.lmix_l2, loss.lmix_linf, loss.lmix_l1, loss.linf_k) == (
        hps["lmix_l2"],
        hps["lmix_linf"],
        hps["lmix_l1"],
        hps["linf_k"],
    )
    assert (loss.multispectral, loss.spectral, loss.revival_threshold) == (
        hps["multispectral"],
        hps["spectral"],
        hps["revival_threshold"],
    )
    assert (cfg.commit, cfg.mu) == (hps["commit"], hps["l_mu"])
    res = loss.resolutions.resolutions
    assert [r.n_fft for r in res] == hps["multispec_loss_n_fft"]
    assert [r.hop for r in res] == hps["multispec_loss_hop_length"]
    assert [r.window for r in res] == hps["multispec_loss_window_size"]


def test_losses_and_metrics(ref, injected):
    meta = ref[1]
    loss, _, _, _, metrics = injected
    assert rel(loss, meta["loss"]) < 1e-5
    assert set(metrics) == set(meta["metrics"]) | {"loss"}
    errors = {name: rel(metrics[name], value) for name, value in meta["metrics"].items()}
    assert max(errors.values()) < 1e-5, errors


def test_gradients(ref, model, injected):
    """All 522 gradients: the whole set within 1e-5 (relative L2), each tensor within 2e-3 of
    its norm; codebooks get none.

    Per tensor, 1e-4 is below float32's reach here: ReLU pre-activations within rounding of 0
    make some tensors' gradients jump. In float64, perturbing the weights by 6e-8 relative (float32
    rounding) moves one level-1 encoder tensor by 1.4e-3 of its norm, level-2 ones by 3.5e-4 and
    level-0 ones by 1.1e-4; the README measures 2e-3 between the original in float32 and float64.
    Here (this CPU) the worst tensor is at 1.06e-4 (a level-0 encoder bias), the median at 9e-7."""
    arrays, meta = ref
    cfg, params = model
    grads = injected[1]
    assert set(grads) == set(trainable_params(params)) and not any(k.startswith("codebook_") for k in grads)
    rows = [row for row in vqvae_rows(cfg) if not row.path[-1].startswith("codebook_")]
    assert {f"grad/{row.original}" for row in rows} == {k for k in arrays if k.startswith("grad/")}
    assert len(rows) == meta["grad_keys"] == 522
    errors, sq_diff, sq_ref = {}, 0.0, 0.0
    for row in rows:
        ours = np.asarray(functools.reduce(lambda tree, key: tree[key], row.path[1:], grads), np.float64)
        theirs = row.transform(arrays[f"grad/{row.original}"]).astype(np.float64)
        errors[row.original] = np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)
        sq_diff, sq_ref = sq_diff + np.sum((ours - theirs) ** 2), sq_ref + np.sum(theirs**2)
    assert np.sqrt(sq_diff / sq_ref) < 1e-5
    worst = max(errors, key=errors.get)
    assert errors[worst] < 2e-3, (worst, errors[worst])
    assert rel(np.sqrt(sq_ref), meta["grad_norm"]) < 1e-6  # the fixture's own float64 norm
    norm = np.sqrt(sum(np.sum(np.asarray(g, np.float64) ** 2) for g in jax.tree.leaves(grads)))
    assert rel(norm, meta["grad_norm"]) < 1e-5


def check_state(arrays: dict, prefix: str, level: int, codebook, state: CodebookState, threshold: float) -> None:
    assert rel(state.k_sum, arrays[f"{prefix}/k_sum_{level}"]) < 1e-5
    assert rel(state.k_elem, arrays[f"{prefix}/k_elem_{level}"]) < 1e-5
    assert rel(codebook, arrays[f"{prefix}/k_{level}"]) < 1e-5
    np.testing.assert_array_equal(
        np.asarray(state.k_elem) >= np.float32(threshold), arrays[f"{prefix}/usage_{level}"] == 1
    )


def test_restore_state(ref, model):
    arrays, meta = ref
    cfg, params = model
    states = restore_states(cfg, params, meta["hps"]["sample_length"])
    for l, state in enumerate(states):
        np.testing.assert_array_equal(np.asarray(params[f"codebook_{l}"]), arrays[f"ema_before/k_{l}"])
        assert rel(state.k_sum, arrays[f"ema_before/k_sum_{l}"]) < 1e-6
        np.testing.assert_array_equal(np.asarray(state.k_elem), arrays[f"ema_before/k_elem_{l}"])
        assert float(state.k_elem[0]) == meta["expected_usage_after_restore_k"][l]


def test_ema_restart_from_the_step(ref, model, injected):
    arrays, meta = ref
    cfg, params = model
    _, _, codebooks, states, _ = injected
    for l in range(cfg.levels):
        check_state(arrays, "ema_restart", l, codebooks[l], states[l], meta["hps"]["revival_threshold"])
    assert [int(sum(arrays[f"ema_restart/usage_{l}"] == 0)) for l in range(3)] == meta["restarted_codes_per_level"][
        "restart"
    ]
    new = with_codebooks(params, codebooks)
    assert set(new) == set(params) and new["encoders_0"] is params["encoders_0"]
    np.testing.assert_array_equal(np.asarray(new["codebook_2"]), np.asarray(codebooks[2]))


@pytest.mark.parametrize("variant", VARIANTS)
def test_ema_variants(ref, model, variant):
    """`ema_update` on the reference's encoder outputs, codes and draws, per threshold."""
    arrays, meta = ref
    cfg, params = model
    threshold = meta["variants"][variant]["revival_threshold"]
    update = jax.jit(ema_update, static_argnums=(4, 5))
    metrics = []
    for l, state in enumerate(restore_states(cfg, params, meta["hps"]["sample_length"])):
        x_flat, codes = level_inputs(arrays, l)
        k, new_state, m = update(
            params[f"codebook_{l}"], state, x_flat, codes, cfg.mu, threshold, arrays[f"restart_rand/k_rand_{l}"]
        )
        check_state(arrays, f"ema_{variant}", l, k, new_state, threshold)
        metrics.append(m)
    restarted = [int(sum(arrays[f"ema_{variant}/usage_{l}"] == 0)) for l in range(3)]
    assert restarted == meta["restarted_codes_per_level"][variant]
    for name in ("entropy", "used_curr", "usage", "dk", "fit", "pn"):
        ours = sum(float(m[name]) for m in metrics) / len(metrics)
        assert rel(ours, meta["variants"][variant]["metrics"][name]) < 1e-5, name


def test_bandwidth(ref):
    arrays, meta = ref
    ours = calculate_bandwidth(arrays["x"])
    for name, value in meta["hps"]["bandwidth"].items():
        assert rel(getattr(ours, name), value) < 1e-5, name
    offset = np.asarray(arrays["x"], np.float64) + 0.3  # l2 is the variance (the fixture's mean is 2e-4: either passed)
    ours = calculate_bandwidth(offset.astype(np.float32))
    assert rel(ours.l2, np.var(offset)) < 1e-5 and rel(ours.l1, np.mean(np.abs(offset))) < 1e-5


def test_a_code_counted_at_the_threshold_is_kept():
    """`usage = k_elem >= threshold`: after `init_state` (each count 1) a code drawn once a batch
    stays at 0.99 + 0.01 = 1.0 exactly, the default threshold; with `>` it restarted every step."""
    codebook = jnp.arange(8.0).reshape(4, 2)
    x = codebook[:1]  # one vector, nearest code 0
    new, state, metrics = ema_update(codebook, CodebookState(codebook, jnp.ones(4)), x, jnp.array([0]), 0.99, 1.0, -codebook)
    assert float(state.k_elem[0]) == 1.0 and float(metrics["usage"]) == 1.0
    np.testing.assert_array_equal(new[0], codebook[0])  # kept (k_sum / k_elem: itself)
    np.testing.assert_array_equal(new[1:], -codebook[1:])  # the unused, below it, restarted


def test_restart_noise_is_a_hundredth_over_root_width():
    """Candidates tiled from too few encoder outputs get N(0, (0.01 / sqrt(d))^2) noise (the original's `_tile`)."""
    d, n, k = 64, 4, 4096
    x = jnp.asarray(np.random.default_rng(0).normal(size=(n, d)), jnp.float32)
    out = np.asarray(restart_candidates(x, k, jax.random.key(1)), np.float64)  # [k, d], each row one of x's plus noise
    nearest = np.asarray(x, np.float64)[np.argmin(((out[:, None] - np.asarray(x)[None]) ** 2).sum(-1), axis=1)]
    assert abs((out - nearest).std() / (0.01 / np.sqrt(d)) - 1) < 0.05


@pytest.mark.parametrize("n_fft, hop, window", [(2048, 256, 1536), (512, 50, 240), (64, 7, 63), (32, 16, 32)])
def test_stft_magnitude_is_torch_stft(n_fft, hop, window):
    x = np.random.default_rng(n_fft + hop).normal(size=(2, 3001))
    theirs = (
        torch.stft(
            torch.from_numpy(x),
            n_fft,
            hop,
            win_length=window,
            window=torch.hann_window(window, dtype=torch.float64),
            return_complex=True,
        )
        .abs()
        .numpy()
        .transpose(0, 2, 1)
    )  # [b, frames, freq], float64
    ours = stft_magnitude(jnp.asarray(x, jnp.float32), n_fft, hop, window)
    assert ours.shape == theirs.shape
    assert rel(ours, theirs) < 1e-5


@pytest.mark.slow  # a second compile of the whole step
def test_untouched_codes_and_key_draws(ref, model):
    """Without injection: our argmin codes (the fixture's, up to ~1e-6 margins) give the
    fixture's loss, and every top-level code (all restart) moves to one of our encoder outputs."""
    arrays, meta = ref
    cfg, params = model
    states = restore_states(cfg, params, meta["hps"]["sample_length"])
    step = jax.jit(functools.partial(vqvae_step, cfg, VQVAELoss()))
    loss, _, codebooks, _, _ = step(
        params, states, arrays["x"], Bandwidth(**meta["hps"]["bandwidth"]), jax.random.key(0)
    )
    assert rel(loss, meta["loss"]) < 1e-5
    x_top = np.asarray(arrays["x_enc_2"]).transpose(0, 2, 1).reshape(-1, cfg.emb_width)  # [64, d]
    dist = np.abs(np.asarray(codebooks[2])[:, None] - x_top[None]).max(-1)  # [k, 64]
    assert dist.min(-1).max() < 1e-4 * np.abs(x_top).max()
    assert len(set(dist.argmin(-1))) == cfg.l_bins  # a permutation: no row twice


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 12), l_bins=st.integers(1, 20), seed=st.integers(0, 2**16))
def test_restart_candidates_are_rows_of_the_input(n, l_bins, seed):
    width = 3
    x = np.arange(n * width, dtype=np.float32).reshape(n, width)  # rows 3 apart: tiling noise cannot confuse them
    k = np.asarray(restart_candidates(jnp.asarray(x), l_bins, jax.random.key(seed)))
    assert k.shape == (l_bins, width)
    dist = np.abs(k[:, None] - x[None]).max(-1)  # [k, n]
    source = dist.argmin(-1)
    if n >= l_bins:  # distinct rows, exactly
        assert dist.min(-1).max() == 0 and len(set(source)) == l_bins
    else:  # tiled: noise of std 0.01 / sqrt(width); each row used at most ceil(l_bins / n) times
        assert 0 < dist.min(-1).max() < 0.1
        assert np.bincount(source, minlength=n).max() <= -(-l_bins // n)


def test_init_state():
    x = jax.random.normal(jax.random.key(1), (40, 4))
    codebook, state = init_state(x, jax.random.key(2), 16)
    assert np.abs(np.asarray(codebook)[:, None] - np.asarray(x)[None]).max(-1).min(-1).max() == 0
    np.testing.assert_array_equal(np.asarray(state.k_sum), np.asarray(codebook))
    np.testing.assert_array_equal(np.asarray(state.k_elem), np.ones(16))
    assert restore_state(codebook, 0.5).k_elem.shape == (16,)


def test_the_first_step_restarts_with_new_draws(ref, model):
    """A run's codebook init and its first step read the same batch; their random draws come
    from separate streams (`KeyUse`). With fewer top-level vectors than codes (one item: 32
    for 64 codes) the init tiles them with noise and half the codes go unused at step 0: they
    restart at new draws, not at their own initial vectors (as when both keys were
    `fold_in(key, 1)`)."""
    arrays, meta = ref
    cfg, params = model
    task = VQVAETask(cfg, OptimConfig(), Bandwidth(**meta["hps"]["bandwidth"]))
    x = jnp.asarray(arrays["x"][:1])  # [1, 4096, 1]
    state = task.init(params, x, seed=0, trained=False)
    after, _ = jax.jit(task.step)(state, {"audio": x})
    moved = []
    for level in range(cfg.levels):
        k_elem = np.asarray(after.aux[level].k_elem)
        restarted = k_elem < VQVAELoss().revival_threshold
        before, now = (np.asarray(s.params[f"codebook_{level}"]) for s in (state, after))
        moved.append(np.abs(now - before)[restarted].max(-1) > 1e-3 * np.abs(before).max())
    moved = np.concatenate(moved)
    assert len(moved) > 10 and moved.mean() > 0.9


def test_with_an_ema_evaluation_reads_the_averaged_weights(ref, model):
    """With `ema_mu`, `weights` puts the EMA in place of the trained encoders and decoders and
    keeps the current codebooks (the original swaps in the EMA of its parameters; the codebooks
    are buffers), and `evaluate` reads them: its losses are those of `weights`, not of the raw
    params the next step trains on."""
    arrays, meta = ref
    cfg, params = model
    task = VQVAETask(cfg, OptimConfig(lr=1e-3, ema_mu=0.5), Bandwidth(**meta["hps"]["bandwidth"]))
    x = jnp.asarray(arrays["x"][:1])  # [1, 4096, 1]
    state = task.init(params, x, seed=0, trained=True)
    pointers = lambda tree: {leaf.unsafe_buffer_pointer() for leaf in jax.tree.leaves(tree)}
    assert not pointers(state.params) & pointers(params)  # copies: `loop.fit` donates the state, not the caller's params
    step = jax.jit(task.step)
    for _ in range(2):
        key = np.asarray(state.key)
        state, _ = step(state, {"audio": x})
        assert not np.array_equal(state.key, key)  # each step's draws (codebook restarts) from a new key
    averaged = weights(state)
    for name, p in averaged.items():
        expected = state.params[name] if name.startswith("codebook_") else state.opt_state.ema[name]
        jax.tree.map(np.testing.assert_array_equal, p, expected)
    got = jax.jit(task.evaluate)(state, {"audio": x})["loss"]
    loss = jax.jit(lambda p: vqvae_loss(cfg, task.loss, p, x, task.bandwidth)[0])  # one compile, two weights
    ema_loss, raw_loss = loss(averaged), loss(state.params)
    assert abs(float(got) - float(ema_loss)) <= 1e-6 * abs(float(ema_loss))
    assert abs(float(raw_loss) - float(ema_loss)) > 1e-4 * abs(float(ema_loss))


def test_resolutions_given_as_a_list_make_a_task_like_a_tuple():
    """A list is kept as a tuple, so the task hashes and shares its compiled step (`loop.fit`)."""
    given = [Resolution(n_fft=512, hop=50, window=240)]
    tasks = [
        VQVAETask(preset("tiny_vqvae"), OptimConfig(), Bandwidth(1.0, 1.0, 1.0), VQVAELoss(resolutions=MultiResolution(r)))
        for r in (given, tuple(given))
    ]
    assert tasks[0] == tasks[1] and hash(tasks[0]) == hash(tasks[1])


def test_bad_inputs(model):
    cfg, params = model
    with pytest.raises(InputError, match="batch, samples"):
        stft_magnitude(jnp.zeros(4096), 512, 50, 240)
    with pytest.raises(InputError, match="too few"):
        stft_magnitude(jnp.zeros((1, 100)), 512, 50, 240)
    task = VQVAETask(cfg, OptimConfig(), Bandwidth(1.0, 1.0, 1.0))
    with pytest.raises(ParamsError):  # params of another structure: a flax shape error at the first step
        task.init({k: v for k, v in params.items() if not k.startswith("codebook_")}, jnp.zeros((1, 4096, 1)), 0, True)
    with pytest.raises(InputError, match=r"a batch is a dict holding \['audio'\]"):
        task.step(None, {"x": jnp.zeros((1, 4096, 1))})
    with pytest.raises(InputError, match=r"the batch's 'audio' is int16: give float audio in \[-1, 1\] \(integer PCM over"):
        task.step(None, {"audio": np.zeros((1, 4096, 1), np.int16)})
    pcm = np.full((1, 4096, 1), 12000.0, np.float32)  # integer PCM's values as floats: it trained on them (loss 2e10)
    with pytest.raises(InputError, match=r"its peak is 1\.2e\+04: scale it \(integer PCM: divide by its full scale"):
        task.step(None, {"audio": pcm})
    with pytest.raises(InputError, match=r"audio must be finite"):
        task.evaluate(None, {"audio": np.where(np.arange(4096)[:, None] == 7, np.nan, 0.1).astype(np.float32)[None]})
    with pytest.raises(InputError, match=r"calculate_bandwidth: Bandwidth\(l2=0\.0, l1=0\.0, spec=0\.0\) from silent"):
        calculate_bandwidth(jnp.zeros((2, 4096, 1)))  # normalisers of 0: NaN at step 1, reported as divergence
    bw = Bandwidth(1.0, 1.0, 1.0)
    with pytest.raises(InputError, match="multiple of 128"):
        vqvae_loss(cfg, VQVAELoss(), params, jnp.zeros((1, 4000, 1)), bw)
    with pytest.raises(InputError, match="linf_k"):
        vqvae_loss(cfg, VQVAELoss(), params, jnp.zeros((1, 1024, 1)), bw)
    with pytest.raises(InputError, match="codes of level 0"):
        vqvae_loss(cfg, VQVAELoss(linf_k=8), params, jnp.zeros((1, 1024, 1)), bw, codes=[jnp.zeros((1, 5), int)] * 3)
    codebook = jnp.zeros((8, 4))
    with pytest.raises(InputError, match="codes"):
        ema_update(codebook, restore_state(codebook, 1.0), jnp.zeros((10, 4)), jnp.zeros(9, int), 0.99, 1.0, codebook)
    with pytest.raises(InputError, match="k_rand"):
        ema_update(
            codebook, restore_state(codebook, 1.0), jnp.zeros((10, 4)), jnp.zeros(10, int), 0.99, 1.0, codebook[:2]
        )
    with pytest.raises(InputError, match="key"):
        vqvae_step(cfg, VQVAELoss(), params, [], jnp.zeros((1, 4096, 1)), bw, None)


def test_a_task_refuses_a_state_or_inputs_it_would_train_wrongly(ref, model):
    """What `VQVAETask` took unchecked: NaN audio (every codebook NaN, then a DivergedError
    blaming the learning rate), bfloat16 weights (trained in 16 bits, which `PriorTask`
    refuses), a state without the EMA its optimizer keeps (trained on without one, the raw
    weights written as the model) or with one it does not (a TypeError inside the optimizer),
    another model's state (a Flax ScopeParamShapeError), a short codebook-state list (an
    IndexError), hand-made loss normalisers <= 0 (a negated or infinite loss), and
    `weights` of a consumed state (a RuntimeError: "Array has been deleted")."""
    arrays, meta = ref
    cfg, params = model
    bandwidth = Bandwidth(**meta["hps"]["bandwidth"])
    task, with_ema = VQVAETask(cfg, OptimConfig(), bandwidth), VQVAETask(cfg, OptimConfig(ema_mu=0.5), bandwidth)
    x = np.asarray(arrays["x"][:1])  # [1, 4096, 1]
    nan = x.copy()
    nan[0, 7] = np.nan
    with pytest.raises(InputError, match=r"audio must be finite: audio\[0, 7, 0\] is nan"):
        task.init(params, nan, seed=0, trained=True)
    with pytest.raises(InputError, match=r"the weights are trained in float32"):
        task.init(jax.tree.map(lambda p: p.astype(jnp.bfloat16), params), x, seed=0, trained=True)
    for fields in ((-1.0, 1.0, 1.0), (1.0, 0.0, 1.0), (1.0, 1.0, float("nan"))):
        with pytest.raises(InputError, match=r"Bandwidth\.\w+=.*: must be finite and > 0 .* calculate_bandwidth\(audio\)"):
            Bandwidth(*fields)
    state, batch = task.init(params, x, seed=0, trained=True), {"audio": x}
    for other, has in ((with_ema, "no EMA"), (task, "an EMA")):
        given = state if other is with_ema else with_ema.init(params, x, seed=0, trained=True)
        for use in (other.step, other.evaluate):
            with pytest.raises(InputError, match=rf"the state holds {has} of the weights, and this task's OptimConfig.ema_mu is"):
                use(given, batch)
    with pytest.raises(InputError, match=r"not one per level \(3\)"):
        task.step(state.replace(aux=state.aux[:2]), batch)
    other = VQVAETask(preset("small_vqvae"), OptimConfig(), bandwidth)  # the default model's
    with pytest.raises(ParamsError, match=r"(?s)params do not fit the config; .* mis-shaped:\n  codebook_0: expected \(256, 32\)"):
        other.step(state, batch)
    spent = jax.tree.map(jnp.copy, state)
    jax.tree.map(lambda a: a.delete(), spent.params)
    with pytest.raises(InputError, match=r"donated to a training step"):
        weights(spent)
