"""The converter's strictness and formats: every missing, unexpected and mis-shaped tensor is
named; code-running pickles are refused; fp16, `module.` prefixes, safetensors and sharded
HF directories load; our param shapes for the released VQ-VAE match the reference's."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from convert import ConversionError, convert_checkpoint
from convert.table import vqvae_rows
from jukebox_jax.config import JukeboxConfig, preset
from jukebox_jax.params import abstract_params, flatten


@pytest.fixture
def original(fixtures):
    return torch.load(fixtures / "vqvae.pth.tar", weights_only=True)


def _save(ckpt, tmp_path: Path, name="vqvae.pth.tar") -> Path:
    torch.save(ckpt, tmp_path / name)
    return tmp_path / name


def test_missing_extra_and_misshaped_are_all_named(original, tmp_path):
    sd = original["model"]
    del sd["decoders.2.out.bias"]
    sd["bottleneck.level_blocks.0.k_sum"] = torch.zeros(64, 16)
    sd["encoders.1.level_blocks.0.model.0.0.weight"] = torch.zeros(16, 1, 5)
    with pytest.raises(ConversionError) as e:
        convert_checkpoint(_save(original, tmp_path))
    msg = str(e.value)
    assert re.search(r"1 missing:\s+decoders.2.out.bias", msg)
    assert re.search(r"1 unexpected:\s+bottleneck.level_blocks.0.k_sum", msg)
    assert re.search(r"1 mis-shaped:\s+encoders.1.level_blocks.0.model.0.0.weight: \(16, 1, 5\)", msg)


@pytest.mark.parametrize("mutation", ["missing", "extra", "shape"])
def test_each_defect_alone_is_an_error(original, tmp_path, mutation):
    sd = original["model"]
    key = "bottleneck.level_blocks.1.k"
    if mutation == "missing":
        del sd[key]
    elif mutation == "extra":
        sd["prior.x_emb.weight"] = torch.zeros(3, 3)
        key = "prior.x_emb.weight"
    else:
        sd[key] = torch.zeros(65, 16)
    with pytest.raises(ConversionError, match=re.escape(key)):
        convert_checkpoint(_save(original, tmp_path))


def test_not_a_checkpoint(tmp_path):
    path = _save({"weights": torch.zeros(3)}, tmp_path)
    with pytest.raises(ConversionError, match="not an original Jukebox checkpoint"):
        convert_checkpoint(path)
    with pytest.raises(ConversionError, match="no such file"):
        convert_checkpoint(tmp_path / "absent.pth.tar")


def test_prior_without_its_vqvae_is_an_error(fixtures):
    with pytest.raises(ConversionError, match="vqvae.pth.tar"):
        convert_checkpoint(fixtures / "prior_5b_level2.pth.tar")


def test_module_prefix_fp16_and_preset_config(original, tmp_path, fixtures):
    """DDP's `module.` prefix is stripped and fp16 tensors are upcast; a preset name gives the
    structure when the file's hps are absent."""
    ref = convert_checkpoint(fixtures / "vqvae.pth.tar")
    original["model"] = {f"module.{k}": v.half() for k, v in original["model"].items()}
    original["hps"] = {}
    jb = convert_checkpoint(_save(original, tmp_path), config="tiny_vqvae")
    for path, value in flatten(jb.params).items():
        assert value.dtype == np.float32
        want = np.asarray(flatten(ref.params)[path]).astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(np.asarray(value), want)
    with pytest.raises(ConversionError, match="unknown"):
        convert_checkpoint(_save(original, tmp_path), config="no_such_preset")


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
def test_sharded_hf_directory(tmp_path, safe):
    from hf_reference import tiny_hf_vqvae

    cfg = preset("tiny_vqvae")
    model = tiny_hf_vqvae(cfg, seed=5)
    model.save_pretrained(tmp_path, max_shard_size="100KB", safe_serialization=safe)
    assert len(list(tmp_path.glob("*.safetensors" if safe else "*.bin"))) > 1
    jb = convert_checkpoint(tmp_path)
    sd = model.state_dict()
    for row in vqvae_rows(cfg, hf_prefix=""):
        want = sd[row.hf].numpy()
        want = np.transpose(want, row.perm) if row.perm else want
        np.testing.assert_array_equal(np.asarray(flatten(jb.params)[row.path]), want)


