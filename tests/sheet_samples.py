"""A small notebook that looks executed, for the sheet tests (figures in every form the course emits)."""

import nbformat


def sample_notebook() -> nbformat.NotebookNode:
    """A small notebook that looks executed: markdown, a plotly figure, two circuitsvis views.

    The views come in both forms circuitsvis emits (inlined bundle and CDN import), so a
    page rendered from it exercises every rewrite.
    """
    import circuitsvis as cv
    import plotly.express as px
    import plotly.io as pio
    import torch

    figure = px.line(x=[0, 1, 2, 3], y=[0.0, 1.0, 4.0, 9.0], title="Squares", labels={"x": "n", "y": "n²"})
    bundle = pio.renderers["plotly_mimetype"].to_mimebundle(figure.to_plotly_json())
    heat = px.imshow([[1, 2], [3, 4]], title="A heatmap", labels={"x": "key position", "y": "query position"})
    heat_bundle = pio.renderers["plotly_mimetype"].to_mimebundle(heat.to_plotly_json())
    attention = torch.tril(torch.ones(2, 4, 4))
    attention = attention / attention.sum(-1, keepdim=True)
    view = cv.attention.attention_patterns(tokens=["<bos>", "A", "B", "A"], attention=attention)
    new = nbformat.v4
    nb = new.new_notebook()
    nb.cells = [
        new.new_markdown_cell(
            "# A sample sheet\n\nA figure, a heatmap and two attention views.\n\n"
            "<details><summary>Hint</summary>A hint.</details>"
        ),
        new.new_code_cell("figure", outputs=[new.new_output("display_data", data=bundle)]),
        new.new_code_cell("heat", outputs=[new.new_output("display_data", data=heat_bundle)]),
        new.new_code_cell(
            "view  # offline form",
            execution_count=1,
            outputs=[
                new.new_output(
                    "execute_result", data={"text/html": view.local_src, "text/plain": "view"}, execution_count=1
                )
            ],
        ),
        new.new_code_cell(
            "view  # online form",
            execution_count=2,
            outputs=[
                new.new_output(
                    "execute_result", data={"text/html": view.cdn_src, "text/plain": "view"}, execution_count=2
                )
            ],
        ),
    ]
    return nb
