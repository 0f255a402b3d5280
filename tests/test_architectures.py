"""The architecture family (vae_core/architectures.py), entry by entry: the modules each builds, the forward pass
the export translates, the image shapes each accepts (conv: any size from 8x8, padded and cropped back, the loss on
the real pixels only), today's conv weights layout kept for saved runs, and an unknown name refused with the known
ones."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from vae_core.architectures import ARCHS, architecture
from vae_core.config import ModelConfig
from vae_core.jobs import build_model
from vae_core.objective import loss_terms

SHAPES = {  # an image shape each architecture takes, and one it refuses (None: it takes any)
    "mlp": ((3, 5, 7), None),
    "conv": ((3, 28, 32), (1, 7, 8)),
    "mlp-conv": ((3, 23, 28), (1, 28, 7)),
}
ODD_SHAPES = [(1, 105, 105), (1, 23, 28), (3, 28, 23), (1, 8, 8), (3, 9, 13)]  # sides not divisible by 4


@pytest.mark.parametrize("name", ARCHS)
def test_each_architecture_maps_images_to_a_posterior_and_back(name):
    shape, _ = SHAPES[name]
    model = build_model(ModelConfig(input_shape=shape, latent_dim=3, hidden_sizes=(16,), arch=name), seed=0)
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(1))
    mu, logvar = model.encoder(x)
    assert mu.shape == logvar.shape == (4, 3)
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        x_params = model.decoder(z)
        assert x_params.shape == (6, *shape)
        torch.testing.assert_close(model.decoder.as_sequential()(z), x_params, rtol=0, atol=0)  # what the export runs
        h = model.encoder.as_sequential()(x)  # the features and heads the export translates give the encoder's outputs
        torch.testing.assert_close((model.encoder.mu(h), model.encoder.logvar(h)), (mu, logvar), rtol=0, atol=0)


@pytest.mark.parametrize("name", ARCHS)
def test_each_architecture_checks_the_image_shape_in_the_config(name):
    good, bad = SHAPES[name]
    architecture(name).check_shape(good)
    ModelConfig(input_shape=good, arch=name)
    if bad is not None:
        with pytest.raises(ValueError, match=f"arch='{name}' needs"):
            ModelConfig(input_shape=bad, arch=name)


@pytest.mark.parametrize("name", ["conv", "mlp-conv"])
def test_conv_refuses_only_images_under_8x8_with_the_rule(name):
    for h, w in ((7, 8), (8, 7), (5, 5), (1, 105)):
        with pytest.raises(ValueError, match=f"arch='{name}' needs images of at least 8x8, got {h}x{w}"):
            architecture(name).check_shape((1, h, w))


@pytest.mark.parametrize("shape", ODD_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", ["conv", "mlp-conv"])
def test_conv_takes_any_size_and_decodes_the_image_shape(name, shape):
    model = build_model(ModelConfig(input_shape=shape, latent_dim=3, hidden_sizes=(16,), arch=name), seed=0)
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(1))
    out = model(x, generator=torch.Generator().manual_seed(2))
    assert out.mu.shape == (2, 3) and out.x_params.shape == (2, *shape)
    if name == "mlp-conv":
        return  # an MLP encoder reads the image as it is; the decoder's crop is checked with conv's padding below
    padded = model.encoder.pad(x)  # zeros around the image, to sides divisible by 4, the image itself unchanged
    assert padded.shape[-2] % 4 == 0 and padded.shape[-1] % 4 == 0 and padded.shape[-2] - shape[1] < 4
    crop = model.decoder.crop
    window = (slice(None), slice(None), slice(crop.top, crop.top + shape[1]), slice(crop.left, crop.left + shape[2]))
    assert torch.equal(padded[window], x)
    border = padded.clone()
    border[window] = 0
    assert not border.any()  # the border is zeros


@pytest.mark.parametrize("likelihood_name", ["bernoulli", "gaussian-learned"])
@pytest.mark.parametrize("name", ["conv", "mlp-conv"])
def test_the_conv_loss_sees_the_real_pixels_only(name, likelihood_name):
    """The -log p(x|z) of a padded conv model is the likelihood's sum over the cropped output, by hand: nothing of
    the padding's border enters the loss."""
    shape = (1, 23, 28)
    model = build_model(ModelConfig(input_shape=shape, latent_dim=3, hidden_sizes=(16,), arch=name,
                                    likelihood=likelihood_name), seed=0)
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(1))
    out = model(x, generator=torch.Generator().manual_seed(2))
    dec = model.decoder
    full = dec.deconv(dec.dense(out.z).view(-1, *dec.grid))  # (B, 1, 24, 28): the padded canvas
    assert full.shape == (4, 1, 24, 28)
    real = full[:, :, dec.crop.top:dec.crop.top + 23, dec.crop.left:dec.crop.left + 28]
    if likelihood_name == "bernoulli":
        by_hand = F.binary_cross_entropy_with_logits(real, x, reduction="sum") / len(x)
    else:
        sigma = model.log_sigma.exp()
        by_hand = (0.5 * ((x - real) / sigma) ** 2 + model.log_sigma + 0.5 * math.log(2 * math.pi)).sum() / len(x)
    torch.testing.assert_close(loss_terms(model, x, out).recon, by_hand)
    assert x.numel() / len(x) == 23 * 28  # per image: the real pixels' count, not the padded canvas's


