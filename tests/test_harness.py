"""The check harness itself: it must fail on wrong answers and say why in one line."""

import numpy as np
import pytest
import torch

from course_utils.harness import Case, CheckFailed, Tolerance, check, check_answer, describe_difference, reject


def ref(x: torch.Tensor) -> torch.Tensor:
    return x * 2


CASES = [Case("a small tensor", (torch.arange(6.0).reshape(2, 3),))]


def test_pass_line(capsys):
    result = check("double", lambda x: x + x, ref, CASES)
    assert result
    assert capsys.readouterr().out.strip() == "✓ double: matches the reference on 1 input."


def test_stub_is_not_implemented(capsys):
    def stub(x):
        raise NotImplementedError

    result = check("double", stub, ref, CASES)
    assert not result and result.status == "not attempted"
    assert "double is not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, phrase",
    [
        (lambda x: x * 3, "max abs error"),
        (lambda x: (x * 2)[0], "shape (3,) but expected (2, 3)"),
        (lambda x: (x * 2).long(), "dtype torch.int64"),
        (lambda x: (x * 2).tolist(), "expected a torch.Tensor"),
        (lambda x: None, "did you forget `return`"),
        (lambda x: x.mul_(2), "modified its input"),
        (lambda x: x / 0 * 0, "not finite"),
    ],
)
def test_wrong_answers_fail_with_one_line(wrong, phrase):
    result = check("double", wrong, ref, [Case("a small tensor", (torch.arange(1.0, 7.0).reshape(2, 3),))])
    assert not result
    assert phrase in result.message and "\n" not in result.message


def test_learner_exception_is_one_line_with_location():
    def broken(x):
        y = x @ torch.ones(5)
        return y

    result = check("double", broken, ref, CASES)
    assert not result
    assert "RuntimeError" in result.message and "line" in result.message and "\n" not in result.message


def test_known_mistake_is_named():
    result = check("double", lambda x: x * 3, ref, CASES, known_mistakes={"did you triple?": lambda x: x * 3})
    assert result.message.endswith("— did you triple?")


def test_known_mistake_with_infinities_is_named():
    def one_over(x):
        return 1 / (x - x)

    result = check("double", one_over, ref, CASES, known_mistakes={"divided by zero?": one_over})
    assert "not finite" in result.message and result.message.endswith("— divided by zero?")
    other = check("double", one_over, ref, CASES, known_mistakes={"negated?": lambda x: -1 / (x - x)})
    assert not other.message.endswith("?"), "a mistake with other infinities must not be named"


def test_other_float_dtype_is_accepted():
    assert check("double", lambda x: (x * 2).double(), ref, CASES)


def test_index_names_locate_the_error():
    msg = describe_difference(torch.zeros(2, 3), torch.eye(2, 3), Tolerance(), index_names=("layer", "head"))
    assert "at layer 0, head 0" in msg


def test_sequences_numbers_and_strings():
    assert describe_difference([1.0, "a"], [1.0, "a"]) is None
    assert "output[1]" in describe_difference([1.0, "b"], [1.0, "a"])
    assert "expected the whole number 3" in describe_difference(2.5, 3)
    assert describe_difference(torch.tensor(3.0), 3.0) is None
    assert "has 1 items" in describe_difference((1,), (1, 2))


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(CheckFailed, match="double"):
        check("double", lambda x: x * 3, ref, CASES)


def test_reject_fails_a_check_in_one_line_and_strict_mode_raises(capsys, monkeypatch):
    result = reject("f", "every row is the same sequence")
    assert not result and result.status == "failed"
    assert result.message == capsys.readouterr().out.strip() == "✗ f: every row is the same sequence"
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(CheckFailed, match="every row"):
        reject("f", "every row is the same sequence")


def test_leftover_hooks_are_reported_and_removed():
    from course_utils import random_model

    model = random_model(n_layers=1, attn_only=True)
    tokens = torch.tensor([[1, 2, 3]])

    def leaves_hook(model, tokens):
        model.add_hook("blocks.0.attn.hook_z", lambda z, hook: z)
        return model(tokens)

    result = check("run", leaves_hook, lambda model, tokens: model(tokens), [Case("three tokens", (model, tokens))])
    assert not result and "left a hook attached to blocks.0.attn.hook_z" in result.message
    assert not any(hp._forward_hooks for hp in model.hook_dict.values())


def test_check_answer():
    assert check_answer("q1", 3, lambda a: a == 3, "count again")
    assert not check_answer("q1", 4, lambda a: a == 3, "count again")
    assert check_answer("q1", ..., lambda a: a == 3, "count again").status == "not attempted"


def test_modified_input_is_restored_for_the_next_check():
    x = torch.arange(1.0, 7.0)
    assert not check("double", lambda x: x.mul_(2), ref, [Case("a tensor", (x,))])
    assert torch.equal(x, torch.arange(1.0, 7.0))


# ----------------------------------------------------------------- time limit


@pytest.fixture(autouse=True)
def _default_time_limits(monkeypatch):
    from course_utils import harness

    monkeypatch.delenv(harness.TIME_LIMIT_ENV, raising=False)


def test_an_infinite_loop_fails_after_the_time_limit():
    def spins(x):
        while True:
            x = x + 0

    result = check("double", spins, ref, CASES, time_limit=0.5)
    assert not result and result.status == "failed"
    assert (
        result.message
        == "✗ double: on a small tensor, your function took longer than 0.5 s — is there an infinite loop?"
    )


