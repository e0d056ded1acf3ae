"""KV-cached sampling against the original code's fixtures (greedy, so exact: the fixtures
record the margins), the per-step logits of its loops, and the sampling methods."""

from __future__ import annotations

import json
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from zero_models import zero_model

from convert import convert_checkpoint
from jukebox_jax import Jukebox
from jukebox_jax.config import JukeboxConfig, Lyrics, preset
from jukebox_jax.errors import InputError
from jukebox_jax.prior import condition, sequence
from jukebox_jax.sampling import Greedy, Temperature, TopK, TopP, decode, decode_chunks, prefill, sampling_method
from jukebox_jax.sampling.decode import _decode, broken_rows

KEY = jax.random.key(0)
FIXTURES = {"prior_5b_level2": 2, "prior_5b_lyrics_level2": 2, "prior_1b_lyrics_level2": 2, "upsampler_level1": 1, "upsampler_level0": 0}


def assert_close(a, b):
    np.testing.assert_allclose(np.asarray(a), b, rtol=0, atol=1e-5 * float(np.abs(b).max()))


@pytest.fixture(scope="module", params=list(FIXTURES))
def case(request, fixtures):
    stem = request.param
    jb = convert_checkpoint(fixtures / "vqvae.pth.tar", fixtures / f"{stem}.pth.tar")
    ref = dict(np.load(fixtures / f"{stem}.reference.npz"))
    return jb, FIXTURES[stem], ref


def test_greedy_samples_are_the_originals(case):
    jb, level, ref = case
    k = ref["sample_tokens"].shape[1]
    tokens = jb.sample(level, jax.random.key(0), ref["y"], k, ref.get("z_cond"), top_k=1)
    np.testing.assert_array_equal(np.asarray(tokens), ref["sample_tokens"])


def test_greedy_step_logits(case):
    """The logits of each decode step (and, for 1b_lyrics, of the lyric prefill) match the
    original loop's, and 1b's raw joint-vocabulary ids too."""
    jb, level, ref = case
    cfg = jb.config.prior(level)
    params = jb.params[f"prior_level_{level}"]
    y = jnp.asarray(ref["y"])
    upper = None if "z_cond" not in ref else jnp.asarray(ref["z_cond"])
    ctx = condition(cfg, params, y, upper)
    prompt = sequence(cfg, jnp.zeros((2, 0), jnp.int32), y)  # the lyric prefix for 1b, else empty
    state, prompt_logits = prefill(cfg, params, ctx, prompt, jax.random.key(0), return_logits=True)
    k = ref["sample_tokens"].shape[1]
    state, logits = decode(cfg, params, ctx, state, Greedy(), k, True)
    assert_close(logits, ref["sample_logits"])
    if cfg.lyrics is Lyrics.JOINT_SEQUENCE:
        assert_close(prompt_logits, ref["sample_prime_logits"])
        np.testing.assert_array_equal(np.asarray(state.tokens[:, : cfg.n_tokens + k]), ref["sample_tokens_raw"])


def test_primed_continuations_are_the_originals(case):
    """Continuing the first P tokens, the prompt read in chunks of C (not aligned to blocks)."""
    jb, level, ref = case
    if "primed_tokens" not in ref:
        pytest.skip("the 1b_lyrics fixture has no primed continuation")
    p, c, s = (int(x) for x in ref["primed_meta"])
    tokens = jb.sample(level, jax.random.key(0), ref["y"], s, ref.get("z_cond"), prompt=ref["z"][:, :p], top_k=1, chunk_size=c)
    np.testing.assert_array_equal(np.asarray(tokens), ref["primed_tokens"])
    cfg, params = jb.config.prior(level), jb.params[f"prior_level_{level}"]
    y, upper = jnp.asarray(ref["y"]), None if "z_cond" not in ref else jnp.asarray(ref["z_cond"])
    ctx = condition(cfg, params, y, upper)
    state, prompt_logits = prefill(cfg, params, ctx, jnp.asarray(ref["z"][:, :p], jnp.int32), jax.random.key(0), chunk_size=c, return_logits=True)
    _, logits = decode(cfg, params, ctx, state, Greedy(), s - p, True)
    assert_close(jnp.concatenate([prompt_logits, logits], axis=1), ref["primed_logits"])


