"""Helpers shared by the chapter test files: a stub that is not written yet, and the assertion
that a check rejected an answer in one readable line."""


def stub(*args, **kwargs):
    raise NotImplementedError("write this function")


def rejected(result, *phrases):
    """The check failed, in one line, and the message names every phrase."""
    assert not result, f"accepted a wrong answer: {result.message}"
    assert result.status == "failed"
    assert "\n" not in result.message
    for phrase in phrases:
        assert phrase in result.message, f"{phrase!r} not in {result.message!r}"
    return True
