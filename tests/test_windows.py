"""Windowed multi-level sampling: the original's windowing rules, the driver on a tiny model
(ancestral, upsample, primed), and resume after a kill giving the uninterrupted result."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jukebox_jax import Jukebox, JukeboxConfig
from jukebox_jax.errors import InputError, JobError
from jukebox_jax.generation.job import JobSource, Mode, Placement, SampleRequest, run_job
from jukebox_jax.generation.levels import LevelSettings, sample_levels, sample_window
from jukebox_jax.config import preset
from jukebox_jax.generation.windows import get_starts, level_windows, upper_codes_of_window
from jukebox_jax.io import write_npz
from jukebox_jax.labels import SongLabels, relevant_lyric_tokens, window_labels
from jukebox_jax.sampling import Greedy, Temperature, TopK, TopP


@pytest.mark.parametrize(
    "total,n_ctx,hop,want",
    [
        (100, 40, 20, [0, 20, 40, 60]),  # the last window already ends at the end
        (90, 40, 20, [0, 20, 40, 50]),  # the last window is moved back to end at 90
        (40, 40, 5, [0]),
        (41, 40, 40, [0, 1]),
    ],
)
def test_get_starts(total, n_ctx, hop, want):
    assert get_starts(total, n_ctx, hop) == want


@pytest.mark.parametrize("total,n_ctx,hop", [(1000, 96, 12), (777, 64, 32), (65, 64, 8)])
def test_windows_cover_the_level(total, n_ctx, hop):
    starts = get_starts(total, n_ctx, hop)
    assert starts[0] == 0 and starts[-1] + n_ctx == total
    assert all(0 < b - a <= hop for a, b in zip(starts, starts[1:]))


def test_windows_move_on_their_share_of_the_context():
    """`hop_fraction * n_ctx` apart (the original's `hop_length`), the last moved back to the end."""
    up = preset("tiny_upsampler_level_1")  # n_ctx 64
    assert level_windows(up, 224, 0.5) == [(s, 64) for s in (0, 32, 64, 96, 128, 160)]
    assert level_windows(up, 40, 0.5) == [(0, 40)]  # one partial window
    top = preset("5b")  # the released top prior at its hop_fraction 0.125: 8192 tokens, 1024 apart
    assert level_windows(top, 3 * 8192, 0.125) == [(s * 1024, 8192) for s in range(17)]


def test_relevant_lyric_tokens():
    assert relevant_lyric_tokens((5, 6), 4, 100, 0, 10) == ([0, 0, 5, 6], [-1, -1, 0, 1])
    full = tuple(range(100, 200))  # 100 tokens over a song of 1000 samples
    # window [500, 600): midpoint 550 -> token 55, 4 tokens around it
    assert relevant_lyric_tokens(full, 4, 1000, 500, 100) == ([153, 154, 155, 156], [53, 54, 55, 56])
    # windows at the ends are clamped inside the lyrics
    assert relevant_lyric_tokens(full, 4, 1000, 0, 10)[1] == [0, 1, 2, 3]
    assert relevant_lyric_tokens(full, 4, 1000, 990, 100)[1] == [96, 97, 98, 99]
    with pytest.raises(ValueError, match="outside the song"):
        relevant_lyric_tokens(full, 4, 1000, 1000, 10)


@pytest.fixture(scope="module")
def tiny() -> Jukebox:
    cfg = JukeboxConfig.from_preset("tiny_5b_lyrics")
    return Jukebox.init(cfg, jax.random.key(3))


def _songs(jb, n=3):
    out = {}
    for p in jb.config.priors:
        out[p.level] = tuple(SongLabels(total_length=8 * 6144, artist=i + 1, genres=(i, 2), lyrics=tuple(range(1, 40 + i)), offset=0) for i in range(n))
    return out


def test_window_labels_and_upper_codes(tiny):
    cfg = tiny.config.prior(2)
    song = _songs(tiny)[2][0]
    row = window_labels(cfg, song, start=12)
    assert row.shape == (cfg.n_labels,)
    assert list(row[:4]) == [song.total_length, 12 * cfg.raw_to_tokens, cfg.n_ctx * cfg.raw_to_tokens, song.artist]
    assert list(row[4 : 4 + 5]) == [0, 2, -1, -1, -1]
    lyrics = relevant_lyric_tokens(song.lyrics, cfg.n_tokens, song.total_length, 12 * cfg.raw_to_tokens, cfg.n_ctx * cfg.raw_to_tokens)[0]
    assert list(row[9:]) == lyrics
    up = tiny.config.prior(1)
    upper = np.arange(2 * 40).reshape(2, 40)
    np.testing.assert_array_equal(upper_codes_of_window(up, upper, 8), upper[:, 2:18])
    with pytest.raises(InputError, match=r"the window at 100 needs 41 \(a window reads .* sample the level above further"):
        upper_codes_of_window(up, upper, 100)  # needs codes up to 41


SETTINGS = {
    2: LevelSettings(Temperature(1.0), hop_fraction=0.25, max_batch_size=2, chunk_size=7),
    1: LevelSettings(TopK(1.0, 8), max_batch_size=2),
    0: LevelSettings(Temperature(1.0), hop_fraction=1.0),
}


@pytest.mark.slow  # ~50 s: three levels, 14 upsampling windows
def test_ancestral_then_upsample(tiny):
    """Three levels from nothing; every level has its requested length, and the top level's
    first window is what a single-window sample of it gives."""
    songs = _songs(tiny)
    length = 56 * 128  # 56 top tokens: two windows of 48 at the top
    empty = [np.zeros((3, 0), np.int64)] * 3
    zs = sample_levels(tiny, empty, songs, (2, 1, 0), length, jax.random.key(0), SETTINGS)
    assert [z.shape for z in zs] == [(3, length // 8), (3, length // 32), (3, length // 128)]
    top = tiny.config.prior(2)
    labels = np.stack([window_labels(top, s, 0) for s in songs[2]])
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(0), 2), 0)  # level 2, window start 0
    first = tiny.sample(2, key, labels[:2], 48, temperature=1.0, chunk_size=7)
    np.testing.assert_array_equal(zs[2][:2, :48], np.asarray(first))
    # the last window (start 8) continues the first's tokens with its own key: a key reused
    # across windows (one per level) gave other tokens here and nowhere else
    labels = np.stack([window_labels(top, s, 8) for s in songs[2]])
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(0), 2), 8)
    last = tiny.sample(2, key, labels[:2], 48, prompt=zs[2][:2, 8:48], temperature=1.0, chunk_size=7)
    np.testing.assert_array_equal(zs[2][:2, 8:], np.asarray(last))
    again = sample_levels(tiny, [np.zeros((3, 0), np.int64)] * 2 + [zs[2]], songs, (1,), length, jax.random.key(0), SETTINGS)
    np.testing.assert_array_equal(again[2], zs[2])  # upsampling keeps the top codes
    np.testing.assert_array_equal(again[1], zs[1])  # and is deterministic per window
    # level 1's last window (start 160 of 224) reads the top codes under it, 40..56 (conditioned on
    # the first window's, every window passed this test but this one)
    up = tiny.config.prior(1)
    labels = np.stack([window_labels(up, s, 160) for s in songs[1]])
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(0), 1), 160)
    last = tiny.sample(1, key, labels[:2], 64, upper_codes=zs[2][:2, 40:56], prompt=zs[1][:2, 160:192], top_k=8)
    np.testing.assert_array_equal(zs[1][:2, 160:], np.asarray(last))