def test_split_decoding_gives_the_same_samples(case):
    """Step keys depend on the position only: decoding in two calls equals one call. The three
    step counts share one compiled program (the count is traced)."""
    jb, level, ref = case
    cfg, params = jb.config.prior(level), jb.params[f"prior_level_{level}"]
    y, upper = jnp.asarray(ref["y"]), None if "z_cond" not in ref else jnp.asarray(ref["z_cond"])
    ctx = condition(cfg, params, y, upper)
    prompt = sequence(cfg, jnp.zeros((2, 0), jnp.int32), y)
    method = Temperature(1.5)
    compiled = _decode._cache_size()
    one, _ = decode(cfg, params, ctx, prefill(cfg, params, ctx, prompt, jax.random.key(7))[0], method, 9)
    two, _ = decode(cfg, params, ctx, prefill(cfg, params, ctx, prompt, jax.random.key(7))[0], method, 4)
    two, _ = decode(cfg, params, ctx, two, method, 5)
    np.testing.assert_array_equal(np.asarray(one.tokens), np.asarray(two.tokens))
    assert int(two.step) == prompt.shape[1] + 9
    assert _decode._cache_size() - compiled <= 1


@pytest.fixture(scope="module")
def tiny_top():
    """A random-weight tiny_5b top prior: `(cfg, params, ctx, labels)` for two samples; its
    output head scaled up, so that the logits have gaps of a trained prior's (at init ~1e-5)."""
    jb = Jukebox.init(JukeboxConfig(priors=(preset("tiny_5b"),)), jax.random.key(0))
    cfg, params = jb.config.prior(2), dict(jb.params["prior_level_2"])
    params["x_out_kernel"] = 1e4 * params["x_out_kernel"]
    y = jnp.asarray(jb.labels(2, total_seconds=10.0, n_samples=2))
    return cfg, params, condition(cfg, params, y, None), y


def test_one_program_for_every_temperature_and_p(tiny_top):
    """A method's temperature and p are traced (a co-composer changing them does not
    recompile); the class and k are not. The draws still follow the setting given."""
    cfg, params, ctx, y = tiny_top
    prompt = sequence(cfg, jnp.zeros((2, 0), jnp.int32), y)
    draw = lambda method: np.asarray(decode(cfg, params, ctx, prefill(cfg, params, ctx, prompt, jax.random.key(3))[0], method, 6)[0].tokens)
    greedy = draw(Greedy())
    draw(Temperature(1.0))
    compiled = _decode._cache_size()
    hot, cold = draw(Temperature(1e3)), draw(Temperature(1e-6))
    draw(Temperature(1))  # an int, as JSON gives it: a weak int32 leaf compiled again
    draw(TopP(0.9, 0.5))
    nucleus = _decode._cache_size()
    draw(TopP(1.1, 0.8))
    assert (compiled, nucleus) == (_decode._cache_size() - 1, _decode._cache_size())
    np.testing.assert_array_equal(cold, greedy)  # so the temperature reached the draw
    assert not np.array_equal(hot, greedy)


def test_methods_are_pytrees_jax_can_rebuild():
    """JAX rebuilds trees with leaves that are not settings (shapes, None, batched arrays):
    each was an InputError ("temperature must be a finite number, got ArgInfo(...)"), AOT
    lowering a decode included. Settings are checked where a method is made."""
    m = TopP(0.9, 0.95)
    nones = jax.tree.map(lambda x: None, m)  # rebuilt, not checked
    assert (type(nones), nones.temperature, nones.p) == (TopP, None, None)
    assert jax.tree.map(jnp.shape, m).temperature == () and jax.eval_shape(lambda: m).p.shape == ()
    assert float(jax.jit(lambda m: m.temperature / m.p).lower(m).compile()(m)) == pytest.approx(0.9 / 0.95)
    assert jax.vmap(lambda x: (x, TopK(0.5, 3)))(jnp.ones(3))[1].k == 3
    with pytest.raises(InputError, match="top_p must be a number in"):
        TopP(0.9, 1.5)


