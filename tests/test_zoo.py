"""Offline checks of the shipped model zoo: files, checksums, loading, and every required figure."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
from pathlib import Path

import pytest
import torch
import transformer_lens.model_bridge.sources  # noqa: F401 - registers TransformerBridge.boot_native
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from course_utils import checkpoint
from course_utils.checkpoint import MODELS_DIR, CheckpointError, load_checkpoint, load_tokenizer
from course_utils.course_models import COURSE_MODELS, CourseModel
from course_utils.tasks import facts, ioi, recall, repeated, ternary
from course_utils.zoo import evaluate, recipes
from course_utils.zoo.checkpoint import record_files
from course_utils.zoo.thresholds import Check


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def models():
    return {name: load_checkpoint(name) for name in COURSE_MODELS}


def test_manifest_lists_every_shipped_file_with_matching_checksum():
    manifest = checkpoint.read_manifest()
    for name in COURSE_MODELS:
        for f in ("config.json", "model.safetensors", "MODEL_CARD.md"):
            assert f"{name}/{f}" in manifest
    assert "ternary_eval.json" in manifest
    for rel in manifest:
        checkpoint.verify(rel)


def test_load_is_fast_and_in_eval_mode(models):
    load_checkpoint("attn-only-2l")  # warm caches
    start = time.perf_counter()
    model = load_checkpoint("gelu-4l")
    assert time.perf_counter() - start < 5.0  # ~0.2-0.5 s on an idle machine; generous for shared CI
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_tokenizer_contract(tokenizer):
    assert tokenizer.bos_token == tokenizer.eos_token == tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.encode("x if y", add_special_tokens=True)[0] != tokenizer.bos_token_id
    for word in (" if", " else", " Paris", " Warsaw", " French"):
        assert len(tokenizer.encode(word, add_special_tokens=False)) == 1, word


def test_ioi_task_data(tokenizer):
    assert len(ioi.NAMES) >= 100 and len(set(ioi.NAMES)) == len(ioi.NAMES)
    assert len(ioi.TEMPLATES) >= 15
    for name in ioi.NAMES:
        ioi.name_token_id(tokenizer, name)
    train_pairs = {frozenset((p.io, p.s)) for p in ioi.ioi_prompts(500, "train")}
    heldout_pairs = {frozenset((p.io, p.s)) for p in ioi.ioi_prompts(500, "heldout")}
    assert not train_pairs & heldout_pairs
    assert {p.template_id for p in ioi.ioi_prompts(200, "heldout")} <= set(ioi.HELDOUT_TEMPLATE_IDS)
    assert {p.order for p in ioi.ioi_prompts(10)} == {"ABBA", "BABA"}
    for kind in ("abc", "flip"):
        for clean, bad in ioi.clean_corrupted_pairs(20, kind=kind):
            assert len(tokenizer.encode(clean.text)) == len(tokenizer.encode(bad.text))
    with pytest.raises(ValueError, match="unknown IOI split"):
        ioi.ioi_prompts(3, "test")


def test_training_prompts_are_well_formed_and_never_a_heldout_template():
    heldout = {ioi.TEMPLATES[i].format(A="N", B="N", S="N") for i in ioi.HELDOUT_TEMPLATE_IDS}
    prompts = ioi.training_prompts(2000, procedural_fraction=0.5, seed=3)
    assert sum(p.template_id == -1 for p in prompts) > 800
    for p in prompts:
        words = re.findall(r"[A-Za-z]+", p.text)
        assert words.count(p.s) == 2 and words.count(p.io) == 1, p.text
        assert p.text[0].isupper() and not p.text.endswith(" "), p.text
        assert not ioi.is_heldout_pair(p.io, p.s)
        assert re.sub(rf"\b({p.io}|{p.s})\b", "N", p.text) not in heldout, p.text


def test_facts_task_data(tokenizer):
    prompt = facts.few_shot_prompt("capital", "Poland")
    assert prompt.text.endswith("Q: What is the capital of Poland? A:") and prompt.answer == " Warsaw"
    for rel in facts.RELATIONS.values():
        for answer in rel.table.values():
            assert len(tokenizer.encode(" " + answer, add_special_tokens=False)) == 1, answer
    with pytest.raises(ValueError, match="unknown relation"):
        facts.fact_prompts("population")


def test_ternary_eval_set_is_fast_and_exact():
    start = time.perf_counter()
    trusted, anomalous = ternary.load_ternary_eval("trusted"), ternary.load_ternary_eval("anomalous")
    assert time.perf_counter() - start < 2.0
    assert len(trusted) >= 100 and len(anomalous) >= 100
    assert all(p.prefix.rstrip().endswith(")") for p in anomalous)
    assert not any(p.prefix.endswith(")") for p in trusted)
    found = ternary.extract_from_source("y = a if n > 0 else b\nz = c if f(x) else d\n")
    assert [(p.prefix.splitlines()[-1], p.kind) for p in found] == [
        ("y = a if n > 0", "trusted"),
        ("z = c if f(x)", "anomalous"),
    ]


def test_repeated_tokens_shape():
    tokens = repeated.repeated_tokens(3, 50, 4096, bos_id=0)
    assert tokens.shape == (3, 101) and (tokens[:, 0] == 0).all()
    assert torch.equal(tokens[:, 1:51], tokens[:, 51:])


def test_periodic_sequences_repeat_by_content_with_varying_period():
    g = torch.Generator().manual_seed(0)
    rows = repeated.periodic_sequences(64, 128, 4096, bos_id=0, generator=g, min_period=5, max_period=60)
    assert rows.shape == (64, 128) and (rows[:, 0] == 0).all() and (rows[:, 1:] > 0).all()
    periods = set()
    for row in rows:
        body = row[1:]
        period = next(p for p in range(5, 61) if torch.equal(body[p:], body[:-p]))
        periods.add(period)
    assert len(periods) > 10, "the period must vary from row to row (or a fixed offset solves the task)"
    with pytest.raises(ValueError, match="max_period < seq_len"):
        repeated.periodic_sequences(1, 10, 4096, 0, g, max_period=10)


def test_tied_embeddings_share_one_parameter_and_survive_a_checkpoint(tmp_path):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    from course_utils.zoo.recipes import ATTN_ONLY_2L
    from course_utils.zoo.train import tie_embeddings

    config = {**ATTN_ONLY_2L.config, "d_vocab": 64, "n_ctx": 16}
    model = TransformerBridge.boot_native(TransformerBridgeConfig.from_dict(config), tokenizer=None)
    n_untied = len(list(model.parameters()))
    tie_embeddings(model)
    assert len(list(model.parameters())) == n_untied - 1, "tying must leave one shared matrix, not two"
    with torch.no_grad():
        model.embed.original_component.weight.add_(1.0)
    assert torch.equal(model.W_U, model.W_E.T), "W_U must follow W_E once tied"
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fresh = TransformerBridge.boot_native(TransformerBridgeConfig.from_dict(config), tokenizer=None)
    fresh.load_state_dict(state, strict=True)
    assert torch.equal(fresh.W_U, fresh.W_E.T)


def test_markov_sequences_follow_each_rows_successors_over_a_small_alphabet():
    g = torch.Generator().manual_seed(0)
    rows = repeated.markov_sequences(32, 128, 4096, bos_id=0, generator=g)
    assert rows.shape == (32, 128) and (rows[:, 0] == 0).all() and (rows[:, 1:] > 0).all()
    followed = []
    for row in rows:
        body = row[1:].tolist()
        assert len(set(body)) <= 40, "a row walks over its own alphabet of at most 40 tokens"
        counts: dict[int, dict[int, int]] = {}
        for a, b in zip(body, body[1:]):
            counts.setdefault(a, {}).setdefault(b, 0)
            counts[a][b] += 1
        followed.append(sum(max(c.values()) for c in counts.values()) / (len(body) - 1))
    assert sum(followed) / len(followed) > 0.6, "a token's successor must come next far more often than chance"


@pytest.mark.parametrize("name", ["attn-only-2l", "facts-4l"])
def test_frozen_sinusoidal_positions_stay_fixed_in_training_and_ship_with_the_model(models, name):
    from course_utils.zoo.batches import periodic_batches
    from course_utils.zoo.train import SinusoidalPositions, freeze_sinusoidal_positions, sinusoidal_positions, train

    table = sinusoidal_positions(16, 8)
    assert torch.allclose(table.norm(dim=-1), torch.ones(16)), "every row has norm 1"
    assert torch.allclose(table[0, 1::2], torch.ones(4) / 2) and torch.allclose(table[0, 0::2], torch.zeros(4))
    block = sinusoidal_positions(16, 8, dims=4, norm=2.0)
    assert torch.equal(block[:, :4], torch.zeros(16, 4)) and torch.allclose(
        block[:, 4:], 2 * sinusoidal_positions(16, 4)
    )
    with pytest.raises(ValueError, match="dims must be even"):
        sinusoidal_positions(16, 8, dims=3)
    config = {**recipes.ATTN_ONLY_2L.config, "d_vocab": 64, "n_ctx": 16, "d_model": 8, "d_head": 4, "n_heads": 2}
    model = TransformerBridge.boot_native(TransformerBridgeConfig.from_dict(config), tokenizer=None)
    freeze_sinusoidal_positions(model, SinusoidalPositions(dims=4, norm=2.0))
    train(model, periodic_batches(64, 0, 4, 16, seed=0, min_period=2, max_period=4), steps=3, lr=1e-2)
    assert torch.equal(model.W_pos, block), "training must leave W_pos untouched"
    fixed = COURSE_MODELS[name].recipe().sinusoidal_positions
    shipped = models[name].W_pos
    assert fixed is not None, f"the card says {name}'s W_pos is fixed"
    # MKL computes sin/cos with CPU-specific code unless MKL_CBWR pins it, as the zoo does: in an
    # unpinned process on another CPU the table may differ in its last bits (seen: 501 of 16384 entries,
    # by up to 5e-7, on an AVX-512 Xeon), so this compares to within 2e-6 (another norm differs by ~1e-2).
    expected = sinusoidal_positions(*shipped.shape, fixed.dims, fixed.norm)
    torch.testing.assert_close(shipped, expected, rtol=0, atol=2e-6, msg=f"the card says {name}'s W_pos is {fixed}")


def test_the_town_world_is_as_chapter_02_describes_it(tokenizer):
    """Chapter 02 and facts-4l's card: 420 towns, each word in 40, both orders of a pair are towns
    (as a rule in different countries), 4-6 tokens each; "Selby Alden" in Poland, "Alden Selby" in Egypt."""
    from collections import Counter

    towns = recall.TOWNS
    assert len(towns) == 420 and len(recall.TOWN_WORDS) == 21
    assert set(Counter(w for t in towns for w in t.split()).values()) == {40}
    assert all(f"{b} {a}" in towns for a, b in (t.split() for t in towns))
    same = sum(towns[t] == towns[" ".join(t.split()[::-1])] for t in towns) // 2
    assert same <= 10, f"{same} of 210 word pairs name two towns in one country"
    assert towns["Selby Alden"] == "Poland" and towns["Alden Selby"] == "Egypt"
    lengths = {len(tokenizer.encode(" " + t, add_special_tokens=False)) for t in towns}
    assert min(lengths) == 4 and max(lengths) == 6


@pytest.fixture(scope="module")
def heldout_streams(tokenizer):
    return recipes.build_heldout_streams(tokenizer)


@pytest.mark.parametrize("name", COURSE_MODELS)
def test_model_meets_its_thresholds(models, heldout_streams, name):
    """The model's own evaluation (the one its card reports), re-run on the shipped weights."""
    entry = COURSE_MODELS[name]
    metrics = entry.evaluate(models[name], heldout_streams)
    failed = [
        f"{c.description}: {c.value:.3g} (need {c.op} {c.limit:g})" for c in entry.thresholds(metrics) if not c.passed
    ]
    assert not failed, failed