def test_hf_directory_with_a_missing_shard(tmp_path):
    from hf_reference import tiny_hf_vqvae

    tiny_hf_vqvae(preset("tiny_vqvae"), seed=5).save_pretrained(tmp_path, max_shard_size="100KB")
    next(iter(sorted(tmp_path.glob("*.safetensors")))).unlink()
    with pytest.raises(ConversionError, match="missing"):
        convert_checkpoint(tmp_path)


def test_released_vqvae_shapes_match_the_reference_on_meta():
    """`jax.eval_shape` of our params for the released VQ-VAE equals the HF reference's
    state-dict shapes built on torch's meta device, mapped through the name table."""
    from hf_reference import hf_vqvae_config
    from transformers import JukeboxVQVAE

    cfg = preset("vqvae")
    with torch.device("meta"):
        sd = JukeboxVQVAE(hf_vqvae_config(cfg)).state_dict()
    rows = vqvae_rows(cfg, hf_prefix="")
    assert {r.hf for r in rows} == set(sd)
    ours = {p: tuple(s.shape) for p, s in flatten(abstract_params(JukeboxConfig(vqvae=cfg))).items()}
    theirs = {r.path: r.our_shape(tuple(sd[r.hf].shape)) for r in rows}
    assert ours == theirs
    n_params = sum(int(np.prod(s)) for s in ours.values())
    assert 1.8e6 < n_params < 1.95e6  # REFERENCE.md: 1.88 M


def test_whole_model_from_original_files(fixtures):
    """A VQ-VAE and three prior files, in any order, give one model with every level."""
    files = [fixtures / f for f in ("upsampler_level0.pth.tar", "prior_5b_level2.pth.tar", "vqvae.pth.tar", "upsampler_level1.pth.tar")]
    jb = convert_checkpoint(*files)
    assert [p.level for p in jb.config.priors] == [0, 1, 2]
    assert set(jb.params) == {"vqvae", "prior_level_0", "prior_level_1", "prior_level_2"}
    with pytest.raises(ConversionError, match="prior_5b_level2.pth.tar, .*prior_1b_lyrics_level2.pth.tar: each holds a prior of level 2"):
        convert_checkpoint(fixtures / "vqvae.pth.tar", fixtures / "prior_5b_level2.pth.tar", fixtures / "prior_1b_lyrics_level2.pth.tar")


def test_prior_alone_with_a_preset(fixtures):
    jb = convert_checkpoint(fixtures / "prior_5b_lyrics_level2.pth.tar", config="tiny_5b_lyrics")
    assert jb.config.vqvae is None and jb.config.prior(2) == preset("tiny_5b_lyrics")
    # fp16 Conv1D weights of the 5b files are upcast, not reinterpreted
    sd = torch.load(fixtures / "prior_5b_lyrics_level2.pth.tar", weights_only=True)["model"]
    w = sd["prior.transformer._attn_mods.0.mlp.c_fc.w"]
    assert w.dtype == torch.float16
    ours = jb.params["prior_level_2"]["transformer"]["layers"]["mlp"]["c_fc_kernel"][0]
    np.testing.assert_array_equal(np.asarray(ours), w.float().numpy())


def test_prior_file_defects_are_named(fixtures, tmp_path):
    ckpt = torch.load(fixtures / "prior_1b_lyrics_level2.pth.tar", weights_only=True)
    sd = ckpt["model"]
    del sd["prior.transformer._attn_mods.4.attn.c_proj.b"]
    sd["prior.transformer._attn_mods.15.attn.c_attn.w"] = torch.zeros(64, 3 * 16 + 1)
    path = _save(ckpt, tmp_path, "prior_level_2.pth.tar")
    with pytest.raises(ConversionError) as e:
        convert_checkpoint(fixtures / "vqvae.pth.tar", path)
    assert "prior.transformer._attn_mods.4.attn.c_proj.b" in str(e.value)
    assert "prior.transformer._attn_mods.15.attn.c_attn.w: (64, 49)" in str(e.value)


