"""How the next token is drawn from a step's logits: small frozen dataclasses behind one
`next_token(logits [b, v], keys [b]) -> [b]` (the original's `filter_logits` + `Categorical`),
one key per row, so a row's draw depends on its own key alone, not on the batch it is in.
Each checks its settings when made (`InputError`); `TopK.k` against the vocabulary is checked
by `Jukebox.sample`, which knows it. Each is a pytree whose temperature and `p` are data (`k`
and the class are static), so a jitted loop taking a method compiles once for every
temperature and `p`: a co-composer changing them between requests does not recompile."""

from __future__ import annotations

import dataclasses
import math
from numbers import Integral, Real

import jax
import jax.numpy as jnp
import numpy as np

from jukebox_jax.errors import InputError, shown

# The least temperature taken. Logits are shifted to a row maximum of 0 before the division,
# so any temperature whose reciprocal is a finite float32 would draw without overflow; below
# this one the draw is the greedy one for any logit gap above 1e-4, so ask for that instead.
MIN_TEMPERATURE = 1e-6
MAX_TEMPERATURE = 1e6  # past it logits / temperature underflow in float32: top-k and top-p lose their order


@dataclasses.dataclass(frozen=True)
class Greedy:
    """The most likely token (the original's `top_k=1`)."""

    def next_token(self, logits: jax.Array, keys: jax.Array) -> jax.Array:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)

    def to_dict(self) -> dict[str, str]:
        return {"method": _NAMES[Greedy]}


