"""The real images the quality figures use are there and are what they say (harness/real_data.py)."""
import numpy as np

from harness.real_data import lfw_faces, mnist_5k, photo_patches


def test_real_mnist_digits_are_5000_labelled_28x28_images():
    images, labels = mnist_5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert images.max() == 255 and (images == 0).mean() > 0.7  # ink on a black background, like MNIST


def test_real_faces_are_200_grey_25x25_crops():
    faces = lfw_faces()
    assert faces.shape == (200, 25, 25) and 0.0 <= faces.min() and faces.max() <= 1.0
    assert np.median(faces.std(axis=(1, 2))) > 0.05  # photographs, not blank tiles


def test_photo_patches_are_seeded_rgb_crops():
    a, b = photo_patches(32, 4, seed=1), photo_patches(32, 4, seed=1)
    assert a.shape == (4, 32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
