"""Q6: the convolution backward formulas, checked independently of hwlib's convolution layer.

The formulas live once, in ``hwlib.conv_formulas`` (given code, term by term in NumPy, one 2-D
slice at a time). Its three operations are checked against their defining sums and against
``scipy.signal`` (filtering = ``correlate2d(mode="valid")``, convolution = ``convolve2d``); the
formulas against numerical gradients and PyTorch's autograd; only then is
``hwlib.layers.conv_backward`` required to equal them. The Q6 notebook's graded cells are checked
against the nbgrader and rendering conventions.
"""

from __future__ import annotations

import re

import nbformat
import numpy as np
import pytest
import torch
from scipy import signal

from hwlib.conv_formulas import conv_by_definition, dk_by_formula, dx_by_formula, filt, full, valid
from hwlib.gradient_check import assert_close, eval_numerical_gradient
from hwlib.layers import conv_backward, conv_forward

from .conftest import REPO

NOTEBOOK = REPO / "notebooks" / "06_conv_backward_proof.ipynb"

# (N, C, F, H, W, H', W'): every size different, N, C, F > 1; the last two let the kernel span the
# image's full height (H_o = 1) and the whole image (a 1 x 1 output).
SHAPES = [
    (2, 3, 4, 5, 7, 2, 3),
    (3, 2, 2, 7, 4, 3, 2),
    (2, 2, 3, 6, 5, 4, 1),
    (2, 3, 2, 4, 6, 4, 3),
    (2, 2, 2, 3, 5, 3, 5),
]
SHAPE_IDS = ["N{}C{}F{}-{}x{}-k{}x{}".format(*s) for s in SHAPES]

# The loss is linear in X and K, so centred differences are exact for any step: a larger step than
# the usual 1e-5 keeps their round-off near 1e-11. The floor ignores that round-off on entries far
# below the O(1) gradients; a wrong formula is off by O(1).
NUMERICAL_STEP, NUMERICAL_THRESHOLD, NUMERICAL_FLOOR = 1e-3, 1e-7, 1e-3
# Exact computations in float64 (autograd, hwlib) differ only by round-off, near 1e-15.
EXACT_THRESHOLD, EXACT_FLOOR = 1e-8, 1e-6


def draw(rng, shape):
    """X, K and the upstream gradient G = dL/dY for L = sum(G * Y), all float64."""
    N, C, F, H, W, HH, WW = shape
    X = rng.standard_normal((N, C, H, W))
    K = rng.standard_normal((F, C, HH, WW))
    G = rng.standard_normal((N, F, H - HH + 1, W - WW + 1))
    return X, K, G


def torch_gradients(X, K, G):
    """dL/dX and dL/dK of L = sum(G * conv2d(X, K)) by PyTorch autograd (conv2d filters, no flip)."""
    Xt = torch.tensor(X, requires_grad=True)
    Kt = torch.tensor(K, requires_grad=True)
    (torch.tensor(G) * torch.nn.functional.conv2d(Xt, Kt)).sum().backward()
    return Xt.grad.numpy(), Kt.grad.numpy()


# --- the definitions the proofs use -----------------------------------------------------------------

def filt_by_sum(A, B):
    """The defining sum of filtering, indices from 1 as in the notebook."""
    (H, W), (HH, WW) = A.shape, B.shape
    out = np.zeros((H - HH + 1, W - WW + 1))
    for i in range(1, H - HH + 2):
        for j in range(1, W - WW + 2):
            out[i - 1, j - 1] = sum(A[i + p - 2, j + q - 2] * B[p - 1, q - 1]
                                    for p in range(1, HH + 1) for q in range(1, WW + 1))
    return out


def full_by_sum(G, B):
    """The defining sum of the full convolution, G read as 0 outside its range."""
    (M, Mp), (HH, WW) = G.shape, B.shape

    def g(u, v):  # the zero-padding convention, indices from 1
        return G[u - 1, v - 1] if 1 <= u <= M and 1 <= v <= Mp else 0.0

    out = np.zeros((M + HH - 1, Mp + WW - 1))
    for a in range(1, M + HH):
        for b in range(1, Mp + WW):
            out[a - 1, b - 1] = sum(g(a - p + 1, b - q + 1) * B[p - 1, q - 1]
                                    for p in range(1, HH + 1) for q in range(1, WW + 1))
    return out


@pytest.mark.parametrize("A_shape, B_shape", [((5, 7), (2, 3)), ((4, 6), (4, 1)), ((3, 2), (3, 2))])
def test_operations_match_their_definitions_and_scipy(rng, A_shape, B_shape):
    A, B = rng.standard_normal(A_shape), rng.standard_normal(B_shape)
    flip = np.rot90(B, 2)  # flip(B)[p, q] = B[H' - p + 1, W' - q + 1]
    padded = np.pad(A, ((B.shape[0] - 1,) * 2, (B.shape[1] - 1,) * 2))
    for name, ours, by_sum, by_scipy in [
        ("filt", filt(A, B), filt_by_sum(A, B), signal.correlate2d(A, B, mode="valid")),
        ("valid", valid(A, B), filt_by_sum(A, flip), signal.convolve2d(A, B, mode="valid")),
        ("full", full(A, B), full_by_sum(A, B), signal.convolve2d(A, B, mode="full")),
    ]:
        assert_close(ours, by_sum, name=f"{name} vs its defining sum", threshold=EXACT_THRESHOLD)
        assert_close(ours, by_scipy, name=f"{name} vs scipy.signal", threshold=EXACT_THRESHOLD)
    assert_close(full(A, B), filt_by_sum(padded, flip),
                 name="full convolution vs padded filtering with flip(B)", threshold=EXACT_THRESHOLD)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_layer_definition_matches_torch_conv2d(rng, shape):
    X, K, _ = draw(rng, shape)
    reference = torch.nn.functional.conv2d(torch.tensor(X), torch.tensor(K)).numpy()
    assert_close(conv_by_definition(X, K), reference, name="Y by definition", expected_label="torch",
                 threshold=EXACT_THRESHOLD, floor=EXACT_FLOOR)


