"""Hub models: names, the download command, and loading offline from a (simulated) Hugging Face cache."""

import socket

import pytest
import torch
from huggingface_hub import constants as hf_constants

from course_utils import ModelUnavailableError, hub, load_model
from course_utils.__main__ import main
from course_utils.checkpoint import load_tokenizer
from course_utils.tasks import ioi
from course_utils.tooling.simulated_hub import HUB_MODELS, LEGACY_TOKENIZER, build_simulated_hub, gpt2_tokenizer

CACHED = ["hub:attn-only-1l", "gpt2-small"]


@pytest.fixture(scope="module")
def simulated_home(tmp_path_factory):
    return build_simulated_hub(tmp_path_factory.mktemp("hf_home"), CACHED, d_head=4)


@pytest.fixture
def offline_cache(simulated_home, monkeypatch):
    """This process reads the simulated cache, offline (as HF_HOME and HF_HUB_OFFLINE=1 would set it)."""
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(simulated_home / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return simulated_home


def test_course_names_ignore_case():
    upper, lower = load_model("Attn-Only-2L", device="cpu"), load_model("attn-only-2l", device="cpu")
    assert torch.equal(upper.W_E, lower.W_E)


@pytest.mark.parametrize(
    "typo, meant", [("atn-only-2l", "attn-only-2l"), ("gelu-4", "gelu-4l"), ("facts4l", "facts-4l")]
)
def test_a_name_close_to_a_course_model_gets_did_you_mean(typo, meant):
    with pytest.raises(ModelUnavailableError, match=f"Did you mean '{meant}'"):
        load_model(typo)


def test_hub_names_resolve_to_their_repositories():
    assert {name: hub.hub_repo(name) for name in HUB_MODELS} == {name: m.repo for name, m in HUB_MODELS.items()}
    assert hub.is_legacy(hub.hub_repo("hub:attn-only-2l")) and not hub.is_legacy("gpt2")


@pytest.mark.slow
@pytest.mark.parametrize("name", CACHED)
def test_hub_model_loads_offline_from_the_cache(name, offline_cache):
    spec = HUB_MODELS[name]
    model = load_model(name, device="cpu")
    assert (model.cfg.n_layers, model.cfg.n_heads, model.cfg.n_ctx) == (spec.n_layers, spec.n_heads, spec.n_ctx)
    assert not model.training
    tokens = model.to_tokens("def f(x):\n    return x if x else 0")
    logits, cache = model.run_with_cache(tokens)
    assert logits.shape == (1, tokens.shape[1], model.cfg.d_vocab) and len(model.tokenizer) == model.cfg.d_vocab
    assert cache["blocks.0.attn.hook_pattern"].shape[1] == spec.n_heads


@pytest.mark.slow
def test_without_network_a_cached_model_loads_even_if_offline_mode_is_not_set(simulated_home, monkeypatch):
    """On a plane: no HF_HUB_OFFLINE, every connection fails; load_model reads the cache without trying the hub."""
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(simulated_home / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network blocked by the test")

    for target, name in ((socket.socket, "connect"), (socket, "create_connection"), (socket, "getaddrinfo")):
        monkeypatch.setattr(target, name, refuse)
    for name in CACHED:
        assert load_model(name, device="cpu").cfg.n_layers == HUB_MODELS[name].n_layers
    assert len(attempts) == len(CACHED), "one reachability probe per load, nothing else"
    assert not hf_constants.HF_HUB_OFFLINE, "offline mode is restored after loading"


@pytest.mark.slow
def test_model_neither_shipped_nor_cached_cannot_be_downloaded(offline_cache):
    with pytest.raises(
        ModelUnavailableError,
        match="Cannot download 'NeelNanda/Attn_Only_2L512W_C4_Code'.*not in the Hugging Face cache.*course_utils download",
    ):
        load_model("hub:attn-only-2l")
    with pytest.raises(ModelUnavailableError, match="Cannot download 'gpt2-medium'"):
        load_model("gpt2-medium")


@pytest.mark.slow
def test_legacy_model_without_its_tokenizer_is_not_cached(offline_cache):
    repo = hub.hub_repo("hub:attn-only-1l")
    assert hub.is_cached(repo)
    tokenizer_ref = offline_cache / "hub" / f"models--{LEGACY_TOKENIZER.replace('/', '--')}" / "refs" / "main"
    commit = tokenizer_ref.read_text()
    tokenizer_ref.unlink()
    try:
        assert not hub.is_cached(repo)
    finally:
        tokenizer_ref.write_text(commit)


@pytest.mark.slow
def test_download_command_fetches_model_and_tokenizer(offline_cache, monkeypatch, capsys):
    """Online (simulated): each model's files, and a legacy model's tokenizer repository, go to the cache."""
    fetched = []
    real = hub.snapshot_download

    def snapshot_download(repo, allow_patterns=None, local_files_only=False):
        fetched.append((repo, tuple(allow_patterns or ())))
        return real(repo, local_files_only=True)

    monkeypatch.setattr(hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(hub, "hub_reachable", lambda: True)
    assert main(["download", "gpt2-small", "hub:attn-only-1l", "attn-only-2l"]) == 0
    assert [repo for repo, _ in fetched] == ["gpt2", HUB_MODELS["hub:attn-only-1l"].repo, LEGACY_TOKENIZER]
    assert "*final.pth" in fetched[1][1] and "*.safetensors" in fetched[0][1]
    out = capsys.readouterr().out
    assert "attn-only-2l: a course model" in out and "gpt2-small: gpt2 is in the Hugging Face cache" in out


def test_download_command_offline_says_so(monkeypatch, capsys):
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    assert main(["download", "gpt2-small"]) == 1
    assert "not reachable" in capsys.readouterr().out
    assert main(["download", "gpt-17"]) == 2


@pytest.fixture(scope="module")
def gpt2_tok():
    tok = gpt2_tokenizer()
    tok.pad_token = tok.eos_token  # as TransformerBridge sets it
    return tok


def test_ioi_samples_only_names_that_are_one_gpt2_token(gpt2_tok):
    assert {"Ella", "Irene", "Sofia"}.isdisjoint(ioi.single_token_names(gpt2_tok))
    prompts = ioi.ioi_prompts(200, "heldout", seed=0, tokenizer=gpt2_tok)
    pairs = ioi.clean_corrupted_pairs(200, "heldout_pairs", "abc", seed=3, tokenizer=gpt2_tok)
    for batch in (prompts, [c for c, _ in pairs], [k for _, k in pairs]):
        ioi.tokenize(batch, gpt2_tok)  # raises on a multi-token name
    references = [ioi.abc_reference(c, tokenizer=gpt2_tok) for c, _ in pairs if c.template_id >= 0]
    assert not any(name in text for text in references for name in ("Ella", "Irene", "Sofia"))


def test_ioi_filter_leaves_the_course_prompts_unchanged():
    tok = load_tokenizer()
    assert ioi.single_token_names(tok) == ioi.NAMES
    for split in ("heldout", "heldout_pairs"):
        assert ioi.ioi_prompts(300, split, seed=1, tokenizer=tok) == ioi.ioi_prompts(300, split, seed=1)
        assert ioi.clean_corrupted_pairs(100, split, "abc", 2, tok) == ioi.clean_corrupted_pairs(100, split, "abc", 2)
    prompt = ioi.ioi_prompts(1, "heldout", seed=0)[0]
    assert ioi.abc_reference(prompt, tokenizer=tok) == ioi.abc_reference(prompt)


def test_multi_token_name_is_a_clear_error(gpt2_tok):
    with pytest.raises(
        ValueError, match=r"name 'Ella' is 2 tokens in this tokenizer \(\['ĠEll', 'a'\]\).*tokenizer=model.tokenizer"
    ):
        ioi.name_token_id(gpt2_tok, "Ella")