@pytest.mark.parametrize("name", COURSE_MODELS)
def test_every_course_model_has_its_recipe_thresholds_files_and_card(name):
    entry = COURSE_MODELS[name]
    assert entry.recipe().name == name and callable(entry.recipe().evaluate)
    manifest = checkpoint.read_manifest()
    for f in ("config.json", "model.safetensors", "MODEL_CARD.md"):
        assert f"{name}/{f}" in manifest, f"{name}/{f} is not in the manifest"
    assert entry.card().is_file() and entry.card().read_text().startswith(f"# {name}\n")


def test_the_recipes_and_the_registry_list_the_same_models():
    assert set(recipes.RECIPES) == set(COURSE_MODELS)
    assert {p.name for p in MODELS_DIR.iterdir() if (p / "config.json").is_file()} == set(COURSE_MODELS)


def _copy_zoo(tmp_path: Path, name: str) -> Path:
    shutil.copytree(MODELS_DIR / "tokenizer", tmp_path / "tokenizer")
    shutil.copytree(MODELS_DIR / name, tmp_path / name)
    shutil.copy(MODELS_DIR / "manifest.json", tmp_path / "manifest.json")
    return tmp_path


def test_corrupt_weights_give_a_clear_error(tmp_path):
    models_dir = _copy_zoo(tmp_path, "attn-only-1l")
    weights = models_dir / "attn-only-1l" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="checksum mismatch.*model.safetensors"):
        load_checkpoint("attn-only-1l", models_dir=models_dir)


