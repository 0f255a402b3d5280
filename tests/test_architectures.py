"""The architecture family (vae_core/architectures.py), entry by entry: the modules each builds, the forward pass
the export translates, the image shapes each accepts, and an unknown name refused with the known ones."""
from __future__ import annotations

import pytest
import torch

from vae_core.architectures import ARCHS, architecture
from vae_core.config import ModelConfig
from vae_core.jobs import build_model

SHAPES = {  # an image shape each architecture takes, and one it refuses (None: it takes any)
    "mlp": ((3, 5, 7), None),
    "conv": ((3, 28, 32), (1, 8, 8)),
}


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
        h = model.encoder.body(x)  # the body and heads the export translates give the encoder's outputs
        torch.testing.assert_close((model.encoder.mu(h), model.encoder.logvar(h)), (mu, logvar), rtol=0, atol=0)


@pytest.mark.parametrize("name", ARCHS)
def test_each_architecture_checks_the_image_shape_in_the_config(name):
    good, bad = SHAPES[name]
    architecture(name).check_shape(good)
    ModelConfig(input_shape=good, arch=name)
    if bad is not None:
        with pytest.raises(ValueError, match=f"arch='{name}' needs"):
            ModelConfig(input_shape=bad, arch=name)


def test_conv_refuses_small_or_odd_images_with_the_rule():
    for h, w in ((8, 8), (24, 28), (30, 28), (28, 26)):
        with pytest.raises(ValueError, match=f"at least 28x28 with sides divisible by 4, got {h}x{w}"):
            architecture("conv").check_shape((1, h, w))


def test_an_unknown_architecture_is_refused_with_the_known_names():
    for bad in ("transformer", "MLP", None):
        with pytest.raises(ValueError, match="arch must be one of") as info:
            architecture(bad)
        assert all(repr(name) in str(info.value) for name in ARCHS)
    with pytest.raises(ValueError, match="'conv'"):
        ModelConfig(arch="transformer")  # the config asks the same table