# --- the identities ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_identities_match_numerical_gradients(rng, shape):
    X, K, G = draw(rng, shape)
    num_dx = eval_numerical_gradient(lambda X_: np.sum(G * conv_by_definition(X_, K)), X, h=NUMERICAL_STEP)
    num_dk = eval_numerical_gradient(lambda K_: np.sum(G * conv_by_definition(X, K_)), K, h=NUMERICAL_STEP)
    assert_close(dx_by_formula(G, K), num_dx, name="dX = sum_f dY *full K", expected_label="numerical",
                 threshold=NUMERICAL_THRESHOLD, floor=NUMERICAL_FLOOR)
    assert_close(dk_by_formula(X, G), num_dk, name="dK = sum_n X *filt dY", expected_label="numerical",
                 threshold=NUMERICAL_THRESHOLD, floor=NUMERICAL_FLOOR)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_identities_match_torch_autograd(rng, shape):
    X, K, G = draw(rng, shape)
    torch_dx, torch_dk = torch_gradients(X, K, G)
    assert_close(dx_by_formula(G, K), torch_dx, name="dX = sum_f dY *full K", expected_label="torch",
                 threshold=EXACT_THRESHOLD, floor=EXACT_FLOOR)
    assert_close(dk_by_formula(X, G), torch_dk, name="dK = sum_n X *filt dY", expected_label="torch",
                 threshold=EXACT_THRESHOLD, floor=EXACT_FLOOR)


def test_the_flip_matters(rng):
    """Swapping filtering and convolution in either formula is caught: the checks above are sharp."""
    X, K, G = draw(rng, SHAPES[0])
    torch_dx, torch_dk = torch_gradients(X, K, G)
    N, C, F = X.shape[0], X.shape[1], K.shape[0]
    dx_no_flip = np.array([[sum(signal.correlate2d(G[n, f], K[f, c], mode="full") for f in range(F))
                            for c in range(C)] for n in range(N)])
    dk_flipped = np.array([[sum(signal.convolve2d(X[n, c], G[n, f], mode="valid") for n in range(N))
                            for c in range(C)] for f in range(F)])
    for name, wrong, right in [("dX without the flip", dx_no_flip, torch_dx),
                               ("dK with a flip", dk_flipped, torch_dk)]:
        with pytest.raises(AssertionError, match="worst relative error"):
            assert_close(wrong, right, name=name, threshold=1e-3, floor=EXACT_FLOOR)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_conv_backward_equals_the_formulas(rng, shape):
    X, K, G = draw(rng, shape)
    Y, cache = conv_forward(X, K)
    assert_close(Y, conv_by_definition(X, K), name="conv_forward", expected_label="definition",
                 threshold=EXACT_THRESHOLD, floor=EXACT_FLOOR)
    dX, dK = conv_backward(G, cache)
    assert_close(dX, dx_by_formula(G, K), name="conv_backward dX", expected_label="formula",
                 threshold=EXACT_THRESHOLD, floor=EXACT_FLOOR)
    assert_close(dK, dk_by_formula(X, G), name="conv_backward dK", expected_label="formula",
                 threshold=EXACT_THRESHOLD, floor=EXACT_FLOOR)


# --- the notebook's graded cells --------------------------------------------------------------------

def test_notebook_proof_cells_follow_the_conventions():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    graded = {c.metadata["nbgrader"]["grade_id"]: (k, c) for k, c in enumerate(nb.cells) if "nbgrader" in c.metadata}
    for grade_id in ("q6-dx-proof", "q6-dk-proof"):
        assert grade_id in graded, f"{NOTEBOOK.name}: no cell with grade_id {grade_id!r}"
        k, cell = graded[grade_id]
        meta = cell.metadata["nbgrader"]
        assert cell.cell_type == "markdown", f"{grade_id}: expected a markdown answer cell, got {cell.cell_type}"
        assert (meta["schema_version"], meta["solution"], meta["grade"], meta["points"]) == (3, True, True, 0), \
            f"{grade_id}: expected schema 3, solution, grade, 0 points (extra credit, entered as such); got {meta}"
        lines = cell.source.splitlines()
        assert "### BEGIN SOLUTION" in lines and "### END SOLUTION" in lines, f"{grade_id}: solution delimiters missing"
        question = nb.cells[k - 1]
        qmeta = question.metadata.get("nbgrader", {})
        assert question.cell_type == "markdown" and qmeta.get("locked") and not qmeta.get("solution"), \
            f"{grade_id}: the cell above must be the locked question; got {question.cell_type} {qmeta}"


def test_notebook_math_renders_everywhere():
    """Constructs that break JupyterLab, nbconvert HTML or LaTeX are absent from the Markdown."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        text = cell.source
        for banned in (r"\newcommand", r"\begin{align}", r"\begin{align*}", r"\begin{equation"):
            assert banned not in text, f"cell {k}: {banned} does not render everywhere"
        assert text.count("$$") % 2 == 0, f"cell {k}: unbalanced $$"
        for block in re.findall(r"\$\$(.*?)\$\$", text, flags=re.S):
            assert "\n\n" not in block and not re.search(r"\n\s*\n", block), \
                f"cell {k}: blank line inside $$...$$: {block[:60]!r}"
            assert block.count(r"\begin{aligned}") == block.count(r"\end{aligned}"), \
                f"cell {k}: unbalanced aligned environment: {block[:60]!r}"
