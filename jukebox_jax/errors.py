"""The errors jukebox-jax raises for bad input. Each is a `JukeboxError`, and a `ValueError`
(bad values) or an `OSError` (files), so callers can catch either the project's base or
Python's. Every message names what is wrong and how to fix it.

| error             | raised for                                                              |
|-------------------|-------------------------------------------------------------------------|
| `ConfigError`     | a config we cannot read or do not support; an unknown preset            |
| `ParamsError`     | params whose paths or shapes do not fit the config                      |
| `InputError`      | an argument out of range: labels, tokens, codes, audio, lengths, keys,  |
|                   | sampling settings                                                       |
| `CheckpointError` | a checkpoint that is missing, unreadable, corrupted or does not fit     |
| `ConversionError` | a PyTorch checkpoint that cannot be converted                           |
| `JobError`        | a sampling job folder that holds another job, or cannot be written      |
| `DivergedError`   | a training run whose loss or gradient norm became NaN or infinite       |
"""

from __future__ import annotations

from typing import Any


def shown(value: Any, limit: int = 40) -> str:
    """`repr(value)` as a message shows it: cut to `limit` characters, ending in "..." where cut
    (a 5000-character name echoed back buries the message)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class JukeboxError(Exception):
    """Base of every error jukebox-jax raises for bad input."""


class ConfigError(JukeboxError, ValueError):
    """A config that we cannot read or do not support."""


class ParamsError(JukeboxError, ValueError):
    """A param tree that does not fit the config: lists every missing, unexpected and
    mis-shaped array."""


class InputError(JukeboxError, ValueError):
    """An argument out of its range or of the wrong shape or type."""


class CheckpointError(JukeboxError, ValueError):
    """A checkpoint that is missing, unreadable, corrupted (its checksums disagree) or does
    not fit its config; the message names the file."""


class ConversionError(JukeboxError, ValueError):
    """A PyTorch checkpoint that cannot be converted; the message names the file, the
    problem and the fix."""


class JobError(JukeboxError, ValueError):
    """A sampling job folder that holds a different job, or that cannot be written."""


class DivergedError(JukeboxError, ValueError):
    """A training step whose loss or gradient norm is NaN or infinite (a learning rate too high,
    or bad data): the run stops before the broken parameters are saved; the message names the
    step and the newest checkpoint. Or a sampled window whose logits became NaN or infinite
    (float16 activations past its range), refused rather than drawn as token 0."""


class Interrupted(SystemExit):
    """Ctrl-C stopped a command; `message` says what stays and how to go on. Exit status 130;
    `jukebox-jax` prints the message and leaves at once (`cli.program`)."""

    def __init__(self, message: str):
        super().__init__(130)
        self.message = message

    def __str__(self) -> str:
        return self.message
