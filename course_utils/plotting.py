"""Thin plotly-express wrappers that always label axes and token positions."""

from collections.abc import Sequence

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import torch


def to_numpy(values: torch.Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    """Detach, move to CPU and convert to a NumPy array."""
    if isinstance(values, torch.Tensor):
        return values.detach().float().cpu().numpy()
    return np.asarray(values)


def position_labels(str_tokens: Sequence[str]) -> list[str]:
    """Unique axis labels ``"3: ␣the"`` for token positions.

    Plotly merges repeated category names, so raw tokens (which repeat) cannot
    label an axis. Spaces are shown as ``␣`` and newlines as ``↵``.
    """
    return [f"{i}: {t.replace(' ', '␣').replace(chr(10), '↵')}" for i, t in enumerate(str_tokens)]


def integer_ticks(n: int, most: int = 12) -> dict:
    """Axis settings that put ticks on whole numbers only, at most ``most`` of them, for ``0 … n-1``.

    Plotly's automatic ticks put half-integers on a short axis (layers 0, 0.5, 1)."""
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000) if n / s <= most or s == 1000)
    return dict(tickmode="linear", tick0=0, dtick=step)


def heatmap(
    values: torch.Tensor | np.ndarray,
    *,
    title: str,
    x_title: str,
    y_title: str,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    color_title: str = "",
    diverging: bool = True,
) -> go.Figure:
    """A 2-D heatmap (rows = y, columns = x). ``diverging`` centres a red-blue scale on 0."""
    z = to_numpy(values)
    if z.ndim != 2:
        raise ValueError(f"heatmap needs a 2-D array, got shape {tuple(z.shape)}")
    scale = dict(color_continuous_scale="RdBu", color_continuous_midpoint=0.0) if diverging else {}
    fig = px.imshow(
        z,
        x=list(x_labels) if x_labels is not None else None,
        y=list(y_labels) if y_labels is not None else None,
        labels=dict(x=x_title, y=y_title, color=color_title),
        title=title,
        aspect="auto",
        **scale,
    )
    fig.update_xaxes(**(dict(type="category") if x_labels is not None else integer_ticks(z.shape[1])))
    fig.update_yaxes(**(dict(type="category") if y_labels is not None else integer_ticks(z.shape[0])))
    return fig


def line(
    y: torch.Tensor | np.ndarray | Sequence[float],
    *,
    title: str,
    x_title: str,
    y_title: str,
    x: Sequence | None = None,
    series: Sequence[str] | None = None,
) -> go.Figure:
    """One line per row of ``y`` (1-D: a single line); ``series`` names the rows."""
    arr = to_numpy(y)
    rows = arr[None, :] if arr.ndim == 1 else arr
    xs = list(x) if x is not None else list(range(rows.shape[1]))
    names = list(series) if series is not None else [str(i) for i in range(rows.shape[0])]
    if len(names) != rows.shape[0]:
        raise ValueError(f"{len(names)} series names for {rows.shape[0]} lines")
    data = {"x": xs * len(names), "y": rows.reshape(-1), "series": [n for n in names for _ in xs]}
    fig = px.line(data, x="x", y="y", color="series" if len(names) > 1 else None, title=title, markers=True)
    fig.update_layout(xaxis_title=x_title, yaxis_title=y_title, legend_title_text="")
    if x is None:
        fig.update_xaxes(**integer_ticks(len(xs)))
    return fig


def bar(
    values: torch.Tensor | np.ndarray | Sequence[float],
    *,
    labels: Sequence[str],
    title: str,
    x_title: str,
    y_title: str,
) -> go.Figure:
    """A bar per value, labelled in order (labels are kept unique and unsorted)."""
    v = to_numpy(values).reshape(-1)
    if len(labels) != len(v):
        raise ValueError(f"{len(labels)} labels for {len(v)} values")
    fig = px.bar(x=list(labels), y=v, title=title)
    fig.update_layout(xaxis_title=x_title, yaxis_title=y_title)
    fig.update_xaxes(type="category")
    return fig
