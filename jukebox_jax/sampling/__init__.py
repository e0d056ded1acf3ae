"""Sampling: methods (greedy, temperature, top-k, top-p) and the KV-cached decode loop."""

from jukebox_jax.sampling.decode import BROKEN, SampleState, broken_rows, decode, decode_chunks, prefill, row_keys
from jukebox_jax.sampling.methods import (
    MAX_TEMPERATURE,
    MIN_TEMPERATURE,
    Greedy,
    Method,
    Temperature,
    TopK,
    TopP,
    method_from_dict,
    sampling_method,
)

__all__ = ["BROKEN", "MAX_TEMPERATURE", "MIN_TEMPERATURE", "Greedy", "Method", "SampleState", "Temperature", "TopK", "TopP", "broken_rows", "decode", "decode_chunks", "method_from_dict", "prefill", "row_keys", "sampling_method"]