def test_a_sample_does_not_depend_on_its_batch(tiny):
    """`max_batch_size` (`--max-batch-size`) only bounds memory: each sample draws with its own
    key, so the batch split in ones gives the same tokens here; three samples of one song
    differ. (The logits change by float rounding with the batch's shape, so on long samples
    a near-tie draw may flip: README, "sample_levels".)"""
    songs = (_songs(tiny, n=1)[2][0],) * 3
    empty = [np.zeros((3, 0), np.int64)] * 3

    def draw(size: int) -> np.ndarray:
        settings = LevelSettings(Temperature(1.0), max_batch_size=size, chunk_size=None)
        return sample_window(tiny, empty, 2, songs, 0, 12, jax.random.key(4), settings)[2]

    whole = draw(3)
    np.testing.assert_array_equal(draw(1), whole)
    assert len({tuple(row) for row in whole.tolist()}) == 3
    tokens = jnp.asarray(whole)
    labels = tiny.labels(2, total_seconds=10.0, n_samples=3)
    together = np.asarray(tiny.prior_logits(2, tokens, labels))
    alone = np.concatenate([np.asarray(tiny.prior_logits(2, tokens[i : i + 1], labels[i : i + 1])) for i in range(3)])
    np.testing.assert_allclose(alone, together, rtol=0, atol=1e-5 * np.abs(together).max())  # float rounding only


