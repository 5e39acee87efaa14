"""gmp.animation: kernel-free interactive figures are self-contained and offline."""

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from gmp import animation  # noqa: E402


def _tiny(frames: int = 3) -> animation.Scrubber:
    fig, ax = plt.subplots(figsize=(2, 1), dpi=40)
    (line,) = ax.plot([], [])

    def update(i: int) -> None:
        line.set_data([0, 1], [0, i])

    return animation.scrubber(fig, update, frames, caption="the slider moves i")


def test_scrubber_is_offline_and_embeds_every_frame():
    s = _tiny(3)
    html = s._repr_html_()
    assert s.frames == 3
    assert len(re.findall(r'"data:image/png;base64,', html)) == 3
    assert "font-awesome" not in html and "https://" not in html and "http://" not in html
    assert '<i class="fa' not in html  # icons are Unicode characters
    assert 'type="range"' in html and "anim-slider" in html
    assert "the slider moves i" in html
    assert s.nbytes == len(html.encode())


def test_scrubber_needs_two_frames():
    fig, _ = plt.subplots()
    with pytest.raises(ValueError):
        animation.scrubber(fig, lambda i: None, 1)
    plt.close(fig)


@pytest.mark.parametrize("vary", ["b", "angle", "norm"])
def test_cab_explorer_scrubber(vary):
    s = animation.cab_explorer_scrubber(vary, frames=2)
    assert s.frames == 2 and s.nbytes < 200_000


def test_bad_arguments():
    with pytest.raises(ValueError):
        animation.cab_explorer_scrubber("w")
    with pytest.raises(ValueError):
        animation.perturbation_scrubber("x")


def test_aligned_derivation_one_summand_per_line():
    from gmp import formatting, symbolic

    d = symbolic.cab_direction_change(2)
    tex = formatting.aligned(d)
    assert tex.startswith(r"\begin{aligned}") and tex.endswith(r"\end{aligned}")
    assert tex.count(r"\\") == 2  # two summands on the left, then "= rhs"
    assert "&=" in tex.replace(" ", "")
