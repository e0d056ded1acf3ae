"""Generation above `Jukebox`: whole songs sampled window by window through the levels (the
original `jukebox/sample.py`), and resumable jobs in a folder. Built on `Jukebox.sample`,
which samples one window; the decode loop and sampling methods it uses are in `sampling`."""

from jukebox_jax.generation.job import JobSource, Mode, SampleRequest, run_job, write_level_audio
from jukebox_jax.generation.levels import LevelSettings, sample_level, sample_levels, sample_window
from jukebox_jax.generation.windows import get_starts, upper_codes_of_window

__all__ = [
    "JobSource",
    "LevelSettings",
    "Mode",
    "SampleRequest",
    "get_starts",
    "run_job",
    "sample_level",
    "sample_levels",
    "sample_window",
    "upper_codes_of_window",
    "write_level_audio",
]