def test_the_level_method_reaches_the_sampler(tiny):
    """A window sampled with `LevelSettings(Greedy())` is the greedy sample (`top_k=1`, which
    ignores the key); `Jukebox.sample` takes a method object or the loose floats, not both."""
    songs = _songs(tiny, n=2)[2]
    empty = [np.zeros((2, 0), np.int64)] * 3
    zs = sample_window(tiny, empty, 2, songs, 0, 12, jax.random.key(4), LevelSettings(Greedy(), chunk_size=None))
    labels = np.stack([window_labels(tiny.config.prior(2), s, 0) for s in songs])
    np.testing.assert_array_equal(zs[2], np.asarray(tiny.sample(2, jax.random.key(9), labels, 12, top_k=1)))
    with pytest.raises(ValueError, match="not both"):
        tiny.sample(2, jax.random.key(0), labels, 12, temperature=0.5, method=Greedy())


def test_job_json_names_the_method():
    """The request's JSON (compared on resume) tells every method apart and is deterministic."""
    songs = {2: (SongLabels(1000, 1, (2,), (5, 6)),)}
    methods = [Greedy(), Temperature(0.7), TopK(0.7, 8), TopP(0.7, 0.9), TopP(0.7, 0.8)]
    texts = [SampleRequest((2,), 128, 0, songs, {2: LevelSettings(m)}).to_json() for m in methods]
    assert len(set(texts)) == len(methods)
    assert SampleRequest((2,), 128, 0, songs, {2: LevelSettings(TopK(0.7, 8))}).to_json() == texts[2]
    settings = json.loads(texts[2])["settings"]["2"]
    assert settings == {"method": {"method": "top_k", "temperature": 0.7, "k": 8}, "hop_fraction": 0.5, "max_batch_size": 16, "chunk_size": 32}
    assert json.loads(texts[0])["settings"]["2"]["method"] == {"method": "greedy"}
    assert json.loads(texts[0])["songs"]["2"] == [{"total_length": 1000, "artist": 1, "genres": [2], "lyrics": [5, 6], "offset": 0}]
    with pytest.raises(InputError, match=r"seed must be in 0..4294967295 \(jax.random.key keeps a seed's low 32 bits\)"):
        SampleRequest((2,), 128, 2**32, songs, {2: LevelSettings(Greedy())})  # drew as seed 0
    # numpy numbers (a seed from np.random, labels from an array) give the same JSON as Python's
    np_songs = {2: (SongLabels(np.int64(1000), np.int32(1), (np.int64(2),), tuple(np.array([5, 6]))),)}
    np_settings = {2: LevelSettings(TopK(np.float64(0.7), np.int64(8)), np.float32(0.5), np.int64(16), np.int32(32))}
    for request in (
        SampleRequest((np.int64(2),), np.int64(128), np.uint32(0), np_songs, np_settings),
        SampleRequest(tuple(np.arange(2, 3)), 128, 0, {np.int64(2): np_songs[2]}, {np.int64(2): np_settings[2]}),  # keys too
    ):
        assert json.loads(request.to_json()) == json.loads(texts[2])