def test_tied_copy_must_match(fixtures, tmp_path):
    """1b_lyrics ties its output head to the token embedding; both keys are in the file."""
    ckpt = torch.load(fixtures / "prior_1b_lyrics_level2.pth.tar", weights_only=True)
    ckpt["model"]["prior.x_out.weight"] = ckpt["model"]["prior.x_out.weight"] + 1
    path = _save(ckpt, tmp_path, "prior_level_2.pth.tar")
    with pytest.raises(ConversionError, match=r"prior.x_out.weight should be the same tensor"):
        convert_checkpoint(fixtures / "vqvae.pth.tar", path)


def test_hf_model_made_with_from_configs(tmp_path):
    """A model built the way transformers documents, `JukeboxConfig.from_configs(prior_configs,
    vqvae_config)`, then `save_pretrained`: HF stores the given VQ-VAE as `vqvae_config_dict` and
    builds its VQ-VAE from `vqvae_config`, left at HF's defaults (the released structure). The
    directory converts to what HF built, every tensor equal, with a warning that the two differ."""
    from hf_reference import redraw_jukebox
    from transformers import JukeboxConfig as HFJukeboxConfig
    from transformers import JukeboxModel, JukeboxPriorConfig, JukeboxVQVAEConfig

    from convert.table_prior import prior_rows

    common = dict(attention_pattern="raw_column_previous_row_attention", is_encoder_decoder=False, nb_relevant_lyric_tokens=0,
                  metadata_dims=[12, 30], mask=True)  # fmt: skip
    priors = [
        JukeboxPriorConfig(hidden_size=32, num_layers=3, n_heads=2, blocks=4, n_ctx=32, merged_decoder=True, **common),
        *[
            JukeboxPriorConfig(hidden_size=16, num_layers=2, n_heads=1, blocks=2, n_ctx=16, merged_decoder=False, res_conv_width=8,
                               res_conv_depth=2, res_dilation_growth_rate=3, conv_res_scale=level == 1, **common)
            for level in (1, 0)
        ],
    ]  # fmt: skip
    given = JukeboxVQVAEConfig(res_conv_width=16, res_conv_depth=3, embed_dim=16, nb_discrete_codes=64)  # not what HF builds
    model = JukeboxModel(HFJukeboxConfig.from_configs(priors, given)).eval()
    assert model.vqvae.config.nb_discrete_codes == 2048  # HF built its default VQ-VAE, not `given`
    redraw_jukebox(model, seed=7)
    model.save_pretrained(tmp_path, safe_serialization=False)  # tied heads rule out safetensors
    assert "vqvae_config_dict" in (tmp_path / "config.json").read_text()

    with pytest.warns(UserWarning, match=r"nb_discrete_codes=2048 \(vqvae_config_dict: 64\)"):
        jb = convert_checkpoint(tmp_path)
    assert jb.config.vqvae == preset("vqvae")
    assert [(p.level, p.n_ctx, p.transformer.width, p.l_bins) for p in jb.config.priors] == [(0, 16, 16, 2048), (1, 16, 16, 2048), (2, 32, 32, 2048)]
    sd, ours = model.state_dict(), flatten(jb.params)
    rows = vqvae_rows(jb.config.vqvae) + [r for p in jb.config.priors for r in prior_rows(p, hf_index=2 - p.level)]
    assert {r.hf for r in rows} == set(sd)
    for row in rows:
        got = np.asarray(ours[row.path])
        np.testing.assert_array_equal(got if row.index is None else got[row.index], row.transform(sd[row.hf].numpy()), err_msg=row.hf)
