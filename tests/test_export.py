"""vae_core.export: the networks the browser runs, as programs; their numpy reference reproduces the torch model
(MLP and conv, Bernoulli and Gaussian, grey and RGB), the hash names the content, and what the browser cannot run
is refused by name."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from vae_core.config import ModelConfig
from vae_core.export import export_model, reference_decode, reference_encode
from vae_core.jobs import build_model

CONFIGS = {
    "mlp-bernoulli": dict(input_shape=(1, 8, 8), latent_dim=5, hidden_sizes=(32, 16)),
    "mlp-gaussian-rgb": dict(input_shape=(3, 6, 5), latent_dim=3, hidden_sizes=(24,), likelihood="gaussian"),
    "conv-bernoulli": dict(input_shape=(1, 28, 28), latent_dim=4, arch="conv", hidden_sizes=(32,)),
    "conv-gaussian-rgb": dict(input_shape=(3, 32, 32), latent_dim=6, arch="conv", hidden_sizes=(48,),
                              likelihood="gaussian-learned"),
    # sides not divisible by 4: the program pads the input and crops the output (the characters, the faces H x W)
    "conv-bernoulli-105x105": dict(input_shape=(1, 105, 105), latent_dim=3, arch="conv", hidden_sizes=(16,)),
    "conv-gaussian-rgb-23x28": dict(input_shape=(3, 23, 28), latent_dim=4, arch="conv", hidden_sizes=(24,),
                                    likelihood="gaussian"),
    "mlp-bernoulli-28x23": dict(input_shape=(1, 28, 23), latent_dim=3, hidden_sizes=(20,)),
    "mlp-conv-bernoulli-23x28": dict(input_shape=(1, 23, 28), latent_dim=3, arch="mlp-conv", hidden_sizes=(20,)),
    "mlp-conv-gaussian-rgb-28x28": dict(input_shape=(3, 28, 28), latent_dim=5, arch="mlp-conv", hidden_sizes=(24,),
                                        likelihood="gaussian-learned"),
}


def model_for(name: str):
    model = build_model(ModelConfig(**CONFIGS[name]), seed=0).eval()
    last = model.decoder.net[-1] if hasattr(model.decoder, "net") else model.decoder.deconv[-1]
    with torch.no_grad():  # push some outputs out of [0, 1] so the Gaussian clamp is exercised
        last.bias.add_(torch.linspace(-2, 2, last.bias.numel()))
    return model


@pytest.mark.parametrize("name", CONFIGS)
def test_the_exported_programs_reproduce_the_torch_model(name):
    model = model_for(name)
    exported = export_model(model)
    spec = json.loads(json.dumps(exported.spec))  # what the browser receives
    assert spec["n_floats"] * 4 == len(exported.blob) == 4 * sum(p.numel() for p in model.parameters()
                                                                 if p is not getattr(model, "log_sigma", None))
    z = torch.randn(16, model.config.latent_dim, generator=torch.Generator().manual_seed(1)) * 2
    x = torch.rand(5, *model.config.input_shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        images = model.decode_mean(z).numpy()
        mu, logvar = model.encode(x)
    np.testing.assert_allclose(reference_decode(exported, z.numpy()), images, atol=1e-5)
    got_mu, got_logvar = reference_encode(exported, x.numpy())
    np.testing.assert_allclose(got_mu, mu.numpy(), atol=1e-5)
    np.testing.assert_allclose(got_logvar, logvar.numpy(), atol=1e-5)
    assert spec["output"] == ("sigmoid" if model.config.likelihood == "bernoulli" else "clamp")


def test_conv_decoder_program_lists_its_layers_with_shapes():
    ops = export_model(model_for("conv-bernoulli")).spec["decoder"]
    assert [op["op"] for op in ops] == ["linear", "relu", "linear", "relu", "reshape", "conv_transpose2d", "relu",
                                        "conv_transpose2d", "bias"]
    assert ops[4]["shape"] == [64, 7, 7] and ops[5]["out_hw"] == [14, 14] and ops[7]["out_hw"] == [28, 28]
    assert ops[8]["shape"] == [1, 28, 28]  # a bias per output pixel (ModelConfig.pixel_bias)


def test_an_odd_sized_conv_program_pads_then_crops():
    spec = export_model(model_for("conv-gaussian-rgb-23x28")).spec
    assert spec["encoder"]["body"][0] == {"op": "pad", "channels": 3, "in_hw": [23, 28], "out_hw": [24, 28],
                                          "top": 0, "left": 0}
    assert spec["decoder"][-2] == {"op": "crop", "channels": 3, "in_hw": [24, 28], "out_hw": [23, 28],
                                   "top": 0, "left": 0}
    assert spec["decoder"][-1]["op"] == "bias" and spec["decoder"][-1]["shape"] == [3, 23, 28]  # after the crop
    body = export_model(model_for("conv-bernoulli-105x105")).spec["encoder"]["body"]
    assert body[0] == {"op": "pad", "channels": 1, "in_hw": [105, 105], "out_hw": [108, 108], "top": 1, "left": 1}


def test_the_hash_follows_the_weights():
    model = model_for("mlp-bernoulli")
    first = export_model(model).hash
    assert export_model(model).hash == first
    with torch.no_grad():
        model.decoder.net[0].weight[0, 0] += 1.0
    assert export_model(model).hash != first


@pytest.mark.parametrize("layer,message", [
    (nn.Softplus(), "Softplus"), (nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, dilation=2), "dilation")])
def test_a_layer_the_browser_cannot_run_is_refused_by_name(layer, message):
    model = model_for("conv-bernoulli")
    model.decoder.deconv[1] = layer
    with pytest.raises(ValueError, match=message):
        export_model(model)


def test_a_likelihood_whose_output_op_the_browser_lacks_is_refused(monkeypatch):
    model = model_for("mlp-bernoulli")
    monkeypatch.setattr(model.likelihood, "output_op", "softplus")  # a new likelihood's op, not yet in the runtime
    with pytest.raises(ValueError, match="softplus"):
        export_model(model)