def test_a_request_reads_back_from_its_json():
    """`from_json` inverts `to_json` (a job's state kept between a web app's requests), every
    part checked as when made; what is not a request's JSON is named."""
    songs = {2: (SongLabels(1000, 1, (2,), (5, 6), offset=128),) * 2, 1: (SongLabels(1000, 3),) * 2}
    methods = {2: TopP(0.7, 0.9), 1: Greedy()}
    requests = [
        SampleRequest((2, 1), 256, 7, songs, {level: LevelSettings(m, 0.25, 4, None) for level, m in methods.items()}),
        SampleRequest(
            (2,), 128, 0, {2: songs[2]}, {2: LevelSettings(TopK(0.5, 3))}, JobSource(Mode.PRIMED, "ab" * 32, 1.5),
            Placement("bfloat16", "int8", {"data": 2, "model": 1}),
        ),
    ]
    for request in requests:
        assert SampleRequest.from_json(request.to_json()) == request
    assert LevelSettings.from_dict({"hop_fraction": 0.25}) == LevelSettings(hop_fraction=0.25)
    bare = json.loads(requests[0].to_json())  # fields with defaults may be left out, as when made
    bare["songs"] = {level: [{"total_length": 1000, "artist": 3}] * 2 for level in ("2", "1")}
    assert SampleRequest.from_json(json.dumps(bare)).songs[2] == (SongLabels(1000, 3),) * 2
    text = json.loads(requests[0].to_json())
    for bad, why in [
        ("[]", r"not a SampleRequest's JSON .*: TypeError: not an object: \[\]"),
        (json.dumps({**text, "format": 2, "extra": 1}), r"not a SampleRequest's fields: \['extra', 'format'\]"),
        (json.dumps({**text, "settings": {"2": {"method": {"method": []}}, "1": {}}}), r"not a sampling method's dict"),
        (json.dumps({**text, "seed": -1}), r"seed must be in 0\.\.4294967295"),
        (json.dumps({**text, "settings": {"2": {"method": {"method": "beam"}}, "1": {}}}), r"not a sampling method's dict: .*'beam'"),
        (json.dumps({**text, "settings": {"2": {"method": {"method": "greedy", "k": 3}}, "1": {}}}), r"not a sampling method's dict"),
        (json.dumps({**text, "settings": {"2": {"hop": 1}, "1": {}}}), r"not a LevelSettings dict: .*'hop'"),
        (json.dumps({**text, "source": {"mode": "sideways"}}), r"ValueError: 'sideways' is not a valid Mode"),
        (json.dumps({k: v for k, v in text.items() if k != "songs"}), r"KeyError: 'songs'"),
    ]:
        with pytest.raises(InputError, match=why):
            SampleRequest.from_json(bad)