def test_todays_conv_keeps_its_weights_layout_for_saved_runs():
    """A conv run saved before padding existed (28x28, 32x32: sides divisible by 4) loads into the same parameter
    names and shapes: the padding and the crop have no weights, and add no op to their export. Such a run reads
    pixel_bias False (tests/test_architectures.py::test_a_new_conv_decoder_ends_with_a_bias_per_pixel)."""
    model = build_model(ModelConfig(input_shape=(1, 28, 28), latent_dim=4, hidden_sizes=(32,), arch="conv",
                                    pixel_bias=False), 0)
    layout = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    assert layout == {
        "encoder.body.0.weight": (32, 1, 4, 4), "encoder.body.0.bias": (32,),
        "encoder.body.2.weight": (64, 32, 4, 4), "encoder.body.2.bias": (64,),
        "encoder.body.5.weight": (32, 3136), "encoder.body.5.bias": (32,),
        "encoder.mu.weight": (4, 32), "encoder.mu.bias": (4,), "encoder.logvar.weight": (4, 32),
        "encoder.logvar.bias": (4,),
        "decoder.dense.0.weight": (32, 4), "decoder.dense.0.bias": (32,),
        "decoder.dense.2.weight": (3136, 32), "decoder.dense.2.bias": (3136,),
        "decoder.deconv.0.weight": (64, 32, 4, 4), "decoder.deconv.0.bias": (32,),
        "decoder.deconv.2.weight": (32, 1, 4, 4), "decoder.deconv.2.bias": (1,),
    }


@pytest.mark.parametrize("arch", ["conv", "mlp-conv"])
def test_a_new_conv_decoder_ends_with_a_bias_per_pixel(arch, tmp_path):
    """A new conv model adds one bias per output value after the crop (the MLP's last layer has one per pixel); a
    run saved before it (no pixel_bias in config.json, no such tensor) loads and decodes as it did."""
    from vae_core.config import RunConfig
    from vae_core.runs import load_run, save_run

    config = ModelConfig(input_shape=(3, 23, 28), latent_dim=4, hidden_sizes=(32,), arch=arch)
    model = build_model(config, 0)
    assert tuple(model.state_dict()["decoder.pixel.bias"].shape) == (3, 23, 28)
    with torch.no_grad():
        model.decoder.pixel.bias.normal_()
        z = torch.randn(5, 4)
        without = model.decoder.crop(model.decoder.deconv(model.decoder.dense(z).view(-1, *model.decoder.grid)))
        assert torch.allclose(model.decode(z), without + model.decoder.pixel.bias)
    old_config = ModelConfig(input_shape=(3, 23, 28), latent_dim=4, hidden_sizes=(32,), arch=arch, pixel_bias=False)
    old = build_model(old_config, 0)
    assert not any("pixel" in name for name in old.state_dict())
    save_run(tmp_path / "old", old, RunConfig(model=old_config))
    path = tmp_path / "old" / "config.json"
    saved = json.loads(path.read_text())
    del saved["model"]["pixel_bias"]  # as written before the setting existed
    path.write_text(json.dumps(saved))
    run = load_run(tmp_path / "old")
    assert run.config.model.pixel_bias is False
    with torch.no_grad():
        assert torch.equal(run.model.decode(z), old.decode(z))


def test_an_unknown_architecture_is_refused_with_the_known_names():
    for bad in ("transformer", "MLP", None):
        with pytest.raises(ValueError, match="arch must be one of") as info:
            architecture(bad)
        assert all(repr(name) in str(info.value) for name in ARCHS)
    with pytest.raises(ValueError, match="'conv'"):
        ModelConfig(arch="transformer")  # the config asks the same table