@dataclasses.dataclass(frozen=True)
class Temperature:
    """A draw from `softmax(logits / temperature)`."""

    temperature: float = 1.0

    def __post_init__(self):
        _checked(self, "temperature", _check_temperature)

    def next_token(self, logits: jax.Array, keys: jax.Array) -> jax.Array:
        logits = logits.astype(jnp.float32)
        # Shifted first: the row maximum is exactly 0 however small the temperature (dividing
        # first, XLA's fused multiply-subtract in softmax leaves the maximum's rounding error
        # times 1 / temperature, which overflows below about 1e-7 and gives NaN).
        logits = (logits - jnp.max(logits, axis=-1, keepdims=True)) / self.temperature
        # Inverse CDF with one uniform per row: the same distribution as a Gumbel-max draw
        # (`jax.random.categorical`) for a fortieth of the cost on CPU (no random bits per token).
        cdf = jnp.cumsum(jax.nn.softmax(self.filter(logits), axis=-1), axis=-1)
        u = jax.vmap(jax.random.uniform)(keys)[:, None] * cdf[:, -1:]  # [b, 1]
        return jnp.minimum(jnp.sum(cdf <= u, axis=-1), logits.shape[-1] - 1).astype(jnp.int32)

    def filter(self, logits: jax.Array) -> jax.Array:
        return logits

    def to_dict(self) -> dict[str, str | float]:
        """The method's name and fields, for a job's JSON: `{"method": "top_k", "temperature": 1.0, "k": 8}`."""
        return {"method": _NAMES[type(self)], **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class TopK(Temperature):
    """A draw among the `k` most likely tokens."""

    k: int = 1

    def __post_init__(self):
        super().__post_init__()
        k = _number(self.k)  # a numpy int or a 0-d array kept as a Python int, as `_checked` keeps reals
        if not isinstance(k, Integral) or isinstance(k, bool) or k < 1:
            raise InputError(f"top_k must be an int >= 1, got {self.k!r}")
        object.__setattr__(self, "k", int(k))

    def filter(self, logits: jax.Array) -> jax.Array:
        kth = jax.lax.top_k(logits, self.k)[0][..., -1:]
        return jnp.where(logits < kth, -jnp.inf, logits)


@dataclasses.dataclass(frozen=True)
class TopP(Temperature):
    """A draw from the smallest set of most likely tokens whose probability exceeds `p`
    (nucleus sampling; the token that crosses `p` is kept, as the original)."""

    p: float = 0.9

    def __post_init__(self):
        super().__post_init__()
        _checked(self, "p", _check_p)

    def filter(self, logits: jax.Array) -> jax.Array:
        order = jnp.argsort(-logits, axis=-1)
        sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
        cumulative = jnp.cumsum(jax.nn.softmax(sorted_logits, axis=-1), axis=-1)
        drop_sorted = jnp.pad(cumulative > self.p, ((0, 0), (1, 0)))[:, :-1]  # keep the first past p
        drop = jnp.zeros_like(drop_sorted).at[jnp.arange(logits.shape[0])[:, None], order].set(drop_sorted)
        return jnp.where(drop, -jnp.inf, logits)


Method = Greedy | Temperature | TopK | TopP
_NAMES = {Greedy: "greedy", Temperature: "temperature", TopK: "top_k", TopP: "top_p"}  # each method's name in `to_dict`


def _register(cls: type, data: tuple[str, ...], meta: tuple[str, ...] = ()) -> None:
    """`cls` as a pytree of its `data` fields (traced) and `meta` fields (static). Rebuilt
    without `__init__`: JAX rebuilds trees with other leaves (shapes, `None`, batched arrays)
    that are not settings to check."""

    def unflatten(aux: tuple, children: tuple) -> Method:
        method = object.__new__(cls)
        for name, value in (*zip(meta, aux), *zip(data, children)):
            object.__setattr__(method, name, value)
        return method

    flatten = lambda m: (tuple(getattr(m, f) for f in data), tuple(getattr(m, f) for f in meta))
    jax.tree_util.register_pytree_node(cls, flatten, unflatten)


for _cls, _data in ((Greedy, ()), (Temperature, ("temperature",)), (TopK, ("temperature",)), (TopP, ("temperature", "p"))):
    _register(_cls, _data, ("k",) if _cls is TopK else ())


def method_from_dict(d: dict) -> Method:
    """The method a `to_dict` describes (`{"method": "top_k", "temperature": 1.0, "k": 8}`)."""
    classes = {name: cls for cls, name in _NAMES.items()}
    fields = dict(d) if isinstance(d, dict) else {}
    name = fields.pop("method", None)
    cls = classes.get(name) if isinstance(name, str) else None
    names = set() if cls is None else {f.name for f in dataclasses.fields(cls)}
    if cls is None or not fields.keys() <= names:
        raise InputError(
            f"not a sampling method's dict: {shown(d)}; give {{'method': one of {sorted(classes)}, and its fields}}"
        )
    return cls(**fields)


def check_is_method(method: object) -> None:
    """Refuses anything but a sampling method object (a name such as 'greedy' included)."""
    if not isinstance(method, (Greedy, Temperature)):
        raise InputError(f"method must be a jukebox_jax.sampling method (Greedy, Temperature, TopK, TopP), got {shown(method)}")


def _checked(method: Method, name: str, check) -> None:
    """Checks the real field `name` of a method being made and keeps it as a Python float (a
    numpy scalar, a concrete 0-d array or an int becomes one: one compiled loop for all); a
    tracer (a method made inside the caller's jit) is taken as it is."""
    value = getattr(method, name)
    if not isinstance(value, jax.core.Tracer):
        value = _number(value)
        check(value)
        object.__setattr__(method, name, float(value))


def _check_p(p: float) -> None:
    if not isinstance(p, Real) or isinstance(p, bool) or not 0.0 < p <= 1.0:
        raise InputError(f"top_p must be a number in (0, 1], got {p!r}")


def _check_temperature(temperature: float) -> None:
    if not isinstance(temperature, Real) or isinstance(temperature, bool) or not math.isfinite(temperature):
        raise InputError(f"temperature must be a finite number, got {temperature!r}")
    if temperature < MIN_TEMPERATURE:
        raise InputError(
            f"temperature must be at least {MIN_TEMPERATURE:g} (lower ones draw as greedy decoding does), got {temperature}; "
            "for greedy decoding use top_k=1"
        )
    if temperature > MAX_TEMPERATURE:
        raise InputError(
            f"temperature must be at most {MAX_TEMPERATURE:g} (higher ones draw every token alike, and the logits "
            f"scaled by them underflow, so top_k and top_p no longer keep the likeliest), got {temperature:g}"
        )


def _number(x: object) -> object:
    """The Python number of a numpy scalar or 0-d array (jax or numpy); anything else as given."""
    return x.item() if isinstance(x, np.generic) or isinstance(x, (jax.Array, np.ndarray)) and x.ndim == 0 else x


def sampling_method(temperature: float = 1.0, top_k: int = 0, top_p: float = 0.0) -> Method:
    """The method the original's `(temp, top_k, top_p)` arguments describe: `top_k=1` greedy,
    `top_k > 1` or `0 < top_p <= 1` filtered, both 0 plain `temperature`. Each may be a Python
    or numpy number or a 0-d array."""
    temperature, top_k, top_p = (_number(x) for x in (temperature, top_k, top_p))
    _check_temperature(temperature)
    if not isinstance(top_k, Integral) or isinstance(top_k, bool) or top_k < 0:
        raise InputError(f"top_k must be an int >= 0 (0: no top-k filter), got {top_k!r}")
    if not isinstance(top_p, Real) or isinstance(top_p, bool) or not 0.0 <= top_p <= 1.0:
        raise InputError(f"top_p must be a number in [0, 1] (0: no nucleus filter), got {top_p!r}")
    if top_k and top_p:
        raise InputError(f"give top_k or top_p, not both (as the original), got top_k={top_k}, top_p={top_p}")
    if top_k == 1:
        return Greedy()
    if top_k:
        return TopK(temperature, top_k)
    if top_p:
        return TopP(temperature, top_p)
    return Temperature(temperature)