_SONG = SongLabels(8 * 6144, 1, (2,), (5, 6))
_BAD_SETTINGS = [
    (lambda: LevelSettings(Greedy(), max_batch_size=0), r"max_batch_size must be >= 1, got 0"),  # range() step 0
    (lambda: LevelSettings(Greedy(), hop_fraction=0.0), r"hop_fraction must be in \(0, 1\]"),  # no window moves on
    (lambda: LevelSettings(Greedy(), hop_fraction=1.5), r"hop_fraction must be in \(0, 1\].*got 1.5"),  # gaps between windows
    (lambda: LevelSettings(Greedy(), chunk_size=0), r"chunk_size must be >= 1"),
    (lambda: LevelSettings("greedy"), r"method must be a jukebox_jax.sampling method \(Greedy, Temperature, TopK, TopP\), got 'greedy'"),
    (lambda: SampleRequest((2,), 128, 0, {2: (_SONG,)}, {}), r"settings has no entry for level 2"),  # a KeyError mid-job
    (lambda: SampleRequest((2, 1), 128, 0, {2: (_SONG,)}, dict.fromkeys((1, 2), LevelSettings())), r"songs has no entry for level 1"),
    (lambda: SampleRequest((2, 1), 128, 0, {2: (_SONG,), 1: (_SONG,) * 2}, dict.fromkeys((1, 2), LevelSettings())), r"the same number .* got \{2: 1, 1: 2\}"),
    (lambda: SampleRequest((2,), 0, 0, {2: (_SONG,)}, {2: LevelSettings()}), r"sample_length must be >= 1 \(audio samples\), got 0"),
    (lambda: SampleRequest([2], 128, 0, {2: (_SONG,)}, {2: LevelSettings()}), r"levels must be a non-empty tuple of distinct levels, got \[2\]"),
    (lambda: SampleRequest((2, 2), 128, 0, {2: (_SONG,)}, {2: LevelSettings()}), r"levels must be a non-empty tuple of distinct"),
    (lambda: SampleRequest((2.0,), 128, 0, {2.0: (_SONG,)}, {2.0: LevelSettings()}), r"each of levels must be an int, got 2.0"),
]


def test_a_short_job_needs_no_hop_and_takes_empty_start_codes_of_any_dtype(tiny, tmp_path):
    """One partial window never moves on, so its hop is not checked; empty start codes hold no
    values whose dtype could be wrong (`[[]]` is float64)."""
    request = SampleRequest((2,), 4 * 128, 0, {2: (_SONG,)}, {2: LevelSettings(Greedy(), hop_fraction=0.01)})
    zs = run_job(tiny, tmp_path / "job", request, [[[]]] * 3)
    assert [z.shape for z in zs] == [(1, 0), (1, 0), (1, 4)]


@pytest.mark.parametrize(("make", "why"), _BAD_SETTINGS)
def test_a_bad_request_is_refused_when_made(make, why):
    """A job's settings and request are checked when built, naming the field (they were
    tracebacks from inside the job, after job.json was written)."""
    with pytest.raises(InputError, match=why):
        make()


@pytest.mark.parametrize(
    ("levels", "length", "start", "why"),
    [  # start: (levels, samples) of empty start codes
        ((5,), 128, (3, 1), r"levels: no prior for level 5; this model has levels \[0, 1, 2\]"),
        ((2,), 100, (3, 1), r"sample_length 100 is not a multiple of level 2's hop of 128 samples"),
        ((1,), 128, (1, 1), r"start_codes holds 1 levels; the levels sampled need 3"),
        ((2,), 128, (3, 2), r"start_codes\[0\] is int64 of shape \(2, 0\), not integer codes \[1, tokens\]; give \[1, tokens\] codes per level"),
    ],
)
def test_a_request_that_does_not_fit_the_model_writes_nothing(tiny, tmp_path, levels, length, start, why):
    """Checked against the model before job.json is written: a refused job leaves nothing that
    would block the corrected one ("already holds a sampling job")."""
    songs = {level: (_SONG,) for level in levels}
    request = SampleRequest(levels, length, 0, songs, dict.fromkeys(levels, LevelSettings(Greedy())))
    with pytest.raises(InputError, match=why):
        run_job(tiny, tmp_path / "job", request, [np.zeros((start[1], 0), np.int64)] * start[0])
    assert not (tmp_path / "job" / "job.json").exists()


