"""Bad input to the converter: each case is a `ConversionError` (a `JukeboxError`) whose message
names the file and the problem, never a PyTorch, safetensors, zipfile or JSON traceback; a
fuzz test corrupts bytes of valid files and demands an error or exactly the original weights."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import struct
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

from convert import ConversionError, convert_checkpoint
from jukebox_jax import Jukebox
from jukebox_jax.cli import main
from jukebox_jax.config import JukeboxConfig, preset
from jukebox_jax.errors import JukeboxError
from jukebox_jax.params import flatten


def _written(tmp: Path, data: bytes, name: str = "vqvae.pth.tar") -> Path:
    (tmp / name).write_bytes(data)
    return tmp / name


def _saved(tmp: Path, ckpt: dict, name: str = "vqvae.pth.tar") -> Path:
    torch.save(ckpt, tmp / name)
    return tmp / name


def _bytes(make: Callable[[bytes], bytes]) -> Callable[[Path, Path], list[Path]]:
    """A case writing `make(the VQ-VAE fixture's bytes)` to vqvae.pth.tar."""
    return lambda fixtures, tmp: [_written(tmp, make((fixtures / "vqvae.pth.tar").read_bytes()))]


def _edit(edit: Callable[[dict], object], stem: str = "vqvae") -> Callable[[Path, Path], list[Path]]:
    """A case saving the fixture `stem`'s checkpoint, changed by `edit`, as vqvae.pth.tar."""

    def build(fixtures: Path, tmp: Path) -> list[Path]:
        ckpt = torch.load(fixtures / f"{stem}.pth.tar", weights_only=True)
        edit(ckpt)
        return [_saved(tmp, ckpt)]

    return build


def _hps(**fields) -> Callable[[dict], object]:
    return lambda ckpt: ckpt["hps"].update(fields)


def _tensor(value) -> Callable[[dict], object]:
    return lambda ckpt: ckpt["model"].update({_W: value})


def _flip_in_member(data: bytes, member: str) -> bytes:
    """`data` with one bit flipped in the middle of zip member `member`'s bytes."""
    data = bytearray(data)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + info.file_size // 2] ^= 0x10
    return bytes(data)


def _set_central_bits(data: bytes, member: str, offset: int, bits: int) -> bytes:
    """`data` with `bits` set in byte `offset` of `member`'s central directory entry."""
    data = bytearray(data)
    entry = data.rfind(member.encode() + b"PK") - 46  # the name ends the entry's fixed fields; the next record follows
    assert data[entry : entry + 4] == b"PK\x01\x02"
    data[entry + offset] |= bits
    return bytes(data)


def _zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def _hf(config: bytes | None = b'{"model_type": "jukebox_vqvae"}', **files: bytes) -> Callable[[Path, Path], list[Path]]:
    """A case converting directory hf/ holding `config` as config.json and `files` (dots
    written as `__` in their names)."""

    def build(fixtures: Path, tmp: Path) -> list[Path]:
        (tmp / "hf").mkdir()
        if config is not None:
            (tmp / "hf" / "config.json").write_bytes(config)
        for name, data in files.items():
            (tmp / "hf" / name.replace("__", ".")).write_bytes(data)
        return [tmp / "hf"]

    return build


def _safetensors(header: bytes, data: bytes = b"", declared: int | None = None) -> bytes:
    return struct.pack("<Q", len(header) if declared is None else declared) + header + data


def _fixture_and(build: Callable[[Path, Path], list[Path]], stem: str = "vqvae") -> Callable[[Path, Path], list[Path]]:
    """A case converting the fixture `stem` together with what `build` makes."""
    return lambda fixtures, tmp: [fixtures / f"{stem}.pth.tar", *build(fixtures, tmp)]


def _config_dir(fixtures: Path, tmp: Path) -> list[Path]:
    (tmp / "hf" / "config.json").mkdir(parents=True)
    return [tmp / "hf"]


@dataclasses.dataclass(frozen=True)
class Case:
    build: Callable[[Path, Path], list[Path]]  # (fixtures, tmp) -> the paths to convert
    message: str  # a regex the message must match
    names: str | None = "vqvae.pth.tar"  # the file the message must name, relative to tmp
    config: object = None


