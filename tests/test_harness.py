"""The check harness itself: it must fail on wrong answers and say why in one line."""
import pytest
import torch

from course_utils.harness import Case, CheckFailed, Tolerance, check, check_answer, describe_difference


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
    assert not result and result.status == "not implemented"
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
    assert check_answer("q1", ..., lambda a: a == 3, "count again").status == "not implemented"


def test_modified_input_is_restored_for_the_next_check():
    x = torch.arange(1.0, 7.0)
    assert not check("double", lambda x: x.mul_(2), ref, [Case("a tensor", (x,))])
    assert torch.equal(x, torch.arange(1.0, 7.0))
