"""Write the two new labs (notebooks/levy_training.ipynb, notebooks/hyperspherical.ipynb).

Usage: ``python tools/labs.py`` (then ``python tools/install_cell.py`` adds the install cell
and ``python tools/nbbuild.py notebooks/<lab>.ipynb`` executes it in place).
Kept so that the labs' cells can be regenerated; edit the notebooks directly afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbbuild import code, md, write  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

LEVY = [
    md("""
# Lab: watch the boundaries move (Levy, SP vs GmP)

Chen & Ge (2024), Fig. 2 and Sec. 4.1, in motion. A network with one hidden layer of 100
ReLU units is trained on the 1-D Levy regression problem (50 noisy points on $[-10, 10]$),
once under the standard parameterization (SP) and once under GmP, from the same data. In one
input dimension every hidden unit's boundary is a single point, its **characteristic point**
$x^* = -b/w$. The paper's claim: under SP these points jump and leave the data, under GmP
they move smoothly and stay where the data is.

This lab trains a short run (a few hundred epochs instead of the paper's 10,000; about two
seconds) and shows every unit's $x^*$ step by step. The full experiment, with twenty seeds
and the statistics, is [chapter 5](../book/05_levy.ipynb).
"""),
    code("""
%matplotlib inline
import matplotlib.pyplot as plt

from gmp.experiments import figures, small

PARAMS = ["sp", "gmp"]  # try adding "wn" and "bn"
EPOCHS = 600  # the paper trains 10,000
TRACK_EVERY = 3  # record the characteristic points every 3 steps
SEED = 0  # initialization and data sample

config = small.LevyConfig(epochs=EPOCHS)
runs = small.run_levy(
    PARAMS, seeds=(SEED,), config=config, track_every=TRACK_EVERY,
    progress=False,
)
for r in runs:
    end = r.characteristic_points[-1]
    outside = int(((end < -10) | (end > 10)).sum())
    print(
        f"{r.param:>3}: test RMSE {r.metrics['test_rmse']:.3f}; "
        f"{outside} of {end.size} units end outside the data"
    )
"""),
    md("""
## Scrub through training

Drag the slider (or press play). Each panel shows one run: the horizontal axis is $x^*$, the
vertical axis the optimizer step (linear up to 10, then logarithmic, because most of the
motion happens early); the grey band is the interval that holds the data. A dot is a unit's
$x^*$ at the current step, its line the path so far. This figure works in the online book
without a kernel: its frames were drawn when the page was built.
"""),
    code("""
figures.levy_training_scrubber(runs)
""", tags=["hide-input"]),
    md("""
What to look for: SP's points fly far outside the band within the first few dozen steps
(a unit whose $x^*$ is outside the data is linear on all of it, so it no longer helps to bend
the fit), and some come back only much later; GmP's spread out gradually and stay inside.

## The fits at the end
"""),
    code("""
data = small.make_data("levy", SEED, config=config)
figures.levy_fits_figure(runs, data, seed=SEED)
plt.show()
""", tags=["hide-input"]),
    md("""
## Things to try

1. *Predict first*, then run: with `EPOCHS = 3000`, will more of SP's units end outside the
   data, or fewer? Does GmP's test RMSE beat SP's on this seed?
2. Add `"wn"` and `"bn"` to `PARAMS`. Do weight and batch normalization keep the points inside
   the data? (Chapter 2 predicts how their boundaries react to a step.)
3. Change `SEED`. Chapter 5 shows why one seed decides little: the runs of each method
   spread widely.
"""),
]

HYPER = [
    md("""
# Lab: hyperspherical coordinates

GmP writes a unit's weight as $w = r\\,u(\\theta)$ with a length $r$ and a direction given by
angles $\\theta \\in \\mathbb{R}^{n-1}$ (Chen & Ge 2024, Sec. 3.1, Eq. 10):

$$
u_1 = \\cos\\theta_1,\\quad
u_i = \\Big(\\prod_{j<i}\\sin\\theta_j\\Big)\\cos\\theta_i \\ (2 \\le i \\le n-1),\\quad
u_n = \\prod_{j \\le n-1}\\sin\\theta_j .
$$

