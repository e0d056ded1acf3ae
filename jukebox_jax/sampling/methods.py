"""How the next token is drawn from a step's logits: small frozen dataclasses behind one
`next_token(logits [b, v], key) -> [b]` (the original's `filter_logits` + `Categorical`)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Greedy:
    """The most likely token (the original's `top_k=1`)."""

    def next_token(self, logits: jax.Array, key: jax.Array) -> jax.Array:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)

    def to_dict(self) -> dict[str, str]:
        return {"method": "greedy"}


@dataclasses.dataclass(frozen=True)
class Temperature:
    """A draw from `softmax(logits / temperature)`."""

    temperature: float = 1.0

    def next_token(self, logits: jax.Array, key: jax.Array) -> jax.Array:
        # Inverse CDF with one uniform per row: the same distribution as a Gumbel-max draw
        # (`jax.random.categorical`) for a fortieth of the cost on CPU (no random bits per token).
        cdf = jnp.cumsum(jax.nn.softmax(self.filter(logits.astype(jnp.float32) / self.temperature), axis=-1), axis=-1)
        u = jax.random.uniform(key, (logits.shape[0], 1)) * cdf[:, -1:]
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

    def filter(self, logits: jax.Array) -> jax.Array:
        kth = jax.lax.top_k(logits, self.k)[0][..., -1:]
        return jnp.where(logits < kth, -jnp.inf, logits)


@dataclasses.dataclass(frozen=True)
class TopP(Temperature):
    """A draw from the smallest set of most likely tokens whose probability exceeds `p`
    (nucleus sampling; the token that crosses `p` is kept, as the original)."""

    p: float = 0.9

    def filter(self, logits: jax.Array) -> jax.Array:
        order = jnp.argsort(-logits, axis=-1)
        sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
        cumulative = jnp.cumsum(jax.nn.softmax(sorted_logits, axis=-1), axis=-1)
        drop_sorted = jnp.pad(cumulative > self.p, ((0, 0), (1, 0)))[:, :-1]  # keep the first past p
        drop = jnp.zeros_like(drop_sorted).at[jnp.arange(logits.shape[0])[:, None], order].set(drop_sorted)
        return jnp.where(drop, -jnp.inf, logits)


Method = Greedy | Temperature | TopK | TopP
_NAMES = {Temperature: "temperature", TopK: "top_k", TopP: "top_p"}


def sampling_method(temperature: float = 1.0, top_k: int = 0, top_p: float = 0.0) -> Method:
    """The method the original's `(temp, top_k, top_p)` arguments describe."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if top_k < 0 or not 0.0 <= top_p <= 1.0:
        raise ValueError(f"need top_k >= 0 and 0 <= top_p <= 1, got top_k={top_k}, top_p={top_p}")
    if top_k and top_p:
        raise ValueError("give top_k or top_p, not both (as the original)")
    if top_k == 1:
        return Greedy()
    if top_k:
        return TopK(temperature, top_k)
    if top_p:
        return TopP(temperature, top_p)
    return Temperature(temperature)
