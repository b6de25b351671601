"""``lossopt_helpers.boxes``: random boxes, IoU and GIoU by hand and as properties, drawing."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lossopt_helpers import boxes  # noqa: E402


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# random_boxes


def test_random_boxes_are_valid_reproducible_and_inside_the_canvas():
    make = lambda seed: boxes.random_boxes(  # noqa: E731
        500, canvas=10.0, min_size=0.1, max_size=0.3, generator=torch.Generator().manual_seed(seed))
    b = make(0)
    assert b.shape == (500, 4) and b.dtype == torch.float32
    width, height = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    assert (width >= 1.0 - 1e-5).all() and (width <= 3.0 + 1e-5).all()
    assert (height >= 1.0 - 1e-5).all() and (height <= 3.0 + 1e-5).all()
    assert (b >= 0).all() and (b <= 10.0).all()
    assert torch.equal(b, make(0)) and not torch.equal(b, make(1))
    assert boxes.random_boxes(3, dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize(("min_size", "max_size"), [(0.0, 0.5), (0.6, 0.5), (0.1, 1.5)])
def test_random_boxes_refuse_bad_sizes(min_size, max_size):
    with pytest.raises(ValueError, match="min_size"):
        boxes.random_boxes(2, min_size=min_size, max_size=max_size)


# ---------------------------------------------------------------------------------------------
# Areas, intersection, union, enclosing box, IoU, GIoU by hand


def test_area_intersection_union_by_hand():
    b1 = t([0, 0, 2, 2], [0, 0, 4, 4], [0, 0, 1, 1], [0, 0, 1, 1])
    # overlapping, nested, apart, touching
    b2 = t([1, 1, 3, 3], [1, 1, 2, 2], [2, 0, 3, 1], [1, 0, 2, 1])
    assert boxes.box_area(b1).tolist() == [4.0, 16.0, 1.0, 1.0]
    inter, union = boxes.box_inter_union(b1, b2)
    assert inter.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert union.tolist() == [7.0, 16.0, 2.0, 2.0]
    assert boxes.enclosing_box(b1, b2).tolist() == [[0, 0, 3, 3], [0, 0, 4, 4], [0, 0, 3, 1],
                                                    [0, 0, 2, 1]]


def test_iou_and_giou_by_hand():
    b1 = t([0, 0, 2, 2], [0, 0, 4, 4], [0, 0, 1, 1], [0, 0, 1, 1])
    b2 = t([1, 1, 3, 3], [1, 1, 2, 2], [2, 0, 3, 1], [0, 0, 1, 1])
    want_iou = t(1 / 7, 1 / 16, 0.0, 1.0)
    want_giou = t(1 / 7 - 2 / 9, 1 / 16, -1 / 3, 1.0)  # nested: the enclosing box is the outer one
    assert torch.allclose(boxes.box_iou(b1, b2), want_iou, rtol=1e-6)
    assert torch.allclose(boxes.generalized_box_iou(b1, b2), want_giou, rtol=1e-6)


def test_zero_area_boxes_give_numbers_not_nan():
    point = t([1, 1, 1, 1])
    assert boxes.box_iou(point, point).item() == 0.0
    assert boxes.generalized_box_iou(point, point).item() == 0.0


def test_boxes_broadcast_against_a_single_box():
    many = t([0, 0, 1, 1], [5, 5, 6, 6])  # (2, 4)
    one = torch.tensor([0.0, 0, 1, 1], dtype=torch.float64)  # (4,)
    assert boxes.box_iou(many, one).shape == (2,)
    assert boxes.generalized_box_iou(many, one).shape == (2,)


def test_only_giou_has_a_gradient_for_separate_boxes():
    # The claim the chapter makes: IoU is flat once boxes separate, GIoU is not.
    target = torch.tensor([2.0, 1.0, 4.0, 3.0], dtype=torch.float64)
    prediction = torch.tensor([5.0, 1.5, 6.0, 2.5], dtype=torch.float64, requires_grad=True)
    (grad_iou,) = torch.autograd.grad(1 - boxes.box_iou(prediction, target), prediction)
    (grad_giou,) = torch.autograd.grad(1 - boxes.generalized_box_iou(prediction, target),
                                       prediction)
    assert torch.equal(grad_iou, torch.zeros(4, dtype=torch.float64))
    assert grad_giou[0] > 0  # moving the left edge left, towards the target, lowers the loss
    assert grad_giou.abs().sum() > 0.1


# ---------------------------------------------------------------------------------------------
# Properties


def box_strategy():
    coordinate = st.floats(-50.0, 50.0, allow_nan=False, allow_infinity=False)
    size = st.floats(0.01, 20.0, allow_nan=False, allow_infinity=False)
    return st.tuples(coordinate, coordinate, size, size).map(
        lambda v: [v[0], v[1], v[0] + v[2], v[1] + v[3]])


@settings(max_examples=200, deadline=None)
@given(box_strategy(), box_strategy())
def test_iou_and_giou_properties(a, b):
    b1, b2 = t(a), t(b)
    iou, giou = boxes.box_iou(b1, b2), boxes.generalized_box_iou(b1, b2)
    assert 0.0 <= iou.item() <= 1.0
    assert -1.0 < giou.item() <= iou.item() + 1e-12
    assert torch.allclose(iou, boxes.box_iou(b2, b1))
    assert torch.allclose(giou, boxes.generalized_box_iou(b2, b1))
    inter, union = boxes.box_inter_union(b1, b2)
    assert inter.item() <= min(boxes.box_area(b1).item(), boxes.box_area(b2).item()) + 1e-9
    assert union.item() <= boxes.box_area(boxes.enclosing_box(b1, b2)).item() + 1e-9


@settings(max_examples=100, deadline=None)
@given(box_strategy(), st.floats(0.1, 10.0), st.floats(-20.0, 20.0))
def test_iou_and_giou_are_invariant_to_scale_and_shift(a, scale, shift):
    b1 = t(a)
    b2 = b1 + torch.tensor([0.3, -0.2, 0.7, 0.1], dtype=torch.float64)
    moved = lambda b: b * scale + shift  # noqa: E731
    # eps=0: the math is scale-invariant; eps (1e-7 by default) is an absolute area, so it is not.
    for fn in (boxes.box_iou, boxes.generalized_box_iou):
        assert torch.allclose(fn(moved(b1), moved(b2), eps=0.0), fn(b1, b2, eps=0.0), atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Drawing


def test_draw_boxes_adds_one_rectangle_per_box_and_shows_them_all():
    fig, ax = plt.subplots()
    try:
        drawn = boxes.draw_boxes(ax, t([0, 0, 1, 2], [5, 5, 8, 9]), labels=["a", "b"],
                                 color="tab:red", fill_alpha=0.2)
        assert len(drawn) == 2 and len(ax.patches) == 2
        assert drawn[1].get_xy() == (5.0, 5.0)
        assert (drawn[1].get_width(), drawn[1].get_height()) == (3.0, 4.0)
        assert [text.get_text() for text in ax.texts] == ["a", "b"]
        x_low, x_high = ax.get_xlim()
        y_low, y_high = ax.get_ylim()
        assert x_low <= 0 and x_high >= 8 and y_low <= 0 and y_high >= 9
        one = boxes.draw_boxes(ax, torch.tensor([1.0, 1.0, 2.0, 2.0], requires_grad=True))
        assert len(one) == 1 and one[0].get_facecolor()[3] == 0.0  # outline only by default
    finally:
        plt.close(fig)


def test_draw_boxes_refuses_bad_input():
    fig, ax = plt.subplots()
    try:
        with pytest.raises(ValueError, match="shape"):
            boxes.draw_boxes(ax, torch.zeros(2, 3))
        with pytest.raises(ValueError, match="labels"):
            boxes.draw_boxes(ax, torch.zeros(2, 4), labels=["only one"])
    finally:
        plt.close(fig)