def test_requests_of_any_length_compile_nothing_new():
    """A co-composer's requests vary in length: after one ancestral and one primed request,
    others of new lengths (chunks of the same size) compile nothing. `sample` compiled three
    ops per new length on the way out (about 4 MB each, kept), `init_buffers` one per prompt
    length, and decode and prefill each twice (fresh buffers not placed on a device)."""
    jb = Jukebox.init(JukeboxConfig(priors=(preset("tiny_5b"),)), jax.random.key(0))
    y = jb.labels(2, total_seconds=10.0, n_samples=2)
    compiled = []
    handler = logging.Handler()
    handler.emit = lambda record: compiled.append(record.getMessage())
    logging.getLogger("jax").addHandler(handler)
    try:
        jb.sample(2, KEY, y, 10)
        jb.sample(2, KEY, y, 12, prompt=np.zeros((2, 4), np.int32), chunk_size=4)
        with jax.log_compiles(True):
            for n in (11, 13, 17):
                jb.sample(2, KEY, y, n)
            for p in (8, 12):
                jb.sample(2, KEY, y, 20, prompt=np.ones((2, p), np.int32), chunk_size=4)
            assert not [m for m in compiled if "compil" in m.lower()], compiled
            jb.sample(2, KEY, jb.labels(2, total_seconds=10.0, n_samples=3), 10)  # a new batch size does compile
            assert [m for m in compiled if "compil" in m.lower()]
    finally:
        logging.getLogger("jax").removeHandler(handler)


