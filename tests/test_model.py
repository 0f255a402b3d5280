"""The VAE's modules, its config, and its round trip through a run folder (safetensors + JSON, never pickle)."""
from __future__ import annotations

import torch
import pytest

from vae_core.config import ModelConfig, RunConfig, TrainConfig, from_dict, to_dict
from vae_core.model import VAE
from vae_core.runs import load_run, save_run
from vae_core.jobs import build_model

CONFIGS = [
    ModelConfig(input_shape=(1, 8, 8), latent_dim=3, hidden_sizes=(32, 16)),
    ModelConfig(input_shape=(3, 28, 28), latent_dim=4, hidden_sizes=(32,), arch="conv", likelihood="gaussian"),
    ModelConfig(input_shape=(1, 32, 32), latent_dim=2, hidden_sizes=(16,), arch="conv", likelihood="gaussian-learned"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.arch}-{c.likelihood}")
def test_forward_shapes_and_decoded_images_in_unit_range(config):
    model = build_model(config, seed=0)
    x = torch.rand(5, *config.input_shape, generator=torch.Generator().manual_seed(0))
    out = model(x, generator=torch.Generator().manual_seed(1))
    assert out.mu.shape == out.logvar.shape == out.z.shape == (5, config.latent_dim)
    assert out.x_params.shape == (5, *config.input_shape)
    images = model.decode_mean(torch.randn(7, config.latent_dim) * 5)
    assert images.shape == (7, *config.input_shape) and images.min() >= 0 and images.max() <= 1


def test_decoder_ends_in_a_linear_layer_not_a_relu():
    """Bernoulli logits must be able to go negative (the seed's final ReLU could not say 'this pixel is black')."""
    model = build_model(CONFIGS[0], seed=0)
    assert isinstance(model.decoder.net[-1], torch.nn.Linear)
    logits = model.decode(torch.randn(256, 3, generator=torch.Generator().manual_seed(2)))
    assert (logits < 0).any() and (logits > 0).any()


def test_reparameterization_is_seeded_by_a_torch_generator_and_follows_the_formula():
    mu, logvar = torch.zeros(4, 3) + 1.5, torch.zeros(4, 3) - 2.0
    a = VAE.reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    b = VAE.reparameterize(mu, logvar, torch.Generator().manual_seed(5))
    eps = torch.randn(4, 3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    torch.testing.assert_close(a, mu + torch.exp(0.5 * logvar) * eps)


def test_forward_with_given_noise_is_deterministic():
    model = build_model(CONFIGS[0], seed=0)
    x, eps = torch.rand(3, 1, 8, 8), torch.randn(3, 3)
    a, b = model(x, eps=eps), model(x, eps=eps)
    assert torch.equal(a.x_params, b.x_params)
    torch.testing.assert_close(a.z, a.mu + torch.exp(0.5 * a.logvar) * eps)


def test_build_model_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b, c = build_model(CONFIGS[0], 7), build_model(CONFIGS[0], 7), build_model(CONFIGS[0], 8)
    assert torch.equal(torch.random.get_rng_state(), before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_model_config_round_trips_through_json_dicts():
    config = CONFIGS[1]
    again = from_dict(ModelConfig, to_dict(config) | {"input_shape": [3, 28, 28], "hidden_sizes": [32]})
    assert again == config


@pytest.mark.parametrize("bad, message", [
    ({"arch": "transformer"}, "arch"),
    ({"likelihood": "poisson"}, "likelihood"),
    ({"latent_dim": 0}, "latent_dim"),
    ({"arch": "conv", "input_shape": (1, 7, 8)}, "8x8"),
    ({"hidden_sizes": ()}, "hidden_sizes"),
    ({"wings": 2}, "unknown keys"),
])
def test_bad_model_configs_are_refused_with_a_clear_message(bad, message):
    with pytest.raises(ValueError, match=message):
        from_dict(ModelConfig, to_dict(ModelConfig()) | bad)


# ---------------------------------------------------------------- runs on disk

@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.arch}-{c.likelihood}")
def test_save_then_load_gives_identical_decodes(tmp_path, config):
    model = build_model(config, seed=3)
    if config.likelihood == "gaussian-learned":
        with torch.no_grad():
            model.log_sigma.fill_(-2.3)  # a learned value that must survive the round trip
    save_run(tmp_path / "run", model, RunConfig(model=config, train=TrainConfig(epochs=1)))
    loaded = load_run(tmp_path / "run")
    z = torch.randn(9, config.latent_dim, generator=torch.Generator().manual_seed(4))
    x = torch.rand(2, *config.input_shape)
    with torch.no_grad():
        assert torch.equal(loaded.model.decode(z), model.decode(z))
        assert torch.equal(loaded.model.decode_mean(z), model.decode_mean(z))
        assert torch.equal(loaded.model.encode(x)[0], model.encode(x)[0])
    assert loaded.config.model == config and loaded.config.train.epochs == 1


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_pickle_checkpoints_are_refused_without_unpickling(tmp_path, suffix):
    ran = tmp_path / "ran"
    payload = tmp_path / f"model{suffix}"
    torch.save({"state": build_model(CONFIGS[0], 0).state_dict(), "trap": _Trap(ran)}, payload)
    with pytest.raises(ValueError, match="pickle"):
        load_run(payload)  # a checkpoint file named directly
    folder = tmp_path / "folder"
    folder.mkdir()
    payload.rename(folder / payload.name)
    with pytest.raises(ValueError, match="pickle"):
        load_run(folder)  # a folder that holds only model.pt / model.pth
    assert not ran.exists()  # unpickling would have created it


class _Trap:
    """Unpickling this creates a file: proof that a loader ran pickle."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))