@pytest.mark.parametrize(
    ("level", "given", "why"),
    [  # what is wrong at a level: refused before any level is sampled
        (0, {"songs": (SongLabels(8 * 6144, 30, (2,)),)}, r"songs\[0\], the window at token 0: .*\(artist ids\)\[0\] is 30"),
        (2, {"songs": (SongLabels(6144, 1, (2,)),)}, r"songs\[2\], the window at token 96: labels\[:, 1\] \(offset"),  # its last
        (0, {"settings": LevelSettings(TopK(1.0, 65))}, r"top_k must be at most 64 \(the level-0 prior's vocabulary\), got 65"),
        (0, {"songs": (_SONG, _SONG)}, r"songs\[0\] holds 2 samples' labels, zs 1 rows"),
        # a lyric id only a middle window reads (each window takes its slice of the song's lyrics)
        (2, {"songs": (SongLabels(8 * 6144, 1, (2,), tuple(10**6 if i == 60 else 5 for i in range(300))),)}, r"songs\[2\]\[0\]\.lyrics\[60\] is 1000000"),
    ],
)
def test_every_levels_input_is_checked_before_any_is_sampled(tiny, tmp_path, level, given, why):
    """Labels and methods were checked as each level, and each window, came (hours of sampling
    on a released model, then a later window's or level's labels refused): `run_job` and
    `sample_levels` check every level's, in its first and last windows, first."""
    length = 3 * 6144  # five top-level windows of 48 tokens
    songs = {k: given.get("songs", (_SONG,)) if k == level else (_SONG,) for k in (2, 1, 0)}
    settings = {k: given.get("settings", LevelSettings(Greedy())) if k == level else LevelSettings(Greedy()) for k in (2, 1, 0)}
    start = [np.zeros((1, 0), np.int64)] * 3
    if len(songs[level]) == 1:  # a request holds as many samples at every level: checked when made
        with pytest.raises(InputError, match=why):
            run_job(tiny, tmp_path / "job", SampleRequest((2, 1, 0), length, 0, songs, settings), start)
        assert not (tmp_path / "job").exists()
    sampled = []
    tiny_sample = tiny.sample
    object.__setattr__(tiny, "sample", lambda *a, **k: sampled.append(a) or tiny_sample(*a, **k))
    try:
        with pytest.raises(InputError, match=why):
            sample_levels(tiny, start, songs, (2, 1, 0), length, jax.random.key(0), settings)
    finally:
        object.__delattr__(tiny, "sample")
    assert not sampled


@pytest.mark.parametrize(
    "change, why",
    [
        ({"sample_length": -6144}, r"sample_length must be"),  # returned empty codes
        ({"sample_length": 6144.0}, r"sample_length must be"),  # named n_tokens, an argument not given
        ({"zs": [np.zeros((1, 0), np.int64)] * 2}, r"zs must be a list of codes \[samples, tokens\], one per level \(3;"),  # IndexError
        ({"zs": [np.zeros((1, 0), np.float32)] * 3}, r"zs\[0\] is float32 of shape \(1, 0\), not integer codes"),  # float64 codes
        ({"zs": [np.zeros((1, 0), np.int64)] * 2 + [np.zeros((2, 0), np.int64)]}, r"zs\[2\] is int64 of shape \(2, 0\), not integer codes \[1, tokens\]"),
        ({"zs": [np.zeros((1, 0), np.int64)] * 2 + [np.full((1, 3), 64)]}, r"zs\[2\] holds codes in \[64, 64\], not in \[0, 64\)"),
        ({"zs": [np.zeros((1, 0), np.int64)] * 2 + [np.zeros((1, 0, 1), np.int64)]}, r"zs\[2\] must be an array \[samples, tokens\]"),
        ({"levels": 2}, r"levels must be a sequence of levels to sample, e.g. \[2, 1, 0\], got 2"),  # 'int' is not iterable
        ({"levels": (3,)}, r"levels must be in 0..2 \(the hierarchy's levels\), got 3"),
        ({"on_window": 5}, r"on_window must be a function, got 5"),  # called after the first window
        ({"key": 7}, r"key must be one PRNG key"),
    ],
)
def test_sample_levels_checks_its_codes_length_and_levels_first(tiny, change, why):
    """What `sample_levels` took unchecked: a negative length returned empty codes, float codes
    came back float64, two rows at one level failed after sampling, too few levels in an
    IndexError."""
    args = {"zs": [np.zeros((1, 0), np.int64)] * 3, "sample_length": 6144, "levels": (2, 1, 0), "key": jax.random.key(0), "on_window": None}
    args |= change
    songs = {k: (_SONG,) for k in (2, 1, 0)}
    settings = {k: LevelSettings(Greedy()) for k in (2, 1, 0)}
    object.__setattr__(tiny, "sample", lambda *a, **k: pytest.fail("sampled before the inputs were refused"))
    try:
        with pytest.raises(InputError, match=why):
            sample_levels(tiny, args["zs"], songs, args["levels"], args["sample_length"], args["key"], settings, args["on_window"])
    finally:
        object.__delattr__(tiny, "sample")