def test_prefill_logits_only_when_asked(tiny_top):
    """Without `return_logits` no prompt logits are made (sampling needs none), and the state is the same."""
    cfg, params, ctx, _ = tiny_top
    prompt = jax.random.randint(jax.random.key(1), (2, 5), 0, cfg.l_bins)
    plain, none = prefill(cfg, params, ctx, prompt, jax.random.key(0), chunk_size=3)
    with_logits, logits = prefill(cfg, params, ctx, prompt, jax.random.key(0), chunk_size=3, return_logits=True)
    assert none is None and logits.shape == (2, 5, cfg.bins)
    for a, b in zip(jax.tree.leaves(plain.cache), jax.tree.leaves(with_logits.cache), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert any(np.abs(np.asarray(a)).max() > 0 for a in jax.tree.leaves(plain.cache))


def test_token_progress_between_calls(case):
    """`steps_per_call` splits the window's decode into calls; `on_tokens` hears after each,
    and the tokens are the one-call ones."""
    jb, level, ref = case
    k = ref["sample_tokens"].shape[1]
    seen = []
    tokens = jb.sample(level, jax.random.key(0), ref["y"], k, ref.get("z_cond"), top_k=1, steps_per_call=3, on_tokens=lambda *a: seen.append(a))
    np.testing.assert_array_equal(np.asarray(tokens), ref["sample_tokens"])
    assert seen == [(min(done, k), k) for done in range(3, k + 3, 3)]


def test_sample_rejects_bad_requests(case):
    jb, level, ref = case
    cfg = jb.config.prior(level)
    with pytest.raises(ValueError, match="n_tokens"):
        jb.sample(level, jax.random.key(0), ref["y"], cfg.n_ctx + 1, ref.get("z_cond"))
    with pytest.raises(ValueError, match="shorter"):
        jb.sample(level, jax.random.key(0), ref["y"], 4, ref.get("z_cond"), prompt=ref["z"][:, :4])
    with pytest.raises(ValueError, match="labels"):
        jb.sample(level, jax.random.key(0), ref["y"][:, :-1], 4, ref.get("z_cond"))


LOGITS = jnp.log(jnp.array([[0.5, 0.25, 0.15, 0.07, 0.03]]))


@pytest.mark.parametrize(
    "method,support",
    [(Greedy(), {0}), (TopK(1.0, 2), {0, 1}), (TopP(1.0, 0.7), {0, 1}), (TopP(1.0, 0.8), {0, 1, 2}), (TopP(0.5, 0.7), {0})],
)  # the last: the nucleus of the tempered distribution (softmax(logits / 0.5)[0] = 0.73), as the original
def test_methods_draw_only_from_their_support(method, support):
    draws = jax.vmap(lambda k: method.next_token(LOGITS, k[None]))(jax.random.split(jax.random.key(0), 400))
    assert set(np.asarray(draws).ravel().tolist()) == support


@pytest.mark.parametrize("method", [TopK(0.5, 2), TopK(2.0, 3), TopP(1.0, 0.8), TopP(0.5, 0.9), TopP(2.0, 0.5)])
def test_filtered_methods_draw_the_tempered_distribution_over_their_support(method):
    """Top-k and top-p draw softmax(logits / temperature) renormalised over what they keep (the
    test above checked only which tokens they can draw)."""
    keys = jax.random.split(jax.random.key(2), 4000)
    freq = np.bincount(np.asarray(method.next_token(jnp.repeat(LOGITS, 4000, 0), keys)), minlength=5) / 4000
    tempered = np.asarray(jax.nn.softmax(LOGITS[0] / method.temperature))
    order = np.argsort(-tempered)
    if isinstance(method, TopK):
        kept = order[: method.k]
    else:  # the smallest set whose probability exceeds p, the token crossing p kept
        kept = order[: int(np.searchsorted(np.cumsum(tempered[order]), method.p, side="right")) + 1]
    want = np.zeros(5)
    want[kept] = tempered[kept] / tempered[kept].sum()
    np.testing.assert_allclose(freq, want, atol=0.03)


def test_temperature_sharpens_and_flattens():
    keys = jax.random.split(jax.random.key(1), 4000)
    freq = lambda t: np.bincount(np.asarray(Temperature(t).next_token(jnp.repeat(LOGITS, 4000, 0), keys)), minlength=5) / 4000
    for t in (1.0, 0.5, 2.0):  # softmax(logits / t): a temperature applied twice is off by 0.08 to 0.2
        np.testing.assert_allclose(freq(t), np.asarray(jax.nn.softmax(LOGITS[0] / t)), atol=0.03)


def test_each_step_draws_with_its_own_key():
    """Every logit 0 (all weights 0): each token uniform over the bins. One key for every
    step would draw one token over and over."""
    jb = zero_model("tiny_5b")
    tokens = np.asarray(jb.sample(2, jax.random.key(0), jb.labels(2, total_seconds=10.0, n_samples=2), 32, temperature=1.0))
    assert all(len(set(row.tolist())) > 8 for row in tokens), tokens


def test_decode_stays_inside_the_window_and_runs_under_a_callers_jit():
    """More steps than positions left is refused (they overwrote the window's last token and
    ran its step past the buffer); under a caller's jit, where the step is not known, decode
    runs as it does outside."""
    jb = zero_model("tiny_5b")
    cfg, params = jb.config.prior(2), jb.params["prior_level_2"]
    y = jnp.asarray(jb.labels(2, total_seconds=10.0))
    ctx = condition(cfg, params, y, None)
    fresh = lambda: prefill(cfg, params, ctx, sequence(cfg, jnp.zeros((1, 0), jnp.int32), y), jax.random.key(1))[0]
    n = cfg.n_positions
    with pytest.raises(InputError, match=rf"n_steps must be in 0..{n} \(the positions left in the window after step 0\), got {n + 1}"):
        decode(cfg, params, ctx, fresh(), Greedy(), n + 1)
    state = fresh()
    with pytest.raises(InputError, match=rf"n_steps must be in 0..{n} "):  # before the first call donates the state
        next(decode_chunks(cfg, params, ctx, state, Greedy(), n + 1, 4))
    assert int(state.step) == 0
    jitted = jax.jit(lambda state: decode(cfg, params, ctx, state, Temperature(1.0), 5)[0].tokens)
    np.testing.assert_array_equal(jitted(fresh()), decode(cfg, params, ctx, fresh(), Temperature(1.0), 5)[0].tokens)


def test_broken_rows_are_nan_or_plus_inf():
    """A row with a NaN or +inf logit is refused by `sample` (`BROKEN`); -inf rules a token out."""
    logits = jnp.array([[0.0, jnp.inf], [jnp.nan, 0.0], [-jnp.inf, 0.0], [1.0, 2.0]])
    assert np.asarray(broken_rows(logits)).tolist() == [True, True, False, False]


def test_sampling_method_arguments():
    assert sampling_method(top_k=1) == Greedy()
    assert sampling_method(0.9, top_k=5) == TopK(0.9, 5)
    assert sampling_method(top_p=0.8) == TopP(1.0, 0.8)
    assert sampling_method(1.2) == Temperature(1.2)
    # numpy scalars and 0-d arrays as their numbers (a jax scalar was "must be a finite number,
    # got Array(0.5)"), kept as Python's, which a job record writes as JSON
    got = sampling_method(jnp.float32(0.5), jnp.int32(5)), sampling_method(np.float64(0.5), top_p=np.array(0.25))
    assert got == (TopK(0.5, 5), TopP(0.5, 0.25)) and json.dumps([m.to_dict() for m in got])
    assert sampling_method(1.0, np.int64(1)) == Greedy()
    made = TopK(0.5, np.int64(5)), TopK(0.5, jnp.array(5))  # made directly too (a numpy k broke the JSON; a 0-d array was refused)
    assert made == (TopK(0.5, 5),) * 2 and type(made[0].k) is int and json.dumps([m.to_dict() for m in made])
    for bad in ({"temperature": 0.0}, {"top_k": -1}, {"top_p": 1.5}, {"top_k": 3, "top_p": 0.5}, {"temperature": jnp.array([0.5])}, {"top_k": np.True_}):
        with pytest.raises(ValueError):
            sampling_method(**bad)


def test_prefill_checks_a_concrete_prompt_and_decode_its_method():
    """`prefill` took any prompt: ids past the vocabulary gave NaN logits and BROKEN tokens,
    negative ones wrapped to other codes, floats were truncated; a batch or a length that did not
    fit failed deep in JAX or numpy. `decode(method="greedy")` failed inside jit."""
    jb = zero_model("tiny_5b")
    cfg, params = jb.config.prior(2), jb.params["prior_level_2"]
    ctx = condition(cfg, params, jnp.asarray(jb.labels(2, total_seconds=10.0, n_samples=2)), None)
    key = jax.random.key(0)
    bad = [
        (np.full((2, 3), cfg.bins), rf"prompt must lie in \[0, {cfg.bins}\): prompt\[0, 0\] is {cfg.bins}; the level-2 prior reads {cfg.bins} ids"),
        (np.full((2, 3), -7), r"prompt must lie in \[0, 64\): prompt\[0, 0\] is -7"),
        (np.full((2, 3), 5.7), r"prompt must hold integers \[2, p\] of transformer ids, got dtype float64"),
        (np.zeros((3, 3), np.int32), r"prompt must be \[2, p <= 48\] \(the batch of ctx; the window\), got shape \(3, 3\)"),
        (np.zeros((2, cfg.n_positions + 1), np.int32), r"prompt must be \[2, p <= 48\] .* got shape \(2, 49\)"),
        (np.zeros((2,), np.int32), r"prompt must be an array \[2, p\] of transformer ids"),
    ]
    for prompt, why in bad:
        with pytest.raises(InputError, match=why):
            prefill(cfg, params, ctx, prompt, key)
    state, _ = prefill(cfg, params, ctx, np.zeros((2, 3), np.int32), key)
    for use in (lambda: decode(cfg, params, ctx, state, "greedy", 2), lambda: next(decode_chunks(cfg, params, ctx, state, "greedy", 2, 1))):
        with pytest.raises(InputError, match=r"method must be a jukebox_jax.sampling method \(Greedy, Temperature, TopK, TopP\), got .greedy."):
            use()
    traced = jax.jit(lambda p: prefill(cfg, params, ctx, p, key)[0].tokens)(np.zeros((2, 3), np.int32))  # unchecked values, as ever
    assert traced.shape == (2, cfg.n_positions)


def test_a_consumed_state_and_raw_row_keys():
    """A state decoded once is refused by name (it was JAX's bare "Array has been deleted"),
    a copy made first decodes alike; `prefill` takes one raw key per sample, as `Jukebox.sample`
    does (it was a ValueError inside `fold_in`)."""
    jb = zero_model("tiny_5b")
    cfg, params = jb.config.prior(2), jb.params["prior_level_2"]
    y = jnp.asarray(jb.labels(2, total_seconds=10.0, n_samples=2))
    ctx = condition(cfg, params, y, None)
    prompt = sequence(cfg, jnp.zeros((2, 0), jnp.int32), y)
    raw = jax.random.split(jax.random.PRNGKey(4), 2)  # uint32 [2, 2]
    state, _ = prefill(cfg, params, ctx, prompt, raw)
    kept = jax.tree.map(jnp.copy, state)
    once, _ = decode(cfg, params, ctx, state, Temperature(1.0), 5)
    with pytest.raises(InputError, match=r"consumed by an earlier decode .* jax.tree.map\(jnp.copy, state\)"):
        decode(cfg, params, ctx, state, Temperature(1.0), 5)
    again, _ = decode(cfg, params, ctx, kept, Temperature(1.0), 5)
    np.testing.assert_array_equal(np.asarray(once.tokens), np.asarray(again.tokens))
    typed, _ = decode(cfg, params, ctx, prefill(cfg, params, ctx, prompt, jax.random.wrap_key_data(raw))[0], Temperature(1.0), 5)
    np.testing.assert_array_equal(np.asarray(once.tokens), np.asarray(typed.tokens))
    chunks = decode_chunks(cfg, params, ctx, prefill(cfg, params, ctx, prompt, raw)[0], Temperature(1.0), 4, 2)
    first = next(chunks)
    next(chunks)
    with pytest.raises(InputError, match="consumed"):
        decode(cfg, params, ctx, first, Greedy(), 1)
