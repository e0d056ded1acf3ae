"""Frozen configs for the Jukebox VQ-VAE and priors, their presets, and our JSON form.

Every structural fact a module needs is a field or a derived property here, so a model can
be built from its config alone. The readers of the configs stored beside released weights
(the original `hps` dict, a transformers 4.40.2 `config.json`) are in `convert/hps.py` and
`convert/hf_config.py`.

Levels follow the original: 0 is the finest VQ-VAE level (hop 8), 2 the top (hop 128), and a
prior is named by the level it models.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jukebox_jax.errors import ConfigError, InputError, shown


class AttnKind(enum.IntEnum):
    """The attention kind of one transformer layer; values are the original `attn_func` ids."""

    DENSE = 0
    BLOCK = 1  # within a block of `block_ctx` positions
    TRANSPOSE_BLOCK = 2  # the same offset in every block (a column)
    PREV_BLOCK = 3  # the whole previous block
    SUMMARY = 4  # the last position of every previous block
    SUMMARY_SPREAD = 5  # the last `spread` positions of every previous block
    ENC_DEC = 6  # keys and values from the lyric encoder
    PRIME = 7  # keys limited to the lyric prefix (1b_lyrics "prime" attention)


class DType(enum.Enum):
    """A floating-point storage or compute type."""

    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"

    @classmethod
    def parse(cls, dtype: DType | str | Any) -> DType:
        """A `DType`, its name ('bfloat16'), or a numpy/JAX dtype of one -> `DType`."""
        if isinstance(dtype, cls):
            return dtype
        import numpy as np

        try:
            return cls(dtype if isinstance(dtype, str) else np.dtype(dtype).name)
        except (TypeError, ValueError):
            names = ", ".join(d.value for d in cls)
            int8 = "; int8 is a weight format: quantize('int8'), or --weights int8" if str(dtype) == "int8" else ""
            raise ConfigError(f"dtype {dtype!r} is not one of {names}{int8}") from None

    @property
    def jnp(self) -> Any:
        import jax.numpy as jnp

        return jnp.dtype(self.value)


class WeightFormat(enum.Enum):
    """How the priors' transformer projection matrices are stored: FLOAT (in `Precision.params`)
    or INT8 (symmetric per output channel, a float32 scale per channel; `quantize.py`)."""

    FLOAT = "float"
    INT8 = "int8"

    @classmethod
    def parse(cls, weights: WeightFormat | str) -> WeightFormat:
        """A `WeightFormat` or its name ('float', 'int8') -> `WeightFormat`."""
        if isinstance(weights, cls):
            return weights
        try:
            return cls(weights)
        except ValueError:
            raise ConfigError(f"weight format {weights!r} is not one of {', '.join(w.value for w in cls)}") from None


class MatmulPrecision(enum.Enum):
    """`jax.lax.Precision` of float32 matmuls and convolutions (GPUs and TPUs may use reduced
    precision at DEFAULT; HIGHEST reproduces float32 rounding)."""

    DEFAULT = "default"
    HIGH = "high"
    HIGHEST = "highest"

    @property
    def lax(self) -> Any:
        from jax import lax

        return lax.Precision(self.value)


@dataclasses.dataclass(frozen=True)
class Precision:
    """How a part of the model stores and computes: `params` (stored weights), `compute`
    (activations and matmul inputs), `cache` (KV cache), `matmul` precision, and `weights`,
    the format of a prior transformer's projection matrices (INT8: int8 kernels with float32
    per-output-channel scales in place of `params`-dtype kernels; read by the transformer
    only).

    Whatever these say, LayerNorm statistics, softmax, timing-bin tables and output logits
    are float32 (as the original's fp16 mode). The default is float32 throughout."""

    params: DType = DType.FLOAT32
    compute: DType = DType.FLOAT32
    cache: DType = DType.FLOAT32
    matmul: MatmulPrecision = MatmulPrecision.DEFAULT
    weights: WeightFormat = WeightFormat.FLOAT


# The VQ-VAE and the upsamplers' conditioners are cheap next to the priors: float32 at
# HIGHEST precision on accelerators too, so codes match the original to float32 rounding.
FULL_PRECISION = Precision(matmul=MatmulPrecision.HIGHEST)


class Lyrics(enum.Enum):
    """How a prior reads lyrics."""

    NONE = "none"
    SEPARATE_ENCODER = "separate_encoder"  # 5b_lyrics: lyric encoder + ENC_DEC layers
    JOINT_SEQUENCE = "joint_sequence"  # 1b_lyrics: [lyrics ; music] in one sequence


_B, _T, _P = AttnKind.BLOCK, AttnKind.TRANSPOSE_BLOCK, AttnKind.PREV_BLOCK


def _cycle(*kinds: AttnKind) -> Callable[[int], AttnKind]:
    return lambda d: kinds[d % len(kinds)]


def _every_16th(special: tuple[AttnKind, ...]) -> Callable[[int], AttnKind]:
    return lambda d: special[d % 3] if d % 16 == 15 else (_B, _T, _P)[d % 3]


# The original `Transformer.__init__` layouts, indexed by `attn_order`.
_LAYOUTS: dict[int, Callable[[int], AttnKind]] = {
    0: _cycle(AttnKind.DENSE),
    1: _cycle(_B, _T),
    2: _cycle(_B, _T, _P),
    3: _cycle(_B, AttnKind.SUMMARY),
    4: _cycle(_B, AttnKind.SUMMARY_SPREAD),
    5: _cycle(_B, AttnKind.SUMMARY, _B, _B),
    6: _cycle(_B, _T, _P, AttnKind.ENC_DEC),
    7: _cycle(*(_B, _T, _P) * 5, AttnKind.ENC_DEC),
    8: _cycle(*(_B, _T, _P) * 3, AttnKind.ENC_DEC),
    9: _cycle(_B, _T, _P, AttnKind.DENSE),
    10: _cycle(*(_B, _T, _P) * 3, *((_B, _T, _P) * 3 + (AttnKind.ENC_DEC,)) * 7),
    11: _every_16th((AttnKind.ENC_DEC, AttnKind.ENC_DEC, AttnKind.DENSE)),
    12: _every_16th((AttnKind.PRIME, AttnKind.PRIME, AttnKind.DENSE)),
}


# The kinds that split the context into `blocks` (PRIME: its keys end at a block boundary).
_NEEDS_BLOCKS = frozenset(AttnKind) - {AttnKind.DENSE, AttnKind.ENC_DEC}


def attn_pattern(attn_order: int, depth: int) -> tuple[AttnKind, ...]:
    """The attention kind of each of `depth` layers for an original `attn_order` (0-12)."""
    if attn_order not in _LAYOUTS:
        raise ConfigError(f"attn_order {attn_order} is not one of the original layouts 0-12")
    return tuple(_LAYOUTS[attn_order](d) for d in range(depth))


def _sizes(owner: object, *names: str, least: int = 1, most: int | None = None) -> None:
    """Each field `names` of `owner`, an int (or a tuple of ints, or None where optional) in
    [least, most]: a width of 0 or a negative rate failed later, deep in shape tracing or as a
    ZeroDivisionError, or was taken."""
    for name in names:
        value = getattr(owner, name)
        for v in value if isinstance(value, tuple) else (value,):
            if v is None:
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < least or (most is not None and v > most):
                bound = f"from {least} to {most}" if most is not None else f"at least {least}"
                raise ConfigError(f"{type(owner).__name__}.{name} = {shown(value)}: expected integers {bound}")


def _reals(owner: object, *names: str, least: float = 0.0, open_low: bool = True, below: float = math.inf) -> None:
    """Each field `names` of `owner`, a finite number in (least, below), or [least, below)
    where not `open_low`."""
    for name in names:
        v = getattr(owner, name)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or v < least or (open_low and v == least) or v >= below:
            low = "(" if open_low else "["
            raise ConfigError(f"{type(owner).__name__}.{name} = {shown(v)}: expected a finite number in {low}{least:g}, {below:g})")


# ----------------------------------------------------------------------------------------
# VQ-VAE


def downsamples(strides_t: Sequence[int], downs_t: Sequence[int]) -> tuple[int, ...]:
    """Time downsampling of each VQ-VAE level relative to the level below: `stride ** down`."""
    return tuple(s**d for s, d in zip(strides_t, downs_t))


@dataclasses.dataclass(frozen=True)
class VQVAEConfig:
    """The hierarchical VQ-VAE; defaults are the released `vqvae` preset."""

    levels: int = 3
    downs_t: tuple[int, ...] = (3, 2, 2)  # strided convs per level
    strides_t: tuple[int, ...] = (2, 2, 2)
    emb_width: int = 64  # code vector width
    l_bins: int = 2048  # codebook size
    width: int = 32  # residual stack width (times `multipliers[level]`)
    depth: int = 4  # residual blocks per strided conv (times `multipliers[level]`)
    m_conv: float = 1.0  # inner width factor of a residual block
    dilation_growth_rate: int = 3
    dilation_cycle: int | None = None
    multipliers: tuple[int, ...] = (2, 1, 1)
    reverse_decoder_dilation: bool = True
    commit: float = 0.02  # training: commitment loss weight
    mu: float = 0.99  # training: codebook EMA decay
    sample_rate: int = 44100
    precision: Precision = FULL_PRECISION

    def __post_init__(self):
        _sizes(self, "levels", "downs_t", "strides_t", "emb_width", "width", "depth", "multipliers", "dilation_growth_rate", "dilation_cycle")
        _sizes(self, "l_bins", "sample_rate")
        _reals(self, "m_conv")
        _reals(self, "commit", open_low=False)
        _reals(self, "mu", open_low=False, below=1.0)
        n = self.levels
        if not (len(self.downs_t) == len(self.strides_t) == len(self.multipliers) == n):
            raise ConfigError(
                f"downs_t {self.downs_t}, strides_t {self.strides_t} and multipliers "
                f"{self.multipliers} must each have levels={n} entries"
            )

    def level_width(self, level: int) -> int:
        return self.width * self.multipliers[level]

    def level_depth(self, level: int) -> int:
        return self.depth * self.multipliers[level]

    @property
    def downsamples(self) -> tuple[int, ...]:
        """Time downsampling of each level relative to the level below."""
        return downsamples(self.strides_t, self.downs_t)

    @property
    def hop_lengths(self) -> tuple[int, ...]:
        """Audio samples per code at each level (8, 32, 128 for the released model)."""
        return tuple(math.prod(self.downsamples[: level + 1]) for level in range(self.levels))


# ----------------------------------------------------------------------------------------
# Priors


MAX_N_CTX = 65536  # the longest window taken: 8 times the released priors' (a window of 10**9 tried to allocate petabytes)


def repeated_names(names: Sequence[str]) -> list[str]:
    """The names of a label table that repeat an earlier one, compared case-insensitively as
    names are looked up (`tokenizer`): each must be one label."""
    seen: set[str] = set()
    repeats = []
    for name in names:
        if name.lower() in seen:
            repeats.append(name)
        seen.add(name.lower())
    return repeats


@dataclasses.dataclass(frozen=True)
class LabelConfig:
    """Artist, genre and (top level only) timing conditioning."""

    genre_bins: int = 120
    artist_bins: int = 4111
    max_bow_genre_size: int = 5  # genre slots in the labels (1 for the v3 label set)
    t_bins: int = 128
    timing: bool = True  # the top level's timing signal; an upsampler must set False
    min_duration: float = 60.0  # seconds; sets the total-length range of the timing bins
    max_duration: float = 600.0
    sample_rate: int = 44100
    v3: bool = False  # the 1b_lyrics label set (lowercase names, whole-string genres)
    # A model trained here names its own labels (id = position; lyric character id = position
    # + 1) and they travel in its config; None: the released v2/v3 tables (`tokenizer`).
    artists: tuple[str, ...] | None = None
    genres: tuple[str, ...] | None = None
    lyric_chars: str | None = None

    def __post_init__(self):
        _sizes(self, "genre_bins", "artist_bins", "max_bow_genre_size", "t_bins", "sample_rate")
        _reals(self, "min_duration", open_low=False)  # 0 in HF's configs
        _reals(self, "max_duration", least=self.min_duration)
        for name, bins in (("artists", self.artist_bins), ("genres", self.genre_bins)):
            names = getattr(self, name)
            if names is None:
                continue
            if blank := [n for n in names if not isinstance(n, str) or not n.strip()]:
                raise ConfigError(f"{name}: {shown(blank[0])} is not a name (each must be a non-blank string)")
            if len(names) > bins:
                raise ConfigError(f"{name}: {len(names)} names for {bins} ids")
            if repeats := repeated_names(names):
                verb = "repeats" if len(repeats) == 1 else "repeat"
                raise ConfigError(f"{name}: {', '.join(map(repr, repeats))} {verb} an earlier name (compared case-insensitively)")
        if self.lyric_chars is not None and len(set(self.lyric_chars)) != len(self.lyric_chars):
            raise ConfigError("lyric_chars has a character twice")

    @property
    def t_ranges(self) -> tuple[tuple[float, float], ...]:
        """(total length, absolute position, relative position) ranges, as the original."""
        sr = self.sample_rate
        return (
            (self.min_duration * sr, self.max_duration * sr),
            (0.0, self.max_duration * sr),
            (0.0, 1.0),
        )


@dataclasses.dataclass(frozen=True)
class ConditionerConfig:
    """The upsamplers' conditioner on the codes of the level above."""

    width: int = 1024
    depth: int = 16
    m_conv: float = 1.0
    dilation_growth_rate: int = 3
    dilation_cycle: int | None = 8
    res_scale: bool = False  # scale each residual by 1/sqrt(depth) (level 1 only)
    zero_out: bool = False  # init only: each residual block's last conv starts at zero, as the original's

    def __post_init__(self):
        _sizes(self, "width", "depth", "dilation_growth_rate", "dilation_cycle")
        _reals(self, "m_conv")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """A stack of pre-LN attention blocks."""

    width: int
    depth: int
    heads: int
    attn_order: int
    blocks: int | None  # blocks per context window; None for dense-only layouts
    spread: int | None = None  # SUMMARY_SPREAD width
    m_attn: float = 0.25  # attention width factor
    m_mlp: float = 1.0  # MLP width factor
    res_scale: bool = False  # scale residuals by 1/depth
    init_scale: float = 1.0  # init only
    zero_out: bool = False  # init only
    attn_dropout: float = 0.0  # training: on attention probabilities
    resid_dropout: float = 0.0  # training: on the attention and MLP outputs
    emb_dropout: float = 0.0  # training: on the token and position embeddings

    def __post_init__(self):
        _sizes(self, "width", "depth", "heads", "blocks", "spread")
        _reals(self, "m_attn", "m_mlp", "init_scale")
        _reals(self, "attn_dropout", "resid_dropout", "emb_dropout", open_low=False, below=1.0)
        if self.attn_width < self.heads or self.mlp_width < 1:
            raise ConfigError(f"m_attn {self.m_attn} and m_mlp {self.m_mlp} of width {self.width} leave no width for {self.heads} heads or the MLP")
        if self.width % self.heads or int(self.m_attn * self.width) % self.heads:
            raise ConfigError(f"width {self.width} (attention width) must divide into {self.heads} heads")
        blocked = sorted({kind.name for kind in attn_pattern(self.attn_order, self.depth) if kind in _NEEDS_BLOCKS})
        if self.blocks is None and blocked:
            raise ConfigError(f"attn_order {self.attn_order} has {', '.join(blocked)} layers, which need blocks: give blocks")

    @property
    def pattern(self) -> tuple[AttnKind, ...]:
        return attn_pattern(self.attn_order, self.depth)

    @property
    def attn_width(self) -> int:
        return int(self.m_attn * self.width)

    @property
    def mlp_width(self) -> int:
        return int(self.m_mlp * self.width)


@dataclasses.dataclass(frozen=True)
class PriorConfig:
    """One autoregressive prior over the codes of `level` (2 = top prior, 1 and 0 upsamplers)."""

    level: int
    n_ctx: int  # music tokens per window
    transformer: TransformerConfig
    l_bins: int = 2048  # music vocabulary: the VQ-VAE codebook size
    downs_t: tuple[int, ...] = (3, 2, 2)  # the VQ-VAE's, for hops and upsampling
    strides_t: tuple[int, ...] = (2, 2, 2)
    labels: LabelConfig | None = dataclasses.field(default_factory=LabelConfig)
    conditioner: ConditionerConfig | None = None  # upsamplers only
    lyrics: Lyrics = Lyrics.NONE
    n_vocab: int = 80  # lyric characters
    n_tokens: int = 0  # lyric tokens per window
    lyric_encoder: TransformerConfig | None = None  # Lyrics.SEPARATE_ENCODER only
    prime_loss_fraction: float = 0.0  # weight of the lyric loss
    merged_decoder: bool = False  # True: untied output head; False: tied, x_cond re-added
    # The layer and head whose attention on the lyrics aligns them with the music, as the
    # original's (lyric priors only; nothing here reads them yet: `Jukebox.prior_forward(capture=...)`
    # returns that layer's attention). Carried, not checked: a transformer shrunk by
    # `dataclasses.replace` keeps the released values.
    alignment_layer: int | None = None
    alignment_head: int | None = None
    precision: Precision = Precision()  # the conditioner keeps FULL_PRECISION

    def __post_init__(self):
        _sizes(self, "level", least=0)
        _sizes(self, "n_ctx", most=MAX_N_CTX)
        _sizes(self, "l_bins", "downs_t", "strides_t", "n_vocab")
        _sizes(self, "n_tokens", least=0, most=MAX_N_CTX)
        _reals(self, "prime_loss_fraction", open_low=False)
        if (self.lyrics is Lyrics.SEPARATE_ENCODER) != (self.lyric_encoder is not None):
            raise ConfigError("a lyric encoder is given exactly when lyrics is SEPARATE_ENCODER")
        if self.level >= len(self.downs_t):
            raise ConfigError(f"level {self.level} is not a VQ-VAE level (levels={len(self.downs_t)})")
        if (self.conditioner is not None) != (self.level < len(self.downs_t) - 1):
            raise ConfigError("exactly the priors below the top level have a conditioner")
        if self.conditioner is not None and self.labels is not None and self.labels.timing:  # was ignored: the conditioner's output replaces it
            raise ConfigError(f"the level-{self.level} upsampler reads no timing (the original's neither): give labels=LabelConfig(timing=False, ...)")
        if self.transformer.blocks is not None and self.n_positions % self.transformer.blocks:
            raise ConfigError(f"context {self.n_positions} is not a multiple of blocks={self.transformer.blocks}")
        if self.n_tokens % 2:
            raise ConfigError(f"n_tokens={self.n_tokens} must be even (a window's lyric tokens lie n_tokens / 2 either side of its midpoint)")
        if (self.lyrics is Lyrics.NONE) != (self.n_tokens == 0):
            raise ConfigError(f"n_tokens={self.n_tokens} with lyrics {self.lyrics.name}: a prior has lyric tokens exactly when it has lyrics")
        chars = self.labels.lyric_chars if self.labels is not None else None
        if self.n_tokens and chars is not None and len(chars) + 1 != self.n_vocab:  # was refused only making labels
            raise ConfigError(f"n_vocab={self.n_vocab} with {len(chars)} lyric_chars: a prior reads their ids 1.. and 0 (n_vocab = lyric_chars + 1)")
        enc = self.lyric_encoder
        if enc is not None and enc.blocks is not None and self.n_tokens % enc.blocks:
            raise ConfigError(f"n_tokens={self.n_tokens} is not a multiple of the lyric encoder's blocks={enc.blocks}")

    @property
    def n_positions(self) -> int:
        """Transformer sequence length (lyrics and music for the joint 1b sequence)."""
        return self.n_ctx + (self.n_tokens if self.lyrics is Lyrics.JOINT_SEQUENCE else 0)

    @property
    def block_ctx(self) -> int | None:
        blocks = self.transformer.blocks
        return None if blocks is None else self.n_positions // blocks

    @property
    def prime_len(self) -> int | None:
        """Keys a PRIME layer attends to: the lyric prefix rounded up past a multiple of
        `blocks`, as the original (`(n_tokens // blocks + 1) * blocks`; 448 for 1b_lyrics)."""
        if self.lyrics is not Lyrics.JOINT_SEQUENCE:
            return None
        return (self.n_tokens // self.transformer.blocks + 1) * self.transformer.blocks

    @property
    def n_labels(self) -> int:
        """Columns of a labels row: total length, offset, sample length, artist, genre slots,
        then `n_tokens` lyric tokens."""
        return 4 + (self.labels.max_bow_genre_size if self.labels else 0) + self.n_tokens

    @property
    def lyric_start(self) -> int:
        """The labels column where the lyric tokens start (`n_labels` for a prior without)."""
        return self.n_labels - self.n_tokens

    @property
    def raw_to_tokens(self) -> int:
        """Audio samples per token at this level."""
        return math.prod(downsamples(self.strides_t, self.downs_t)[: self.level + 1])

    @property
    def cond_downsample(self) -> int | None:
        """Tokens of this level per token of the level above (upsamplers only)."""
        if self.conditioner is None:
            return None
        return downsamples(self.strides_t, self.downs_t)[self.level + 1]

    @property
    def bins(self) -> int:
        """Output vocabulary (lyrics and music joined for the 1b sequence)."""
        return self.l_bins + (self.n_vocab if self.lyrics is Lyrics.JOINT_SEQUENCE else 0)


def misfits(prior: PriorConfig, vq: VQVAEConfig) -> list[tuple[str, Any, Any]]:
    """`(field, the prior's value, the VQ-VAE's)` for each way `prior` does not read `vq`'s
    codes: codebook size, hops, and the sample rate its timing labels count in."""
    pairs = {"l_bins": (prior.l_bins, vq.l_bins), "downs_t": (prior.downs_t, vq.downs_t), "strides_t": (prior.strides_t, vq.strides_t)}
    if prior.labels is not None:
        pairs["sample_rate"] = (prior.labels.sample_rate, vq.sample_rate)
    return [(name, ours, theirs) for name, (ours, theirs) in pairs.items() if ours != theirs]


# ----------------------------------------------------------------------------------------
# The whole model


@dataclasses.dataclass(frozen=True)
class JukeboxConfig:
    """A VQ-VAE and/or any set of priors (at most one per level)."""

    vqvae: VQVAEConfig | None = None
    priors: tuple[PriorConfig, ...] = ()

    def __post_init__(self):
        levels = [p.level for p in self.priors]
        if len(set(levels)) != len(levels):
            raise ConfigError(f"at most one prior per level, got levels {levels}")
        for p in self.priors if self.vqvae is not None else ():
            if differ := [f"{name} {ours} (the VQ-VAE's {theirs})" for name, ours, theirs in misfits(p, self.vqvae)]:
                raise ConfigError(f"the level-{p.level} prior does not fit the VQ-VAE: its {', '.join(differ)}; a prior is trained on one VQ-VAE's codes")
        object.__setattr__(self, "priors", tuple(sorted(self.priors, key=lambda p: p.level)))

    def prior(self, level: int) -> PriorConfig:
        """The prior of `level`; an `InputError` naming the model's levels if it has none."""
        for p in self.priors:
            if p.level == level:
                return p
        raise InputError(f"no prior for level {level}; this model has levels {[p.level for p in self.priors]}")

    def with_prior(self, prior: PriorConfig) -> JukeboxConfig:
        """This config with `prior` in place of its prior of that level (or added): a
        fine-tuned prior's, whose label tables grew."""
        return dataclasses.replace(self, priors=tuple(p for p in self.priors if p.level != prior.level) + (prior,))

    def astype(self, dtype: DType | str) -> JukeboxConfig:
        """This config with every prior storing its transformer weights, computing and caching
        in `dtype` (`Precision`: LayerNorm statistics, softmax, timing tables and logits stay
        float32). The VQ-VAE and the upsamplers' conditioners stay float32 (`FULL_PRECISION`):
        codes are an argmin over distances that 16 bits would change, and both are cheap."""
        d = DType.parse(dtype)
        with_dtype = lambda p: dataclasses.replace(p, precision=dataclasses.replace(p.precision, params=d, compute=d, cache=d))
        return dataclasses.replace(self, priors=tuple(with_dtype(p) for p in self.priors))

    def to_dict(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JukeboxConfig:
        return _from_json(cls, d)

    @classmethod
    def from_preset(cls, name: str) -> JukeboxConfig:
        """A whole released model ('5b', '5b_lyrics', '1b_lyrics': the VQ-VAE, that top prior
        and both upsamplers), or one released part alone ('vqvae', 'upsampler_level_1',
        'upsampler_level_0'); 'tiny_' before any name gives its tiny test twin; 'small' the
        structure of the shipped default (`small_vqvae`, `small_top`, `small_upsampler_level_*`)."""
        if name == "small":
            return cls(vqvae=preset("small_vqvae"), priors=tuple(preset(f"small_{p}") for p in ("top", "upsampler_level_1", "upsampler_level_0")))
        if name in MODEL_PRESETS:
            p = "tiny_" if name.startswith("tiny_") else ""
            return cls(vqvae=preset(p + "vqvae"), priors=(preset(name), preset(p + "upsampler_level_1"), preset(p + "upsampler_level_0")))
        if name in PRESETS:
            part = PRESETS[name]
            return cls(vqvae=part) if isinstance(part, VQVAEConfig) else cls(priors=(part,))
        parts = sorted(set(PRESETS) - set(MODEL_PRESETS))
        raise ConfigError(f"unknown preset {name!r}; whole models: {', '.join(MODEL_PRESETS)}; single parts: {', '.join(parts)}")


def _to_json(x: Any) -> Any:
    if dataclasses.is_dataclass(x):
        return {f.name: _to_json(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, enum.Enum):
        return x.value
    if isinstance(x, tuple):
        return [_to_json(v) for v in x]
    return x


def _from_json(cls: type, d: Mapping[str, Any]) -> Any:
    """The dataclass `cls` from its JSON object; a value of the wrong type is a `ConfigError`
    naming the field."""
    import typing

    if not isinstance(d, Mapping):
        raise ConfigError(f"{cls.__name__} must be a JSON object, got {type(d).__name__} {shown(d)}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(d) - names, key=repr)
    if extra:
        raise ConfigError(f"unknown {cls.__name__} fields {extra}")
    kwargs = {}
    for name, value in d.items():
        try:
            kwargs[name] = _value_from_json(hints[name], value)
        except ConfigError:  # a nested config's, naming its own field
            raise
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{cls.__name__}.{name} = {shown(value)}: {e}") from None
    try:
        return cls(**kwargs)
    except TypeError as e:  # a check in __post_init__ met a value of another type
        raise ConfigError(f"{cls.__name__}: a value of the wrong type ({e})") from None


def _value_from_json(hint: Any, value: Any) -> Any:
    import types
    import typing

    if value is None:
        if type(None) not in typing.get_args(hint):
            raise TypeError("null where a value is needed")
        return None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return _value_from_json(args[0], value)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list | tuple):
            raise TypeError("not a list")
        return tuple(_value_from_json(args[0], v) for v in value)
    if dataclasses.is_dataclass(hint):
        return _from_json(hint, value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    scalars = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}
    if hint in scalars and (not isinstance(value, scalars[hint]) or (hint is not bool and isinstance(value, bool))):
        raise TypeError(f"not of type {hint.__name__}")
    return value


# ----------------------------------------------------------------------------------------
# Presets


_VQVAE = VQVAEConfig()
_TINY_VQVAE = VQVAEConfig(width=16, depth=3, emb_width=16, l_bins=64)


def _upsampler(level: int, vq: VQVAEConfig, **sizes: Any) -> PriorConfig:
    t = {"width": 1920, "depth": 72, "heads": 1, "attn_order": 2, "blocks": 128, "init_scale": 0.4}
    c = {"width": 1024, "depth": 16}
    t.update(sizes.pop("transformer", {}))
    c.update(sizes.pop("conditioner", {}))
    return PriorConfig(
        level=level,
        n_ctx=sizes.pop("n_ctx", 8192),
        transformer=TransformerConfig(**t),
        l_bins=vq.l_bins,
        downs_t=vq.downs_t,
        strides_t=vq.strides_t,
        labels=LabelConfig(timing=False, **sizes.pop("labels", {})),
        conditioner=ConditionerConfig(res_scale=level == 1, **c),
        n_vocab=80,
    )


def _top_5b(vq: VQVAEConfig, lyrics: bool, **sizes: Any) -> PriorConfig:
    t = {"width": 4800, "depth": 79 if lyrics else 72, "heads": 8, "attn_order": 10 if lyrics else 2, "blocks": 128, "init_scale": 0.1}
    e = {"width": 1280, "depth": 18, "heads": 4, "attn_order": 2, "blocks": 32, "init_scale": 0.7}
    t.update(sizes.pop("transformer", {}))
    e.update(sizes.pop("lyric_encoder", {}))
    return PriorConfig(
        level=2,
        n_ctx=sizes.pop("n_ctx", 8192),
        transformer=TransformerConfig(**t),
        l_bins=vq.l_bins,
        downs_t=vq.downs_t,
        strides_t=vq.strides_t,
        labels=LabelConfig(**{"min_duration": 23.8 if lyrics else 60.0, **sizes.pop("labels", {})}),
        lyrics=Lyrics.SEPARATE_ENCODER if lyrics else Lyrics.NONE,
        n_vocab=80,
        n_tokens=sizes.pop("n_tokens", 512) if lyrics else 0,
        lyric_encoder=TransformerConfig(**e) if lyrics else None,
        prime_loss_fraction=0.4 if lyrics else 0.0,
        merged_decoder=True,
        alignment_layer=sizes.pop("alignment_layer", 68) if lyrics else None,
        alignment_head=2 if lyrics else None,
    )


def _top_1b(vq: VQVAEConfig, **sizes: Any) -> PriorConfig:
    t = {"width": 2048, "depth": 72, "heads": 2, "attn_order": 12, "blocks": 64, "init_scale": 0.2}
    t.update(sizes.pop("transformer", {}))
    return PriorConfig(
        level=2,
        n_ctx=sizes.pop("n_ctx", 6144),
        transformer=TransformerConfig(**t),
        l_bins=vq.l_bins,
        downs_t=vq.downs_t,
        strides_t=vq.strides_t,
        labels=LabelConfig(genre_bins=604, artist_bins=7898, max_bow_genre_size=1, t_bins=64, min_duration=17.84, v3=True),
        lyrics=Lyrics.JOINT_SEQUENCE,
        n_vocab=79,
        n_tokens=sizes.pop("n_tokens", 384),
        prime_loss_fraction=0.4,
        merged_decoder=False,
        alignment_layer=sizes.pop("alignment_layer", 63),
        alignment_head=0,
    )


_TINY_LABELS = {"genre_bins": 12, "artist_bins": 30}
PRESETS: dict[str, VQVAEConfig | PriorConfig] = {
    # The released files.
    "vqvae": _VQVAE,
    "5b": _top_5b(_VQVAE, lyrics=False),
    "5b_lyrics": _top_5b(_VQVAE, lyrics=True),
    "1b_lyrics": _top_1b(_VQVAE),
    "upsampler_level_1": _upsampler(1, _VQVAE),
    "upsampler_level_0": _upsampler(0, _VQVAE),
    # Tiny models of the same structures (the sizes of the fixtures in shared/fixtures/openai).
    "tiny_vqvae": _TINY_VQVAE,
    "tiny_5b": _top_5b(_TINY_VQVAE, lyrics=False, n_ctx=48, transformer={"width": 128, "depth": 6, "blocks": 4}, labels=_TINY_LABELS),
    "tiny_5b_lyrics": _top_5b(
        _TINY_VQVAE,
        lyrics=True,
        n_ctx=48,
        n_tokens=32,
        alignment_layer=18,
        transformer={"width": 64, "depth": 19, "blocks": 4},
        lyric_encoder={"width": 32, "depth": 3, "blocks": 4},
        labels=_TINY_LABELS,
    ),
    "tiny_1b_lyrics": dataclasses.replace(
        _top_1b(_TINY_VQVAE, n_ctx=72, n_tokens=24, alignment_layer=15, transformer={"width": 64, "depth": 16, "blocks": 8}),
        labels=LabelConfig(genre_bins=20, artist_bins=50, max_bow_genre_size=1, t_bins=64, min_duration=17.84, v3=True),
    ),
    "tiny_upsampler_level_1": _upsampler(
        1, _TINY_VQVAE, n_ctx=64, transformer={"width": 64, "depth": 6, "blocks": 4}, conditioner={"width": 32, "depth": 10}, labels=_TINY_LABELS
    ),
    "tiny_upsampler_level_0": _upsampler(
        0, _TINY_VQVAE, n_ctx=64, transformer={"width": 64, "depth": 6, "blocks": 4}, conditioner={"width": 32, "depth": 10}, labels=_TINY_LABELS
    ),
}
# The small model trained here on the synthetic songs (`jukebox-jax data synth`), shipped as the
# default (`jukebox_jax.default`): 16 kHz, the released hops, a 256-code codebook; a top prior
# of 5b's structure (no lyrics) over 4.1 s windows, upsamplers over 1 s and 0.26 s. Their label
# tables are the dataset's own (set when training starts).
_SMALL_VQVAE = VQVAEConfig(width=32, depth=3, emb_width=32, l_bins=256, multipliers=(1, 1, 1), sample_rate=16000)
_SMALL_LABELS = {"genre_bins": 3, "artist_bins": 4, "max_bow_genre_size": 1, "sample_rate": 16000}
_SMALL_TRANSFORMER = {"width": 192, "depth": 4, "heads": 2, "blocks": 16, "init_scale": 0.7}
PRESETS |= {
    "small_vqvae": _SMALL_VQVAE,
    "small_top": _top_5b(
        _SMALL_VQVAE,
        lyrics=False,
        n_ctx=512,
        transformer={**_SMALL_TRANSFORMER, "width": 256, "depth": 6},
        labels={**_SMALL_LABELS, "t_bins": 32, "min_duration": 5.0, "max_duration": 60.0},
    ),
    **{
        f"small_upsampler_level_{level}": _upsampler(
            level, _SMALL_VQVAE, n_ctx=512, transformer=_SMALL_TRANSFORMER, conditioner={"width": 64, "depth": 4}, labels=_SMALL_LABELS
        )
        for level in (1, 0)
    },
}
MODEL_PRESETS = ("5b", "5b_lyrics", "1b_lyrics", "tiny_5b", "tiny_5b_lyrics", "tiny_1b_lyrics", "small")


def preset(name: str) -> VQVAEConfig | PriorConfig:
    """The config of one released file ('vqvae', '5b', '5b_lyrics', '1b_lyrics',
    'upsampler_level_1', 'upsampler_level_0'), of its tiny test twin ('tiny_...'), or of a part
    of the default model's structure ('small_vqvae', 'small_top', 'small_upsampler_level_1', ...)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]
