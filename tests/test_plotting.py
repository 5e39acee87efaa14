"""gmp.plotting: CAB geometry in R² (segments, active regions, locations) and the figures."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gmp import plotting
from gmp.perturbation import perturbation_grid

BOX = (-2.0, 3.0, -1.0, 2.0)
coord = st.floats(-5, 5, allow_nan=False, allow_infinity=False)


def _polygon_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _inside(p, box, tol=1e-9):
    return (box[0] - tol <= p[..., 0]).all() and (p[..., 0] <= box[1] + tol).all() and \
        (box[2] - tol <= p[..., 1]).all() and (p[..., 1] <= box[3] + tol).all()


def test_location_is_nearest_point_of_boundary():
    w, b = np.array([3.0, 4.0]), -10.0
    phi = plotting.location(w, b)
    np.testing.assert_allclose(phi, [1.2, 1.6])
    assert w @ phi + b == pytest.approx(0.0, abs=1e-12)
    assert np.linalg.norm(phi) == pytest.approx(abs(b) / np.linalg.norm(w))


def test_location_zero_weight_raises():
    with pytest.raises(ValueError, match="no boundary"):
        plotting.location([0.0, 0.0], 1.0)


def test_bad_shapes_and_boxes_raise():
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        plotting.active_region([1.0, 2.0, 3.0], 0.0)
    with pytest.raises(ValueError, match="scalar bias"):
        plotting.boundary_segment([1.0, 2.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="xmin < xmax"):
        plotting.active_region([1.0, 0.0], 0.0, box=(1, 0, 0, 1))


def test_gmp_unit_matches_location_formula():
    u, lam = plotting.gmp_unit(np.pi / 3, 0.7)
    assert np.linalg.norm(u) == pytest.approx(1.0)
    np.testing.assert_allclose(plotting.location(u, lam), -lam * u)


def test_vertical_boundary_exact():
    # x1 = 1 splits the box (-2, 3) x (-1, 2): active part x1 >= 1 has area 2 * 3.
    seg = plotting.boundary_segment([1.0, 0.0], -1.0, BOX)
    np.testing.assert_allclose(sorted(seg[:, 1]), [-1.0, 2.0])
    np.testing.assert_allclose(seg[:, 0], [1.0, 1.0])
    poly = plotting.active_region([1.0, 0.0], -1.0, BOX)
    assert _polygon_area(poly) == pytest.approx(6.0)
    assert (poly[:, 0] >= 1.0 - 1e-12).all()


def test_boundary_outside_box():
    assert plotting.boundary_segment([1.0, 0.0], -10.0, BOX) is None
    assert len(plotting.active_region([1.0, 0.0], -10.0, BOX)) == 0  # inactive everywhere
    full = plotting.active_region([1.0, 0.0], 10.0, BOX)
    assert _polygon_area(full) == pytest.approx(15.0)  # active everywhere: the whole box


def test_boundary_through_a_corner_only():
    # x1 + x2 = -3 touches the box only at the corner (-2, -1).
    assert plotting.boundary_segment([1.0, 1.0], 3.0, BOX) is None
    assert plotting.boundary_segment([0.0, 0.0], 1.0, BOX) is None


@settings(max_examples=150, deadline=None)
@given(coord, coord, coord)
def test_region_and_segment_are_consistent(w1, w2, b):
    w = np.array([w1, w2])
    if np.linalg.norm(w) < 1e-3:
        return
    poly = plotting.active_region(w, b, BOX)
    neg = plotting.active_region(-w, -b, BOX)
    total = (_polygon_area(poly) if len(poly) else 0.0) + (_polygon_area(neg) if len(neg) else 0.0)
    assert total == pytest.approx(15.0, rel=1e-9, abs=1e-9)  # the two halves tile the box
    if len(poly):
        assert _polygon_area(poly) >= 0  # counter-clockwise
        assert _inside(poly, BOX)
        assert (poly @ w + b >= -1e-9 * (1 + np.abs(w).sum() * 5 + abs(b))).all()
    seg = plotting.boundary_segment(w, b, BOX)
    if seg is not None:
        assert _inside(seg, BOX)
        np.testing.assert_allclose(seg @ w + b, 0.0, atol=1e-9 * (1 + abs(b)))


def test_unit_output_scale_and_zero_region():
    X, Y, Z = plotting.unit_output([1.0, 0.0], 0.0, scale=-2.0, box=(-1, 1, -1, 1),
                                   resolution=5)
    assert X.shape == Y.shape == Z.shape == (5, 5)
    np.testing.assert_allclose(Z, -2.0 * np.maximum(X, 0.0))


def test_figures_build_and_close():
    figs = [plotting.unit_figure([1.0, 0.6], -1.2),
            plotting.explorer_figure((1.0, 0.5, -0.8), (0.6, 1.0, -1.5)),
            plotting.explorer_figure((0.0, 0.0, 0.3), (0.0, 0.0, 1.0))]  # w = 0: no CAB
    grid = perturbation_grid(("sp", "gmp"), (1e-3, 1e-1), m=2, seed=1)
    figs.append(plotting.perturbation_figure(grid, unit=1))
    assert len(figs[-1].axes) == 4
    assert figs[-1].axes[0].get_title() == "δ = 0.001"
    for f in figs:
        plt.close(f)


def test_perturbation_figure_validates():
    with pytest.raises(ValueError, match="rectangular"):
        plotting.perturbation_figure([])
    grid = perturbation_grid(("sp",), (1e-3,), m=1)
    with pytest.raises(IndexError, match="out of range"):
        plotting.perturbation_figure(grid, unit=3)
    plt.close("all")


def test_auto_box_contains_points_and_ignores_nan():
    box = plotting.auto_box(np.array([[0.5, -4.0], [np.nan, 1.0], [2.0, 1.0]]))
    assert box == pytest.approx((-6.0, 6.0, -6.0, 6.0))
    assert plotting.auto_box(np.zeros((0, 2))) == (-1.0, 1.0, -1.0, 1.0)


def test_perturbation_figure_transposed_auto_box():
    grid = perturbation_grid(("sp", "wn", "gmp"), (1e-2,), m=3, seed=0)
    fig = plotting.perturbation_figure(grid, unit=2, box=None, params_as_columns=True)
    axes = fig.axes
    assert [a.get_title() for a in axes] == ["SP", "WN", "GmP"]
    assert axes[0].get_ylabel() == "δ = 0.01"
    half = axes[0].get_xlim()[1]
    for r in (res for row in grid for res in row):
        for phi in (r.location_before[2], r.location_after[2]):
            assert (np.abs(phi) < half).all()
    plt.close(fig)


def test_sphere_grid_figure_marks_tail_mass():
    import matplotlib.pyplot as plt

    u = np.array([0.6, 0.0, 0.8])
    fig = plotting.sphere_grid_figure(u)
    dots = [line for line in fig.axes[1].lines if line.get_marker() == "o"][0]
    np.testing.assert_allclose(dots.get_ydata(), [1.0, 0.64])   # Σ_{k≥i} u_k², i = 1, 2
    plt.close(fig)
    with pytest.raises(ValueError, match="unit vector"):
        plotting.sphere_grid_figure(np.array([1.0, 1.0]))


def test_step_turns_figure_one_panel_per_label():
    import matplotlib.pyplot as plt

    from gmp.perturbation import optimizer_step_turns

    runs = [(label, optimizer_step_turns(m, "adam", steps=3, width=4))
            for label in ("a", "b") for m in ("sp", "gmp")]
    fig = plotting.step_turns_figure(runs, {"bound": 0.1})
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 3
    plt.close(fig)
