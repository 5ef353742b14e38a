"""load_model: course models offline, clear errors for unknown or unreachable hub models."""

import socket

import pytest
import torch

from course_utils import ModelUnavailableError, load_model, random_model
from course_utils.chapters import CHAPTERS, available_chapters
from course_utils.course_models import COURSE_MODELS


@pytest.fixture
def no_network(monkeypatch):
    """Block every socket connection and DNS lookup; record the attempts."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


@pytest.mark.parametrize("name", COURSE_MODELS)
def test_course_models_load_offline_in_eval_mode(name, no_network):
    model = load_model(name, device="cpu")
    assert not model.training
    assert model.to_tokens("x = 1 if a else 2").shape[0] == 1
    assert no_network == []


def test_default_path_runs_a_chapter_offline(no_network):
    record = CHAPTERS[available_chapters()[0]]
    checks, solutions = record.checks(), record.solutions()
    for name in record.stubs():
        assert getattr(checks, f"test_{name}")(getattr(solutions, name)), name
    assert no_network == []


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ModelUnavailableError, match="Unknown model 'gpt-17'.*Course models"):
        load_model("gpt-17")


def test_hub_model_offline_is_a_clear_error(no_network):
    with pytest.raises(ModelUnavailableError, match="not reachable.*course model"):
        load_model("gpt2-small")


def test_hub_prefix_resolves_hub_alias(no_network):
    with pytest.raises(ModelUnavailableError, match="NeelNanda/Attn_Only_2L512W_C4_Code"):
        load_model("hub:attn-only-2l")


def test_random_model_has_randomised_layernorm():
    model = random_model(n_layers=1)
    w = model.state_dict()["ln_final.weight"]
    assert not torch.allclose(w, torch.ones_like(w))
    assert not model.training
