"""The codes kept with a run (vae_core/runs/codes_cache.py) and the block encoding behind Explore's first open
(vae_core/encoding.py): a hit gives back exactly what was encoded; new weights or new images miss; a tampered,
truncated or misshapen file is refused, removed and recomputed; the folder keeps under its cap, oldest out; the first
block is a seeded sample and the rest, encoded in the background, is torch's encoding of every image."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

from harness.wait import wait_until
from vae_core.config import ModelConfig
from vae_core.data import Dataset
from vae_core.encoding import (FIRST_BLOCK_MAX, FIRST_BLOCK_MIN, Encoding, EncodingPool, encoding_order,
                               first_block_size)
from vae_core.jobs import build_model
from vae_core.latent import reconstruction_error
from vae_core.runs.codes_cache import Codes, CodesCache, data_hash, weights_hash

N = 2600  # more than FIRST_BLOCK_MAX 8x8 images: a first block, then the rest


@pytest.fixture(scope="module")
def model():
    return build_model(ModelConfig(input_shape=(1, 8, 8), latent_dim=3, hidden_sizes=(16,)), seed=0).eval()


@pytest.fixture(scope="module")
def data() -> Dataset:
    return Dataset(np.random.default_rng(0).random((N, 1, 8, 8), dtype=np.float32), name="noise")


def torch_codes(model, images: np.ndarray) -> Codes:
    """The reference: torch's encoder on every image at once, and -log p(x|mu) from the model's likelihood."""
    with torch.no_grad():
        x = torch.as_tensor(images)
        mu, logvar = model.encode(x)
        error = -model.likelihood.log_prob(x, model.decode(mu), model.obs_log_sigma())
    return Codes(mu.numpy(), logvar.numpy(), error.numpy())


def some_codes(n: int = 10, d: int = 3, seed: int = 0) -> Codes:
    rng = np.random.default_rng(seed)
    return Codes(rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=(n, d)).astype(np.float32),
                 rng.random(n).astype(np.float32))


# --------------------------------------------------------------------------- the cache


def test_a_hit_gives_back_the_codes_that_were_kept(tmp_path):
    cache, codes = CodesCache(tmp_path), some_codes()
    path = cache.save("a" * 64, "d" * 64, codes)
    assert path.is_file() and path.parent == tmp_path
    got = cache.load("a" * 64, "d" * 64, 10, 3)
    for name in ("mu", "logvar", "recon_error"):
        np.testing.assert_array_equal(getattr(got, name), getattr(codes, name))


def test_new_weights_or_new_images_miss(tmp_path, model, data):
    cache = CodesCache(tmp_path)
    weights, images = weights_hash(model), data_hash(data.images)
    cache.save(weights, images, some_codes(N))
    assert cache.load(weights, images, N, 3) is not None
    other = build_model(model.config, seed=0).eval()
    assert weights_hash(other) == weights  # the same weights: the same hash
    with torch.no_grad():
        next(other.parameters())[0, 0] += 1e-3
    assert cache.load(weights_hash(other), images, N, 3) is None
    changed = data.images.copy()
    changed[7, 0, 3, 3] += 1 / 255
    assert data_hash(changed) != images and cache.load(weights, data_hash(changed), N, 3) is None
    assert data_hash(data.images.astype(np.float64)) != images  # same values, other bytes: other codes' key


@pytest.mark.parametrize("damage", ["truncated", "not safetensors", "wrong shape", "wrong dtype", "NaN",
                                    "extra tensor", "missing tensor"])
def test_a_damaged_file_is_refused_removed_and_recomputed(tmp_path, model, data, damage):
    cache = CodesCache(tmp_path)
    weights, images = weights_hash(model), data_hash(data.images)
    good = Encoding(model, data, cache, weights, images)
    good.encode_rest()
    path = cache.path(weights, images)
    tensors = {k: torch.from_numpy(getattr(good, k).copy()) for k in ("mu", "logvar", "recon_error")}
    if damage == "truncated":
        blob = path.read_bytes()[:-100]
    elif damage == "not safetensors":
        blob = b"\x00" * 64
    else:
        if damage == "wrong shape":
            tensors["mu"] = tensors["mu"][:-1]
        elif damage == "wrong dtype":
            tensors["logvar"] = tensors["logvar"].double()
        elif damage == "NaN":
            tensors["recon_error"][5] = float("nan")
        elif damage == "extra tensor":
            tensors["note"] = torch.zeros(1)
        else:
            del tensors["recon_error"]
        blob = st_save(tensors)
    path.write_bytes(blob)
    assert cache.load(weights, images, N, 3) is None and not path.exists()  # refused and removed
    again = Encoding(model, data, cache, weights, images)
    assert not again.from_cache and not again.complete  # recomputed: a first block, then the rest
    again.encode_rest()
    assert path.is_file() and cache.load(weights, images, N, 3) is not None  # and kept again
    np.testing.assert_array_equal(again.mu, good.mu)


def test_the_folder_keeps_under_its_cap_oldest_out(tmp_path):
    one = len(st_save({k: torch.from_numpy(getattr(some_codes(), k)) for k in ("mu", "logvar", "recon_error")}))
    cache = CodesCache(tmp_path, cap_bytes=2 * one + 10)  # two files fit, not three
    paths = []
    for i in range(4):
        paths.append(cache.save(f"{i:064d}", "d" * 64, some_codes(seed=i)))
        os.utime(paths[-1], (1_000_000 + i, 1_000_000 + i))  # write times in order, whatever the clock's resolution
        assert cache.files() == paths[-2:], f"after {i + 1} saves: the two newest kept, oldest out"
    assert sum(p.stat().st_size for p in cache.files()) <= cache.cap_bytes
    assert cache.load(f"{3:064d}", "d" * 64, 10, 3) is not None and cache.load(f"{0:064d}", "d" * 64, 10, 3) is None
    assert CodesCache(tmp_path / "small", cap_bytes=one - 1).save("a" * 64, "d" * 64, some_codes()) is None


def test_only_codes_files_are_evicted_and_never_through_a_link(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"x" * 1000)  # a run's own file, bigger than the cap
    cache = CodesCache(run, cap_bytes=10)
    cache.evict()
    assert (run / "model.safetensors").is_file()
    (tmp_path / "elsewhere").symlink_to(run)
    linked = CodesCache(tmp_path / "elsewhere")
    assert linked.save("a" * 64, "d" * 64, some_codes()) is None and linked.files() == []
    assert sorted(p.name for p in run.iterdir()) == ["model.safetensors"]


# --------------------------------------------------------------------------- encoding in blocks


def test_the_first_block_is_sized_by_pixels_within_bounds():
    assert first_block_size(1797, 64) == 1797  # the digits: all at once
    assert first_block_size(20_000, 32 * 32) == 1024
    assert first_block_size(10_000, 3 * 64 * 64) == FIRST_BLOCK_MIN
    assert first_block_size(100_000, 1) == FIRST_BLOCK_MAX
    order = encoding_order(1000, seed=0)
    assert sorted(order) == list(range(1000)) and np.array_equal(order, encoding_order(1000, seed=0))


def test_the_first_block_comes_at_once_and_the_rest_is_torchs_encoding(model, data):
    encoding = Encoding(model, data)
    k = first_block_size(N, 64)
    assert encoding.progress() == (k, N) and not encoding.complete
    first = encoding.snapshot()
    assert first.version == f"{k}:0" and not first.complete
    np.testing.assert_array_equal(first.rows, np.sort(encoding_order(N)[:k]))
    ref = torch_codes(model, data.images)
    np.testing.assert_allclose(first.mu[first.rows], ref.mu[first.rows], atol=1e-6)
    assert np.isnan(np.delete(first.mu, first.rows, axis=0)).all()  # nothing claimed for the others
    assert np.isnan(first.recon_error).all()  # errors come with the rest

    encoding.encode_rest()
    done = encoding.snapshot()
    assert done.complete and done.version == f"{N}:{N}" and len(done.rows) == N
    np.testing.assert_allclose(done.mu, ref.mu, atol=1e-6)
    np.testing.assert_allclose(done.logvar, ref.logvar, atol=1e-6)
    np.testing.assert_allclose(done.recon_error, ref.recon_error, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(done.recon_error, reconstruction_error(model, data, ref.mu), rtol=1e-5, atol=1e-4)
    again = encoding.snapshot(first.version)  # an earlier snapshot is named exactly by its version
    np.testing.assert_array_equal(again.rows, first.rows)
    np.testing.assert_array_equal(np.isnan(again.mu), np.isnan(first.mu))
    assert encoding.holds(first.version) and encoding.holds(done.version)
    fresh = Encoding(model, data)
    assert fresh.holds(first.version) and not fresh.holds(done.version) and not fresh.holds(None)
    with pytest.raises(ValueError, match="not encoded yet"):
        fresh.snapshot(done.version)


def test_the_images_are_hashed_only_where_needed(model, data, tmp_path):
    """No codes of these weights kept: a sure miss, so the first open does not hash the images; encode_rest hashes
    them once, to keep the codes; with codes of these weights kept, the constructor hashes them to look them up."""
    cache, calls = CodesCache(tmp_path), []

    def images_hash() -> str:
        calls.append(1)
        return data_hash(data.images)

    first = Encoding(model, data, cache, weights_hash(model), images_hash)
    assert calls == [] and not cache.holds(weights_hash(model))
    first.encode_rest()
    assert calls == [1] and cache.holds(weights_hash(model))
    assert cache.files()[0] == cache.path(weights_hash(model), data_hash(data.images))
    again = Encoding(model, data, cache, weights_hash(model), images_hash)
    assert calls == [1, 1] and again.from_cache


def test_the_pool_makes_each_encoding_once_and_finishes_it_off_the_callers_thread(model, data, tmp_path):
    pool, made = EncodingPool(max_entries=2), []
    cache = CodesCache(tmp_path)

    def make():
        made.append(1)
        return Encoding(model, data, cache, weights_hash(model), data_hash(data.images))

    first = pool.get("a", make)
    assert pool.get("a", make) is first and len(made) == 1 and pool.has("a")
    wait_until(lambda: first.complete, timeout=120, what="the worker thread to encode the rest")
    wait_until(lambda: cache.files(), timeout=30, what="the codes kept on disk")
    reopened = pool.get("b", make)  # another key for the same model and data: read back from the cache
    assert reopened.from_cache and reopened.complete and len(made) == 2
    np.testing.assert_array_equal(reopened.mu, first.mu)
