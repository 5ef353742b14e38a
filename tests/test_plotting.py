"""Plot helpers: labelled axes, unique token labels, shape errors."""

import pytest
import torch

from course_utils import bar, get_device, heatmap, line, position_labels, seed_everything


def test_position_labels_are_unique_and_visible():
    labels = position_labels([" the", " cat", " the", "\n"])
    assert len(set(labels)) == 4
    assert labels[0] == "0: ␣the" and labels[3] == "3: ↵"


def test_heatmap_keeps_repeated_tokens_apart():
    fig = heatmap(
        torch.randn(2, 3), title="t", x_title="position", y_title="layer", x_labels=position_labels(["a", "a", "b"])
    )
    assert list(fig.data[0].x) == ["0: a", "1: a", "2: b"]
    assert fig.layout.xaxis.title.text == "position" and fig.layout.title.text == "t"


def test_heatmap_rejects_wrong_rank():
    with pytest.raises(ValueError, match="2-D"):
        heatmap(torch.randn(3), title="t", x_title="x", y_title="y")


def test_line_and_bar():
    fig = line(torch.randn(2, 5), title="loss", x_title="step", y_title="loss", series=["a", "b"])
    assert len(fig.data) == 2
    fig = bar([1.0, 2.0], labels=["embed", "L0"], title="t", x_title="component", y_title="logit")
    assert list(fig.data[0].x) == ["embed", "L0"]
    with pytest.raises(ValueError, match="labels"):
        bar([1.0], labels=["a", "b"], title="t", x_title="x", y_title="y")


def test_seed_everything_is_reproducible():
    g1 = seed_everything(3)
    a = torch.randint(0, 100, (5,), generator=g1)
    g2 = seed_everything(3)
    assert torch.equal(a, torch.randint(0, 100, (5,), generator=g2))


def test_device_is_a_torch_device():
    assert isinstance(get_device(), torch.device)


def test_integer_axes_get_integer_ticks():
    fig = heatmap(torch.randn(2, 8), title="t", x_title="head", y_title="layer")
    assert (fig.layout.yaxis.tickmode, fig.layout.yaxis.tick0, fig.layout.yaxis.dtick) == ("linear", 0, 1)
    assert fig.layout.xaxis.dtick == 1
    wide = heatmap(torch.randn(2, 128), title="t", x_title="position", y_title="layer")
    assert wide.layout.xaxis.dtick == 20 and 128 / wide.layout.xaxis.dtick <= 12
    labelled = heatmap(torch.randn(2, 2), title="t", x_title="x", y_title="y", x_labels=["a", "b"])
    assert labelled.layout.xaxis.type == "category" and labelled.layout.xaxis.dtick is None
    assert line(torch.randn(3), title="t", x_title="layer", y_title="y").layout.xaxis.dtick == 1