def test_unreadable_weights_with_matching_manifest_give_a_clear_error(tmp_path):
    models_dir = _copy_zoo(tmp_path, "attn-only-1l")
    (models_dir / "attn-only-1l" / "model.safetensors").write_bytes(b"not a safetensors file")
    record_files(["attn-only-1l/model.safetensors"], models_dir)
    with pytest.raises(CheckpointError, match="cannot read .*model.safetensors"):
        load_checkpoint("attn-only-1l", models_dir=models_dir)


def test_missing_file_gives_a_clear_error(tmp_path):
    models_dir = _copy_zoo(tmp_path, "attn-only-1l")
    (models_dir / "attn-only-1l" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="missing file .*config.json.*python -m course_utils.zoo"):
        load_checkpoint("attn-only-1l", models_dir=models_dir)


def test_unknown_model_name_gives_a_clear_error():
    with pytest.raises(CheckpointError, match="unknown model 'gpt-5'"):
        load_checkpoint("gpt-5")


def test_model_cards_report_measured_figures():
    for name, entry in COURSE_MODELS.items():
        card = entry.card().read_text()
        assert "## Measured" in card and "wall time" in card
        assert "FAIL" not in card
        config = json.loads((MODELS_DIR / name / "config.json").read_text())
        assert config["d_vocab"] == len(load_tokenizer())


