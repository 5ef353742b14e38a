"""Hub parity: every notebook runs to the end, unchanged, on the hub model it names.

The hub models are random-weight stand-ins with the hub models' exact architectures (layers, heads,
context, vocabulary, tokenizer) and a small width, in a temporary Hugging Face cache read offline
(``course_utils/tooling/simulated_hub.py``): the numbers are meaningless, the code paths are the real ones.
"""

import pytest

from course_utils.chapters import available_chapters
from course_utils.tooling.simulated_hub import (
    HUB_MODELS,
    build_simulated_hub,
    cell_errors,
    hub_model_name,
    run_on_hub_model,
)


@pytest.fixture(scope="module")
def simulated_home(tmp_path_factory):
    return build_simulated_hub(tmp_path_factory.mktemp("hf_home"))


@pytest.mark.parametrize("chapter", available_chapters())
def test_each_notebook_names_a_simulated_hub_model(chapter):
    assert hub_model_name(chapter) in HUB_MODELS, (
        "add its architecture to course_utils.tooling.simulated_hub.HUB_MODELS"
    )


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("chapter", available_chapters())
def test_notebook_runs_to_the_end_on_its_hub_model(chapter, simulated_home, tmp_path):
    nb, stopped = run_on_hub_model(chapter, simulated_home, tmp_path)
    assert stopped is None, f"{chapter}: {stopped}"
    assert cell_errors(nb) == [], f"{chapter} on {hub_model_name(chapter)}"
    printed = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert hub_model_name(chapter) in printed, f"{chapter} did not load {hub_model_name(chapter)}"