_W = "decoders.0.out.weight"
_SAFE_F32 = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'
_CORRUPT = r"not a PyTorch checkpoint, or corrupt"
CASES = {
    "missing file": Case(lambda f, t: [t / "absent.pth.tar"], r"no such file", "absent.pth.tar"),
    "zero bytes": Case(_bytes(lambda d: b""), r"empty file \(0 bytes\).*fetch it again"),
    "truncated": Case(_bytes(lambda d: d[: len(d) // 2]), r"truncated or corrupt \(not a readable zip archive"),
    "text, not zip": Case(_bytes(lambda d: b"hello, not a checkpoint\n" * 10), _CORRUPT),
    "random bytes": Case(_bytes(lambda d: np.random.default_rng(0).bytes(4096)), rf"{_CORRUPT} \(its pickle: Unsupported operand"),
    "zip, not torch": Case(_bytes(lambda d: _zip_of({"notes.txt": b"hi"})), rf"{_CORRUPT} \(RuntimeError: file in archive is not in a subdirectory"),
    "flipped byte": Case(_bytes(lambda d: _flip_in_member(d, "vqvae.pth/data/2")), r"member 'vqvae.pth/data/2' fails its CRC-32 check"),
    "member marked a directory": Case(
        _bytes(lambda d: _set_central_bits(d, "vqvae.pth/data/2", 38, 0x10)),  # external attributes
        r"member 'vqvae.pth/data/2' is marked as a directory",
    ),
    "member marked encrypted": Case(
        _bytes(lambda d: _set_central_bits(d, "vqvae.pth/data/2", 8, 0x01)),  # general purpose flags
        r"not a readable zip archive: File 'vqvae.pth/data/2' is encrypted",
    ),
    "state dict a list": Case(_edit(lambda c: c.update(model=list(c["model"].values()))), r"the state dict is a list, not a dict"),
    "another model's weights": Case(
        _edit(lambda c: c.update(model={"fc.weight": torch.ones(2, 2)})),
        r"holds no Jukebox weights \(its tensors: fc.weight; a VQ-VAE's names begin with 'encoders\.' or "
        r"'decoders\.' or 'bottleneck\.', a prior's with 'prior\.'\); give a vqvae.pth.tar",
    ),
    "no tensors": Case(_edit(lambda c: c.update(model={})), r"holds no Jukebox weights \(its tensors: none;"),
    "hps a string": Case(_edit(lambda c: c.update(hps="levels=3")), r"'hps' is a str, not a dict.*config="),
    "negative width": Case(_edit(_hps(width=-16)), r"hps width=-16: expected an integer from 1 to"),
    "zero depth": Case(_edit(_hps(depth=0)), r"hps depth=0: expected an integer from 1 to 64"),
    "negative stride": Case(_edit(_hps(strides_t=[2, -2, 2])), r"hps strides_t=\[2, -2, 2\]: expected a list of integers from 1 to 16"),
    "huge depth": Case(_edit(_hps(depth=10**6)), r"hps depth=1000000: expected an integer from 1 to 64"),
    "huge context": Case(_fixture_and(_edit(_hps(n_ctx=10**6), "upsampler_level1")), r"hps n_ctx=1000000: expected an integer from 1 to 16384"),
    "huge dilation": Case(_edit(_hps(depth=64)), r"hps dilation_growth_rate=3 over 128 layers \(cycle None\) gives dilation 3\d+"),
    "NaN width factor": Case(_edit(_hps(m_conv=float("nan"))), r"hps m_conv=nan: expected a positive number"),
    "hps lack a field": Case(_edit(lambda c: c["hps"].pop("l_bins")), r"lacks the field 'l_bins'"),
    "level out of range": Case(_fixture_and(_edit(_hps(level=5), "upsampler_level0")), r"hps level=5: the VQ-VAE has levels 0 to 2"),
    "sample rates differ": Case(
        _fixture_and(_edit(_hps(sr=22050)), "prior_5b_level2"),
        r"different sample rates.*prior_5b_level2.pth.tar: 44100 Hz.*vqvae.pth.tar: 22050 Hz",
    ),
    "an entry not a tensor": Case(_edit(_tensor([1.0])), rf"1 state dict value not a tensor: {_W} \(list\)"),
    "int tensor": Case(_edit(_tensor(torch.ones(1, 16, 3, dtype=torch.int32))), rf"1 tensor not dense floating point.*{_W} \(torch.int32\)"),
    "bool tensor": Case(_edit(_tensor(torch.ones(1, 16, 3, dtype=torch.bool))), rf"{_W} \(torch.bool\)"),
    "complex tensor": Case(_edit(_tensor(torch.ones(1, 16, 3, dtype=torch.complex64))), rf"{_W} \(torch.complex64\)"),
    "meta tensor": Case(
        _edit(_tensor(torch.empty(1, 16, 3, device="meta"))),  # a model built on the meta device, saved without weights
        rf"1 tensor on the meta device, with shapes but no values: {_W}; save the model after its weights are loaded",
    ),
    "beyond float32": Case(
        _edit(_tensor(torch.full((1, 16, 3), 1e300, dtype=torch.float64))),
        rf"{_W} \(\|x\| up to 1e\+300, beyond float32's .*\); the weights are corrupt$",  # not "convert to float32"
    ),
    "two priors of one level": Case(
        _fixture_and(_edit(lambda c: None, "prior_5b_level2"), "prior_5b_level2"),
        r"prior_5b_level2.pth.tar, \S*vqvae.pth.tar: each holds a prior of level 2; give one file per level",
    ),
    "a NaN": Case(_edit(lambda c: c["model"][_W].view(-1)[5].fill_(float("nan"))), rf"1 tensor with NaN or Inf: {_W} \(1 of 48 values\)"),
    "Infs everywhere": Case(
        _edit(lambda c: [v.fill_(float("inf")) for v in c["model"].values()]), r"\d\d\d tensors with NaN or Inf: .* and \d+ more"
    ),
    "a directory among files": Case(_fixture_and(lambda f, t: [t]), r"a directory among several paths", ""),
    "directory, no config.json": Case(lambda f, t: [t], r"a directory without config.json", ""),
    "a jukebox-jax checkpoint": Case(_hf(b'{"format": "jukebox-jax/3", "config": {}}'), r"already a jukebox-jax checkpoint \(jukebox-jax/3\), nothing to convert; load it", "hf"),
    "config.json a directory": Case(_config_dir, r"not a file", "hf/config.json"),
    "config.json not JSON": Case(_hf(b'{"model_type": '), r"not valid JSON", "hf/config.json"),
    "config.json not UTF-8": Case(_hf(b"\xff\xfe\x00garbage"), r"not valid JSON", "hf/config.json"),
    "config.json a list": Case(_hf(b"[1, 2]"), r"holds a JSON list, not an object", "hf/config.json"),
    "config.json fields": Case(
        _hf(b'{"model_type": "jukebox_vqvae", "levels": "three"}', model__safetensors=_safetensors(b"{}")),
        r"cannot read its config",
        "hf/config.json",
    ),
    "safetensors bad header": Case(_hf(model__safetensors=_safetensors(b"{not json}")), r"not a safetensors file", "hf/model.safetensors"),
    "safetensors huge header": Case(
        _hf(model__safetensors=_safetensors(b"{}", declared=2**62)), r"not a safetensors file.*header too large", "hf/model.safetensors"
    ),
    "safetensors truncated data": Case(
        _hf(model__safetensors=_safetensors(_SAFE_F32, b"\0" * 8)), r"not a safetensors file", "hf/model.safetensors"
    ),
    "safetensors int tensor": Case(
        _hf(model__safetensors=_safetensors(_SAFE_F32.replace(b"F32", b"I32"), b"\0" * 16)),
        r"1 tensor not dense floating point.*w \(torch.int32\)",
        "hf/model.safetensors",
    ),
    "HF weights of another model": Case(
        _hf(b'{"model_type": "jukebox"}', model__safetensors=_safetensors(_SAFE_F32, b"\0" * 16)),
        r"its tensors do not fit the config; \d+ missing:(\n  \S+){20}\n  \.\.\. and \d+ more\n1 unexpected:\n  w$",
        "hf",
    ),
    "index not JSON": Case(_hf(model__safetensors__index__json=b"nope"), r"not valid JSON", "hf/model.safetensors.index.json"),
    "index shard outside": Case(
        _hf(model__safetensors__index__json=b'{"weight_map": {"w": "../x.safetensors"}}'),
        r"'weight_map' must map tensor names to shard file names",
        "hf/model.safetensors.index.json",
    ),
    "unknown preset": Case(lambda f, t: [f / "vqvae.pth.tar"], r"unknown preset '7b'; whole models: ", None, config="7b"),
    "config of another type": Case(
        lambda f, t: [f / "vqvae.pth.tar"], r"config must be a JukeboxConfig, a VQVAEConfig or PriorConfig, or a preset name, got dict", None, config={}
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_a_conversion_error_naming_the_file(case, fixtures, tmp_path):
    c = CASES[case]
    with pytest.raises(ConversionError) as e:
        convert_checkpoint(*c.build(fixtures, tmp_path), config=c.config)
    assert isinstance(e.value, JukeboxError) and isinstance(e.value, ValueError)
    message = str(e.value)
    assert re.search(c.message, message, re.DOTALL), message
    assert c.names is None or str(tmp_path / c.names) in message, message
    assert e.value.__context__ is None or e.value.__suppress_context__, "the message replaces the library's traceback"


class _RunsCode:
    def __init__(self, call, marker: Path):
        self.call, self.marker = call, marker

    def __reduce__(self):
        return self.call(self.marker)


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda marker: (Path.touch, (marker,)), "getattr"),  # a global torch does not allow
        (lambda marker: (os.system, (f"touch {marker}",)), "system"),  # one whose module torch blocks ("corrupt")
    ],
)
def test_hostile_pickle_is_refused_without_advice_to_load_it_unsafely(fixtures, tmp_path, call, named):
    marker = tmp_path / "code_ran"
    (path,) = _edit(lambda c: c.update(opt=_RunsCode(call, marker)))(fixtures, tmp_path)
    with pytest.raises(ConversionError, match=rf"refused to unpickle: .*\(the global \S*{named}\S*\)") as e:
        convert_checkpoint(path)
    assert not marker.exists()
    assert str(path) in str(e.value)
    for advice in ("weights_only", "add_safe_globals", "safe_globals", "can still be loaded"):
        assert advice not in str(e.value)


def test_pre_zip_format_still_converts(fixtures, tmp_path, pristine):
    """Files saved before torch 1.6's zip format (a bare pickle) have no CRC-32s to check, but
    convert as before."""
    path = tmp_path / "vqvae.pth.tar"
    torch.save(torch.load(fixtures / "vqvae.pth.tar", weights_only=True), path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    got = flatten(convert_checkpoint(path).params)
    assert got.keys() == pristine[1].keys()
    for k, v in got.items():
        np.testing.assert_array_equal(np.asarray(v), pristine[1][k])


def test_parameters_convert_as_tensors(fixtures, tmp_path, pristine):
    """A state dict of `nn.Parameter`s (`state_dict(keep_vars=True)`), which the weights-only
    loader accepts, converts as its tensors do (it was a RuntimeError from `.numpy()`)."""
    ckpt = torch.load(fixtures / "vqvae.pth.tar", weights_only=True)
    ckpt["model"] = {k: torch.nn.Parameter(v) for k, v in ckpt["model"].items()}
    got = flatten(convert_checkpoint(_saved(tmp_path, ckpt)).params)
    for k, v in got.items():
        np.testing.assert_array_equal(np.asarray(v), pristine[1][k])


def test_a_parts_config_is_taken_as_its_preset_name_is(fixtures):
    """`config=preset("tiny_vqvae")` (a `VQVAEConfig`; likewise a `PriorConfig`) as `config=
    "tiny_vqvae"` (it was an AttributeError)."""
    vq, top = fixtures / "vqvae.pth.tar", fixtures / "prior_5b_lyrics_level2.pth.tar"
    for part, files in (("tiny_vqvae", [vq]), ("tiny_5b_lyrics", [top])):
        by_config, by_name = (convert_checkpoint(*files, config=c) for c in (preset(part), part))
        assert by_config.config == by_name.config
        jax.tree.map(np.testing.assert_array_equal, by_config.params, by_name.params)


def test_whole_model_preset_names_take_the_parts_the_files_hold(fixtures):
    """A whole-model preset name gives the structure of every part; the result holds the parts
    the files hold (the fixtures are the tiny presets' sizes, as the files' hps say)."""
    vq, top = fixtures / "vqvae.pth.tar", fixtures / "prior_5b_lyrics_level2.pth.tar"
    jb = convert_checkpoint(vq, top, config="tiny_5b_lyrics")
    assert jb.config.vqvae == preset("tiny_vqvae") and jb.config.priors == (preset("tiny_5b_lyrics"),)
    reference = convert_checkpoint(vq, top)  # the files' own hps
    for path, value in flatten(reference.params).items():
        np.testing.assert_array_equal(np.asarray(flatten(jb.params)[path]), np.asarray(value))

    ups = [fixtures / "upsampler_level1.pth.tar", fixtures / "upsampler_level0.pth.tar"]
    jb = convert_checkpoint(*ups, config="tiny_5b")  # priors alone: the preset supplies the VQ-VAE's fields
    assert jb.config.vqvae is None and jb.config.priors == (preset("tiny_upsampler_level_0"), preset("tiny_upsampler_level_1"))


def test_prior_without_a_level_is_found_by_its_tensor_names(fixtures, tmp_path):
    ckpt = torch.load(fixtures / "prior_5b_level2.pth.tar", weights_only=True)
    path = _saved(tmp_path, {"model": ckpt["model"]}, "top.pth.tar")  # no hps
    assert convert_checkpoint(path, config="tiny_5b").config.priors == (preset("tiny_5b"),)
    up = torch.load(fixtures / "upsampler_level1.pth.tar", weights_only=True)
    path = _saved(tmp_path, {"model": up["model"]}, "up.pth.tar")  # both upsamplers have its names
    with pytest.raises(ConversionError, match=r"up.pth.tar: cannot tell which prior.*no level.*'upsampler_level_1'"):
        convert_checkpoint(path, config="tiny_5b")
    assert convert_checkpoint(path, config="tiny_upsampler_level_1").config.priors == (preset("tiny_upsampler_level_1"),)
    level_0 = fixtures / "upsampler_level0.pth.tar"  # the example was the config the user gave
    with pytest.raises(ConversionError, match=r"\(its hps say level 0; the config has levels \[1\]\); pass config= the preset of that prior alone, e.g. 'upsampler_level_0'$"):
        convert_checkpoint(level_0, config="tiny_upsampler_level_1")
    with pytest.raises(ConversionError, match=r"\(its hps say level 0; the config has no prior\)"):
        convert_checkpoint(level_0, config="tiny_vqvae")


@pytest.mark.parametrize("below", ["", "sub"])
def test_cli_convert_onto_a_file_is_a_usage_error(fixtures, tmp_path, capsys, below):
    """`-o` naming a file, or a folder below a file, is refused before anything is read."""
    taken = tmp_path / "taken"
    taken.write_text("not a checkpoint")
    with pytest.raises(SystemExit) as e:
        main(["convert", str(fixtures / "vqvae.pth.tar"), "-o", str(taken / below)])
    assert e.value.code == 2
    assert re.search(rf"-o/--out: .*{re.escape(str(taken))} is a file; give a folder", capsys.readouterr().err)
    assert taken.read_text() == "not a checkpoint"


def test_cli_convert_names_its_flag_not_the_argument(fixtures, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["convert", str(fixtures / "prior_5b_level2.pth.tar"), "-o", str(tmp_path / "out")])
    assert e.value.code == 2
    assert "Convert it together with its vqvae.pth.tar, or pass --config a preset name such as '5b_lyrics'" in capsys.readouterr().err


def test_cli_convert_of_a_bad_file_exits_with_the_message(tmp_path, capsys):
    """One line and status 2, as every command's errors (it exited 1, without "error:")."""
    with pytest.raises(SystemExit) as e:
        main(["convert", str(_written(tmp_path, b"")), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("jukebox-jax convert: error: ") and "empty file" in err
    assert not (tmp_path / "out").exists()


def test_cli_convert_that_cannot_write_exits_with_the_message(fixtures, tmp_path, monkeypatch, capsys):
    def full_disk(folder, params):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("jukebox_jax.checkpoint._write_params", full_disk)
    with pytest.raises(SystemExit) as e:
        main(["convert", str(fixtures / "vqvae.pth.tar"), "-o", str(tmp_path / "out")])
    out = re.escape(str(tmp_path / "out"))
    assert e.value.code == 2
    assert re.fullmatch(rf"jukebox-jax convert: error: cannot write the checkpoint {out} \(.*No space left on device\).*\n", capsys.readouterr().err)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".partial-*"))


def test_cli_convert_onto_a_foreign_folder_is_refused_before_converting(fixtures, tmp_path, monkeypatch, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    monkeypatch.setattr("convert.convert_checkpoint", lambda *a, **k: pytest.fail("converted before checking -o"))
    with pytest.raises(SystemExit) as e:
        main(["convert", str(fixtures / "vqvae.pth.tar"), "-o", str(tmp_path / "mine")])
    assert e.value.code == 2 and "refusing to save over" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


# ----------------------------------------------------------------------------------------
# Fuzz: corrupted bytes give a clear error or exactly the uncorrupted weights


@pytest.fixture(scope="module")
def pristine(fixtures) -> tuple[bytes, dict]:
    data = (fixtures / "vqvae.pth.tar").read_bytes()
    return data, {k: np.asarray(v) for k, v in flatten(convert_checkpoint(fixtures / "vqvae.pth.tar").params).items()}


def _corruptions(size: int) -> st.SearchStrategy:
    """(position, new byte) anywhere, in the first member's header and pickle, or in the central
    directory at the end; or a truncation."""
    position = st.one_of(st.integers(0, size - 1), st.integers(0, 400), st.integers(max(0, size - 3000), size - 1))
    flip = st.tuples(st.just("flip"), position, st.integers(0, 255))
    return st.one_of(flip, st.tuples(st.just("truncate"), st.integers(0, size - 1), st.just(0)))


def _corrupt(data: bytes, kind: str, position: int, value: int) -> bytes:
    if kind == "truncate":
        return data[:position]
    return data[:position] + bytes([value]) + data[position + 1 :]


def _assert_error_or_same(path: Path, want: dict) -> str:
    """Converts `path`: "refused" on a ConversionError, else "converted", the weights being `want`."""
    try:
        jb = convert_checkpoint(path)
    except ConversionError:
        return "refused"
    got = flatten(jb.params)
    assert got.keys() == want.keys()
    for k, v in got.items():
        np.testing.assert_array_equal(np.asarray(v), want[k], err_msg="/".join(k))
    return "converted"


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_corrupted_pth_tar_is_an_error_or_the_same_weights(pristine, data):
    original, want = pristine
    kind, position, value = data.draw(_corruptions(len(original)))
    with tempfile.TemporaryDirectory() as tmp:
        path = _written(Path(tmp), _corrupt(original, kind, position, value))
        event(_assert_error_or_same(path, want))


@pytest.fixture(scope="module")
def hf_pristine(tmp_path_factory) -> tuple[dict[str, bytes], dict]:
    """A tiny HF VQ-VAE saved both ways (pytorch_model.bin, model.safetensors): its files' bytes
    and its converted weights."""
    from hf_reference import tiny_hf_vqvae

    model = tiny_hf_vqvae(preset("tiny_vqvae"), seed=3)
    files = {}
    for safe in (False, True):
        d = tmp_path_factory.mktemp("hf")
        model.save_pretrained(d, safe_serialization=safe)
        files |= {p.name: p.read_bytes() for p in d.iterdir()}
    return files, {k: np.asarray(v) for k, v in flatten(convert_checkpoint(d).params).items()}


def test_hf_directory_with_a_whole_model_preset_name(hf_pristine, tmp_path):
    files, want = hf_pristine
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes(files[name])
    jb = convert_checkpoint(tmp_path, config="tiny_5b")  # a standalone VQ-VAE: that part of the model
    assert jb.config.vqvae == preset("tiny_vqvae") and jb.config.priors == ()
    assert _assert_error_or_same(tmp_path, want) == "converted"
    with pytest.raises(ConversionError, match=rf"^{tmp_path} holds the VQ-VAE; the config gives priors.0 \(level 2\): pass config= of every part it holds"):
        convert_checkpoint(tmp_path, config=preset("tiny_5b"))  # it named each of the VQ-VAE's tensors "unexpected"


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_corrupted_hf_directory_is_an_error_or_the_same_weights(hf_pristine, data):
    """config.json anywhere, pytorch_model.bin anywhere (CRC-checked), model.safetensors in its
    header only: safetensors carries no checksum, so a changed data byte cannot be detected."""
    files, want = hf_pristine
    weights = data.draw(st.sampled_from(["pytorch_model.bin", "model.safetensors"]))
    target = data.draw(st.sampled_from(["config.json", weights]))
    size = len(files[target])
    if target == "model.safetensors":
        size = 8 + int.from_bytes(files[target][:8], "little")
    kind, position, value = data.draw(_corruptions(size))
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("config.json", weights):
            _written(Path(tmp), _corrupt(files[name], kind, position, value) if name == target else files[name], name)
        event(_assert_error_or_same(Path(tmp), want))


_HPS_VALUES = st.sampled_from(
    [None, True, False, 0, -1, 1, 3, 10**6, 0.5, -0.5, float("nan"), float("inf"), "x", [], [0, 1], [2, 2, 2], [-1, 2, 2], {}]
)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_odd_hps_values_are_an_error_or_a_finite_model(fixtures, data):
    """One or two hps fields of a VQ-VAE or an upsampler set to odd values: a ConversionError,
    or a model of finite weights (fields that steer only training change nothing) whose config
    saves and loads (a switch given as None or 0/1 was kept so, and `load` refused the saved model)."""
    stem = data.draw(st.sampled_from(["vqvae", "upsampler_level1"]))
    ckpt = torch.load(fixtures / f"{stem}.pth.tar", weights_only=True)
    fields = data.draw(st.dictionaries(st.sampled_from(sorted(ckpt["hps"])), _HPS_VALUES, min_size=1, max_size=2))
    ckpt["hps"] = {**ckpt["hps"], **fields}
    with tempfile.TemporaryDirectory() as tmp:
        path = _saved(Path(tmp), ckpt, f"{stem}.pth.tar")
        try:
            jb = convert_checkpoint(*([] if stem == "vqvae" else [fixtures / "vqvae.pth.tar"]), path)
        except ConversionError:
            return
    assert all(np.isfinite(np.asarray(v)).all() for v in flatten(jb.params).values())
    assert JukeboxConfig.from_dict(json.loads(json.dumps(jb.config.to_dict()))) == jb.config


def test_switches_given_as_none_or_0_1_are_bools(fixtures, tmp_path):
    """The original's hps hold switches as None or 0/1 too: converted as bools, so the model
    saves and loads (a None `zero_out` was kept and `load` refused it)."""
    ckpt = torch.load(fixtures / "upsampler_level1.pth.tar", weights_only=True)
    path = _saved(tmp_path, {**ckpt, "hps": {**ckpt["hps"], "zero_out": None, "cond_res_scale": 1}}, "upsampler_level1.pth.tar")
    jb = convert_checkpoint(fixtures / "vqvae.pth.tar", path)
    cfg = jb.config.prior(1)
    assert (cfg.transformer.zero_out, cfg.conditioner.res_scale) == (False, True)
    jb.save(tmp_path / "model")
    assert Jukebox.load(tmp_path / "model").config == jb.config


@pytest.mark.parametrize(
    "fields, message",
    [
        *[({"level": v}, f"its hps say level={v!r}, not an integer level") for v in ([], "1", 1.0, True)],
        ({"use_tokens": True}, "n_tokens=0 with lyrics SEPARATE_ENCODER: a prior has lyric tokens exactly when it has lyrics"),
        ({"attn_order": 2, "blocks": None}, "attn_order 2 has BLOCK, PREV_BLOCK, TRANSPOSE_BLOCK layers, which need blocks"),
    ],
)
def test_odd_hps_found_by_the_test_above_are_named(fixtures, tmp_path, fields, message):
    """Cases the test above drew: a list `level` was a TypeError (unhashable) in the check that
    two files hold different levels; lyrics without lyric tokens, and block-sparse layers
    without blocks, divided by None when the model was built."""
    ckpt = torch.load(fixtures / "upsampler_level1.pth.tar", weights_only=True)
    path = _saved(tmp_path, {**ckpt, "hps": {**ckpt["hps"], **fields}}, "upsampler_level1.pth.tar")
    with pytest.raises(ConversionError, match=re.escape(message)) as e:
        convert_checkpoint(fixtures / "vqvae.pth.tar", path)
    assert str(e.value).startswith(str(path))


def test_cli_convert_without_torch_says_what_to_install(fixtures, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "convert", None)  # `from convert import ...` raises ImportError
    with pytest.raises(SystemExit) as e:
        main(["convert", str(fixtures / "vqvae.pth.tar"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err  # one line: the arguments were fine, so no usage
    assert e.value.code == 2 and err.startswith("jukebox-jax convert: error: converting needs PyTorch: pip install torch==2.13.0 (its CPU wheel")