def test_attn_only_2l_previous_token_head_keeps_its_stripe_over_chapter_01s_paragraph(models):
    """Chapter 01 says the previous-token head keeps its stripe over the whole code paragraph (109 tokens)
    and prints its score in both halves; a retrain that breaks this must change that text too."""
    from course_utils.checks import hooks_basics

    model = models["attn-only-2l"]
    _, cache = model.run_with_cache(model.to_tokens(hooks_basics.CODE_TEXT))
    prev = cache["pattern", 0][0].diagonal(offset=-1, dim1=-2, dim2=-1).max(dim=0).values
    half = len(prev) // 2
    assert len(prev) > 100 and prev[:half].mean() >= 0.9 and prev[half:].mean() >= 0.9, prev


# ----------------------------------------------------------------- a model added through the registry alone

FAKE = "fake-1l"
FAKE_RECIPE = recipes.Recipe(
    name=FAKE,
    config={**recipes.ATTN_ONLY_1L.config, "n_layers": 1, "d_model": 16, "n_heads": 2, "d_head": 8, "n_ctx": 16},
    phases=(),
    data="Nothing: a test's model.",
    evaluate=lambda model, streams: {"fake_score": 0.75},
)


def fake_thresholds(m: dict) -> list[Check]:
    return [Check("fake score", m["fake_score"], ">=", 0.5)]