def test_start_codes_past_the_request_are_refused(tiny, tmp_path):
    """They were kept whole: nothing sampled, and the job's audio was the start codes' (the CLI
    refused them; the API did not)."""
    request = SampleRequest((2,), 128, 0, {2: (_SONG,)}, {2: LevelSettings(Greedy())})
    start = [np.zeros((1, 0), np.int64)] * 2 + [np.zeros((1, 3), np.int64)]
    for tokens in (3, 1):  # as long as the request: nothing to sample either
        start[2] = np.zeros((1, tokens), np.int64)
        with pytest.raises(InputError, match=rf"start_codes\[2\] holds {tokens} tokens, the 1 of sample_length 128 or more"):
            run_job(tiny, tmp_path / "job", request, start)
    assert not (tmp_path / "job").exists()


def test_a_placement_other_than_the_models_is_refused(tiny, tmp_path):
    """`SampleRequest.placement` left out is the model's; one given must be (a job.json saying
    bfloat16 of a float32 run would refuse the resume that matches it)."""
    request = SampleRequest((2,), 128, 0, {2: (_SONG,)}, {2: LevelSettings(Greedy())}, placement=Placement("bfloat16"))
    with pytest.raises(InputError, match=r"request.placement .*'bfloat16'.* is not the model's: Placement\(dtype='float32'"):
        run_job(tiny, tmp_path / "job", request, [np.zeros((1, 0), np.int64)] * 3)
    assert not (tmp_path / "job").exists()


def test_a_resume_refuses_saved_codes_that_do_not_begin_with_its_start_codes(tiny, tmp_path):
    """An upsampling job killed after a window, its saved top level then changed (in range, the
    same shape): not the job's codes any more, so not resumed."""

    class Killed(Exception):
        pass

    def kill(level, start, zs):
        raise Killed

    request = SampleRequest((1,), 56 * 128, 5, _songs(tiny, n=2), SETTINGS)
    start = [np.zeros((2, 0), np.int64)] * 2 + [np.random.default_rng(0).integers(0, 64, (2, 56))]
    with pytest.raises(Killed):
        run_job(tiny, tmp_path / "job", request, start, on_window=kill)
    saved = dict(np.load(tmp_path / "job" / "codes.npz"))
    write_npz(tmp_path / "job" / "codes.npz", {**saved, "level_2": (saved["level_2"] + 1) % 64})
    with pytest.raises(JobError, match="cannot be resumed"):
        run_job(tiny, tmp_path / "job", request, start, resume=True)


def test_primed_keeps_the_prompt(tiny):
    songs = _songs(tiny, n=2)
    prompt = [np.random.default_rng(0).integers(0, 64, (2, n)) for n in (80, 20, 5)]
    zs = sample_levels(tiny, prompt, songs, (2, 1, 0), 48 * 128, jax.random.key(1), SETTINGS)
    for z, p in zip(zs, prompt):
        np.testing.assert_array_equal(z[:, : p.shape[1]], p)
    assert [z.shape[1] for z in zs] == [768, 192, 48]


class Killed(Exception):
    pass