def test_the_default_time_limit_follows_the_reference_and_the_environment(monkeypatch):
    from course_utils import harness

    monkeypatch.delenv(harness.TIME_LIMIT_ENV, raising=False)
    assert harness.time_limit_for(0.2) == harness.GRACE_SECONDS + harness.SLOWDOWN * 0.2
    assert harness.time_limit_for(0.2, chosen=60) == 60
    monkeypatch.setenv(harness.TIME_LIMIT_ENV, "1.5")
    assert harness.time_limit_for(0.2) == 1.5 and harness.time_limit_for(0.2, chosen=60) == 1.5

    def spins(x):
        while True:
            pass

    result = check("double", spins, ref, CASES)
    assert "took longer than 1.5 s — is there an infinite loop?" in result.message


def test_a_timed_out_function_leaves_no_hook_and_no_alarm():
    import signal

    from course_utils import random_model

    model = random_model(n_layers=1, attn_only=True)
    tokens = torch.tensor([[1, 2, 3]])

    def hooks_then_spins(model, tokens):
        model.add_hook("blocks.0.attn.hook_z", lambda z, hook: z)
        while True:
            pass

    result = check(
        "run",
        hooks_then_spins,
        lambda model, tokens: model(tokens),
        [Case("three tokens", (model, tokens))],
        time_limit=0.3,
    )
    assert "took longer than" in result.message
    assert not any(hp._forward_hooks for hp in model.hook_dict.values())
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.default_int_handler, None)


def test_an_interrupt_still_removes_hooks_and_propagates():
    from course_utils import random_model

    model = random_model(n_layers=1, attn_only=True)
    tokens = torch.tensor([[1, 2, 3]])

    def hooks_then_interrupted(model, tokens):
        model.add_hook("blocks.0.attn.hook_z", lambda z, hook: z)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        check(
            "run", hooks_then_interrupted, lambda model, tokens: model(tokens), [Case("three tokens", (model, tokens))]
        )
    assert not any(hp._forward_hooks for hp in model.hook_dict.values())


def test_except_exception_cannot_swallow_the_time_limit():
    def stubborn(x):
        while True:
            try:
                while True:
                    pass
            except Exception:  # noqa: BLE001
                pass

    assert "took longer than" in check("double", stubborn, ref, CASES, time_limit=0.3).message


# ----------------------------------------------------------------- messages


def test_indices_are_plain_numbers():
    msg = describe_difference(torch.zeros(3, 4), torch.eye(3, 4) * 2)
    assert "at index [0, 0]" in msg and "np." not in msg
    assert "np." not in describe_difference(np.int64(2), 3) and "np." not in describe_difference(np.str_("a"), "b")


def test_float16_is_named_when_it_explains_the_difference():
    expected = torch.linspace(1000.0, 1001.0, 5)
    msg = describe_difference(expected.half(), expected)
    assert "float16" in msg and "float32" in msg
    assert "float16" in describe_difference(torch.full((2,), 70000.0).half(), torch.ones(2))


def test_an_integer_division_is_named():
    expected = torch.tensor([0.5, 1.5, 2.5])
    assert "integer division" in describe_difference(torch.tensor([0, 1, 2]), expected)
    assert "integer division" in describe_difference(torch.tensor([0.0, 1.0, 2.0]), expected)
    assert "integer division" in describe_difference(2, 2.5)
    assert "integer division" not in describe_difference(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 3.0]))


# ----------------------------------------------------------------- typed answers


@pytest.mark.parametrize(
    "given, accepted",
    [
        ("True", lambda a: a is True),
        (" false ", lambda a: a is False),
        (torch.tensor(3), lambda a: isinstance(a, int) and not isinstance(a, bool) and a == 3),
        ("3", lambda a: isinstance(a, int) and not isinstance(a, bool) and a == 3),
        (np.int64(3), lambda a: isinstance(a, int) and a == 3),
        ("24", lambda a: not isinstance(a, bool) and isinstance(a, (int, float)) and a == 24),
        (24.0, lambda a: isinstance(a, int) and a == 24),
        ([1, 1], lambda a: isinstance(a, tuple) and a == (1, 1)),
        ((1, 1), lambda a: isinstance(a, list) and a == [1, 1]),
        ("(0, 1)", lambda a: a == (0, 1)),
        (torch.tensor(0.5), lambda a: a == 0.5),
    ],
)
def test_answers_in_another_reasonable_type_are_accepted(given, accepted):
    assert check_answer("q", given, accepted, "think again")


def test_a_wrong_answer_gets_the_hint_on_one_line_and_odd_types_do_not_crash():
    result = check_answer("q", torch.tensor(4), lambda a: a == 3, "count the heads in layer 1")
    assert not result and result.message == "✗ q: 4 is not right — count the heads in layer 1"
    assert not check_answer("q", [[1, 2]], lambda a: a in {3}, "hint")  # unhashable: no TypeError
    assert not check_answer("q", "maybe", lambda a: a is True, "hint")
    assert not check_answer("q", 1, lambda a: a is True, "hint")  # 1 is not read as True


# ----------------------------------------------------------------- results as data


def test_in_a_kernel_the_line_is_a_display_output_carrying_the_result(monkeypatch):
    import sys
    import types

    from course_utils import harness

    shown = []
    fake_ipython = types.SimpleNamespace(
        get_ipython=lambda: types.SimpleNamespace(kernel=object()),
        display=types.SimpleNamespace(display=lambda data, raw: shown.append((data, raw))),
    )
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    check("double", lambda x: x * 3, ref, CASES)
    ((data, raw),) = shown
    assert raw and data["text/plain"].startswith("✗ double: on a small tensor")
    assert data[harness.RESULT_MIME] == {"exercise": "double", "status": "failed", "message": data["text/plain"]}