def test_a_model_added_to_the_registry_alone_reaches_the_zoo_the_loader_and_its_card(tmp_path, monkeypatch):
    import course_utils.checkpoint
    from course_utils import load_model
    from course_utils.models import ModelUnavailableError
    from course_utils.zoo.__main__ import _groups, parse_args
    from course_utils.zoo.cards import render_card
    from course_utils.zoo.checkpoint import save_checkpoint, save_tokenizer
    from course_utils.zoo.train import TrainLog

    entry = CourseModel(FAKE, f"{__name__}:FAKE_RECIPE", f"{__name__}:fake_thresholds")
    with pytest.raises(ModelUnavailableError, match="Unknown model 'fake-1l'"):
        load_model(FAKE)
    monkeypatch.setitem(COURSE_MODELS, FAKE, entry)

    assert parse_args(["--only", FAKE]).only == [FAKE]  # python -m course_utils.zoo --only fake-1l
    assert sorted(sum(_groups([FAKE, "gelu-4l"], 2), [])) == [FAKE, "gelu-4l"]
    models_dir = tmp_path / "models"
    save_tokenizer(load_tokenizer(), models_dir)
    model = TransformerBridge.boot_native(
        TransformerBridgeConfig.from_dict(FAKE_RECIPE.config), tokenizer=load_tokenizer()
    )
    metrics = entry.evaluate(model, None)
    card = render_card(entry.recipe(), TrainLog(1, 16, 1.0, [2.0]), metrics, entry.thresholds(metrics), threads=1)
    save_checkpoint(model, FAKE, card, FAKE_RECIPE.config, models_dir)

    monkeypatch.setattr(course_utils.checkpoint, "MODELS_DIR", models_dir)
    loaded = load_model(FAKE, device="cpu")
    assert loaded.cfg.d_model == 16 and not loaded.training
    assert "| fake score | 0.75 | >= 0.5 | PASS |" in entry.card(models_dir).read_text()


def test_a_recipes_exploratory_runs_become_a_table_of_its_card_and_ragged_rows_are_refused():
    from course_utils.zoo.cards import render_card
    from course_utils.zoo.train import TrainLog

    runs = recipes.ExploratoryRuns("Tried:", ("run", "score"), (("wider", 0.5),))
    recipe = dataclasses.replace(FAKE_RECIPE, exploratory=(runs,))
    card = render_card(recipe, TrainLog(1, 16, 1.0, [2.0]), {"fake_score": 0.75}, [], threads=1)
    assert "## Exploratory runs (not shipped)\n\nTried:\n\n| run | score |\n| --- | --- |\n| wider | 0.5 |" in card
    assert "Exploratory" not in render_card(FAKE_RECIPE, TrainLog(1, 16, 1.0, [2.0]), {}, [], threads=1)
    with pytest.raises(ValueError, match="needs 2 cells"):
        recipes.ExploratoryRuns("Tried:", ("run", "score"), (("wider",),))


def test_a_share_equal_to_its_bar_meets_it():
    """180 hits of 200 is 0.9: a float32 mean (0.8999999762) would fail a >= 0.9 check."""
    hits = torch.arange(200) < 180
    assert Check("share", evaluate.share(hits), ">=", 0.9).passed
    assert not Check("share", hits.float().mean().item(), ">=", 0.9).passed