def test_resume_after_kill_is_identical(tiny, tmp_path):
    songs = _songs(tiny, n=2)
    request = SampleRequest(levels=(2, 1), sample_length=56 * 128, seed=5, songs=songs, settings=SETTINGS)
    start = [np.zeros((2, 0), np.int64)] * 3
    whole = run_job(tiny, tmp_path / "whole", request, start)
    windows = []

    def kill_after_three(level, start, zs):
        windows.append((level, start))
        if len(windows) == 3:
            raise Killed

    with pytest.raises(Killed):
        run_job(tiny, tmp_path / "killed", request, start, on_window=kill_after_three)
    with pytest.raises(JobError, match="--resume"):
        run_job(tiny, tmp_path / "killed", request, start)
    with pytest.raises(JobError, match=r"another job; this request differs in seed: 5 -> 6\. "):
        run_job(tiny, tmp_path / "killed", dataclasses.replace(request, seed=6), start, resume=True)
    other_method = {**SETTINGS, 2: dataclasses.replace(SETTINGS[2], method=Temperature(0.5))}
    with pytest.raises(JobError, match=r"settings\.2\.method\.temperature: 1\.0 -> 0\.5"):
        run_job(tiny, tmp_path / "killed", dataclasses.replace(request, settings=other_method), start, resume=True)
    with pytest.raises(JobError, match=r"differs in start_codes: '[0-9a-f]{36}\.\.\. -> '[0-9a-f]{36}\.\.\.\. Resume"):
        run_job(tiny, tmp_path / "killed", request, [np.ones((2, 1), np.int64)] + start[1:], resume=True)
    codes = tmp_path / "killed" / "codes.npz"
    good = codes.read_bytes()
    saved = dict(np.load(codes))
    assert saved["level_2"].shape == (2, 56)  # level 2 finished
    damaged = [
        {f"level_{i}": np.zeros((3, 0), np.int64) for i in range(3)},  # another job's: 3 samples, not 2
        {f"level_{i}": np.full((2, 4), 64) for i in range(3)},  # codes outside the 64-code book
        None,  # truncated
        # longer than the job (were taken: the job's audio came out longer than asked)
        {**saved, "level_2": np.concatenate([saved["level_2"], saved["level_2"][:, :1]], 1)},
        {**saved, "level_0": np.zeros((2, 4), np.int64)},  # a level not sampled, past its start codes
    ]
    for arrays in damaged:
        if arrays is None:
            codes.write_bytes(good[:100])
        else:
            write_npz(codes, arrays)
        with pytest.raises(JobError, match=rf"{tmp_path / 'killed'} cannot be resumed: .*Sample again into a new folder") as e:
            run_job(tiny, tmp_path / "killed", request, start, resume=True)
        assert "earlier run" not in str(e.value)  # the hint for --codes, not for the job's own file
    codes.write_bytes(good)
    # what stands where the audio goes is named before sampling (it was a bare 'File exists' after it)
    (tmp_path / "killed" / "level_1").write_text("notes")
    with pytest.raises(JobError, match=r"killed/level_1 is in the way of the job's level-1 audio: move it away and resume"):
        run_job(tiny, tmp_path / "killed", request, start, resume=True)
    (tmp_path / "killed" / "level_1").unlink()
    (tmp_path / "killed" / "level_1").symlink_to(tmp_path / "gone")  # a link to nothing: exists() is False
    with pytest.raises(JobError, match=r"killed/level_1 is in the way of the job's level-1 audio"):
        run_job(tiny, tmp_path / "killed", request, start, resume=True)
    (tmp_path / "killed" / "level_1").unlink()
    (tmp_path / "killed" / ".partial-x.npz").write_bytes(b"")  # a temporary file a kill left
    # resumed with another batch limit (as after running out of memory): the same samples
    one_by_one = {level: dataclasses.replace(s, max_batch_size=1) for level, s in SETTINGS.items()}
    resumed = run_job(tiny, tmp_path / "killed", dataclasses.replace(request, settings=one_by_one), start, resume=True)
    for a, b in zip(resumed, whole):
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "killed" / "level_1" / "sample_1.wav").exists()
    assert not (tmp_path / "killed" / ".partial-x.npz").exists()  # the resume removed it
