"""PCC, SSIM and cosine similarity against closed-form cases."""

from __future__ import annotations

import numpy as np
import pytest

from specklenet.training.metrics import all_metrics, cosine_similarity, pcc, ssim

C1 = (0.01 * 1.0) ** 2  # SSIM's luminance constant for data range 1


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.random((32, 32))


def test_identical_images_score_one(image: np.ndarray) -> None:
    assert pcc(image, image) == pytest.approx(1.0)
    assert ssim(image, image) == pytest.approx(1.0)
    assert cosine_similarity(image, image) == pytest.approx(1.0)


def test_negative_image_has_pcc_minus_one(image: np.ndarray) -> None:
    assert pcc(image, 1.0 - image) == pytest.approx(-1.0)


def test_pcc_ignores_gain_and_offset_cs_only_gain(image: np.ndarray) -> None:
    assert pcc(0.3 * image + 0.5, image) == pytest.approx(1.0)
    assert cosine_similarity(0.3 * image, image) == pytest.approx(1.0)
    assert cosine_similarity(0.3 * image + 0.5, image) < 0.99


def test_pcc_matches_numpy_corrcoef() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.random((4, 20, 20)), rng.random((4, 20, 20))
    expected = [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b, strict=False)]
    np.testing.assert_allclose(pcc(a, b), expected, rtol=1e-12)


def test_disjoint_supports_have_zero_cosine_similarity() -> None:
    a, b = np.zeros((16, 16)), np.zeros((16, 16))
    a[:8], b[8:] = 1.0, 1.0
    assert cosine_similarity(a, b) == 0.0
    assert pcc(a, b) == pytest.approx(-1.0)  # complementary halves: perfectly anti-correlated


def test_ssim_of_two_constant_images_is_the_luminance_term() -> None:
    # With no variance, SSIM = (2 μx μy + C1) / (μx² + μy² + C1) exactly.
    a, b = np.full((24, 24), 0.2), np.full((24, 24), 0.6)
    assert ssim(a, b) == pytest.approx((2 * 0.2 * 0.6 + C1) / (0.2**2 + 0.6**2 + C1))


def test_constant_image_has_no_correlation(image: np.ndarray) -> None:
    assert pcc(np.full_like(image, 0.5), image) == 0.0
    assert cosine_similarity(np.zeros_like(image), image) == 0.0


def test_stacks_give_one_value_per_image(image: np.ndarray) -> None:
    stack = np.stack([image, 1.0 - image, image])
    values = all_metrics(stack, np.stack([image, image, image]))
    np.testing.assert_allclose(values["pcc"], [1.0, -1.0, 1.0])
    assert values["ssim"].shape == values["cs"].shape == (3,)
    assert values["ssim"][0] == pytest.approx(1.0)
    assert values["ssim"][1] < 0


def test_shape_mismatch_is_an_error(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="same shape"):
        pcc(image, image[:-1])
    with pytest.raises(ValueError, match="11×11"):
        ssim(image[:8, :8], image[:8, :8])
