"""The Fréchet distance: its N×N Gram route equals the d×d eigenvalue route and clean-fid's maths."""
import numpy as np
import pytest

from e2gan.metrics.frechet import frechet_distance
from e2gan.metrics.quality import fid_from_features


def test_gram_path_equals_the_eigenvalue_path_and_cleanfid_maths():
    r = np.random.default_rng(3)
    a, b = r.standard_normal((120, 300)), r.standard_normal((120, 300)) * 1.1 + 0.05
    assert frechet_distance(a, b) == pytest.approx(fid_from_features(a, b), rel=1e-7)
    big_a, big_b = r.standard_normal((400, 16)), r.standard_normal((400, 16)) + 0.3  # n > d path
    assert frechet_distance(big_a, big_b) == pytest.approx(fid_from_features(big_a, big_b), rel=1e-7)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