Three facts make it work, each checked in [chapter 3](../book/03_hyperspherical.ipynb):
$\\lVert u(\\theta)\\rVert = 1$ for *every* real $\\theta$; the metric
$G(\\theta) = J^\\top J$ is diagonal with entries $\\prod_{j<i}\\sin^2\\theta_j \\le 1$ (so a step
of length $\\varepsilon$ in $\\theta$ moves $u$ by at most $\\varepsilon$); and there
is a numerically stable inverse, `gmp.angles`. This lab lets you try all three.
"""),
    code("""
%matplotlib inline
import torch

from gmp import angles, animation, metric_diagonal, unit_vector

theta = torch.tensor([0.7, 2.0, -1.2], dtype=torch.float64)  # n = 4
u = unit_vector(theta)
print("u(θ) =", u.numpy().round(4), "   ‖u‖ =", round(float(u.norm()), 15))
G = metric_diagonal(theta)
sin2 = torch.sin(theta[:-1]) ** 2
products = torch.cat([torch.ones(1, dtype=G.dtype), torch.cumprod(sin2, 0)])
print("diagonal of G:       ", G.numpy().round(4))
print("1, sin²θ₁, sin²θ₁sin²θ₂:", products.numpy().round(4))
assert torch.allclose(G, products) and bool((G <= 1).all())
"""),
    md("""
## The sin² factors, moving

The slider sweeps $\\theta_1$ from 0 to $\\pi$ for $n = 3$. Left: $u(\\theta)$ on the sphere, the
circle that $\\theta_2$ traces (blue) and the half-circle that $\\theta_1$ traces (orange).
Right: the two metric entries. Near a pole ($\\theta_1$ near 0 or $\\pi$) the blue circle
shrinks to a point: a step in $\\theta_2$ barely moves $u$, exactly the factor
$G_{22} = \\sin^2\\theta_1$. Works without a kernel.
"""),
    code("""
animation.hypersphere_scrubber()
""", tags=["hide-input"]),
    md("""
## The stable inverse

`angles(v)` returns $(\\theta, \\lVert v\\rVert)$ with $v = \\lVert v\\rVert\\,u(\\theta)$. The
textbook inverse, $\\theta_1 = \\arccos(v_1/\\lVert v\\rVert)$, loses everything near a pole:
$\\cos\\theta$ is flat there, so a tiny angle rounds to $\\cos\\theta_1 = 1$. `angles` uses
$\\theta_k = \\operatorname{atan2}(\\lVert(v_{k+1},\\dots,v_n)\\rVert, v_k)$
instead, which keeps the
tiny tail.
"""),
    code("""
v = torch.tensor([1.0, 1e-9, 0.0, 1e-9], dtype=torch.float64)  # near the pole e₁
theta_v, norm = angles(v)
back = norm * unit_vector(theta_v)
naive_t1 = torch.arccos(v[0] / v.norm())  # the textbook first angle
print("θ from angles():     ", theta_v.numpy())
print("θ₁ from arccos:      ", float(naive_t1))
print("v rebuilt, max error:", float((back - v).abs().max()))
assert float((back - v).abs().max()) < 1e-24 and float(naive_t1) == 0.0
"""),
    md("""
Angles outside their usual ranges are fine: $u$ is defined for every real $\\theta$, and
`angles` returns one representative (here the rebuilt vector matches although the angles
differ).
"""),
    code("""
theta_odd = torch.tensor([-0.7, 5.0, 9.0], dtype=torch.float64)
u_odd = unit_vector(theta_odd)
theta_back, _ = angles(u_odd)
print("θ in:", theta_odd.numpy(), "  θ out:", theta_back.numpy().round(4))
assert torch.allclose(unit_vector(theta_back), u_odd, atol=1e-15)
"""),
    md("""
## Things to try

1. *Predict first*: for $\\theta = (\\pi/2, \\pi/2, \\theta_3)$, what is $G$? Check with
   `metric_diagonal`.
2. Take a random $\\theta$ and a small step $\\varepsilon$; compare
   $\\lVert u(\\theta+\\varepsilon) - u(\\theta)\\rVert$ with
   $\\lVert\\varepsilon\\rVert$ (Theorem 3.7 says it is at most about $\\lVert\\varepsilon\\rVert$).
3. Replace `angles` by the textbook inverse for all coordinates and find the smallest tail
   that it still recovers.
"""),
]

if __name__ == "__main__":
    write(ROOT / "notebooks/levy_training.ipynb", LEVY, run=False)
    write(ROOT / "notebooks/hyperspherical.ipynb", HYPER, run=False)
