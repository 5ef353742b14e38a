"""The learner-check harness: run a learner's function and the reference on the same
real inputs and say, in one line, whether they agree and, if not, what differs.

A chapter's check module (``course_utils.checks.<chapter>``) builds ``Case``s and
calls :func:`check`. Printing is for the notebook; the returned :class:`CheckResult`
is for tests (it is truthy only when the check passed). Set the environment variable
``COURSE_STRICT_CHECKS=1`` to make a failed check raise :class:`CheckFailed`
(CI does this when it executes the solution notebooks).

In a Jupyter kernel the line is shown as a display output whose bundle also carries the
outcome as data (:data:`RESULT_MIME`: ``{exercise, status, message}``), which ``make
progress`` and ``make grade`` read. The learner's function runs under a time limit
(:func:`time_limit_for`), so an infinite loop becomes a failed check, not a hung notebook.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import tqdm
from transformer_lens import ActivationCache

PASS, FAIL, TODO = "✓", "✗", "…"
PASSED, FAILED, NOT_ATTEMPTED, ERROR = "passed", "failed", "not attempted", "error"
Status = Literal["passed", "failed", "not attempted", "error"]
"""One vocabulary for the harness, ``make progress`` and ``make grade``; ``error`` means the
notebook itself could not run (it never comes from a check)."""
RESULT_MIME = "application/vnd.mechinterp.check+json"
TIME_LIMIT_ENV = "COURSE_CHECK_TIME_LIMIT"
GRACE_SECONDS, SLOWDOWN = 10.0, 10.0


class CheckFailed(AssertionError):
    """Raised by a failed check in strict mode (``COURSE_STRICT_CHECKS=1``)."""


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check; ``bool(result)`` is True only if it passed."""

    name: str
    status: Status
    message: str

    def __bool__(self) -> bool:
        return self.status == "passed"

    def __str__(self) -> str:
        return self.message

    def _ipython_display_(self) -> None:
        """The line was already printed; show nothing more in a notebook."""


@dataclass
class Case:
    """One set of inputs. ``label`` names it in messages (e.g. ``'prompt "Paris"'``)."""

    label: str
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tolerance:
    atol: float = 1e-4
    rtol: float = 1e-4


def describe_difference(
    actual: Any,
    expected: Any,
    tol: Tolerance = Tolerance(),
    index_names: Sequence[str] | None = None,
    what: str = "output",
) -> str | None:
    """Return None if ``actual`` matches ``expected``, else one phrase saying where it differs.

    Tensors: shape, then kind of dtype (float vs integer vs bool; float32 and float64
    are both fine), then the worst element. ``index_names`` names the tensor's
    dimensions (``("layer", "head")``) so the worst element reads ``layer 2, head 3``.
    Sequences, mappings, numbers and strings are compared element by element.
    """
    if isinstance(expected, torch.Tensor):
        return _tensor_difference(actual, expected, tol, index_names, what)
    if isinstance(expected, bool) or isinstance(expected, str):
        return None if actual == expected else f"{what} is {_shown(actual)} but expected {_shown(expected)}"
    if isinstance(expected, (int, float, np.floating, np.integer)):
        return _number_difference(actual, expected, tol, what)
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return f"{what} is a {type(actual).__name__}, expected a dict"
        if set(actual) != set(expected):
            return f"{what} has keys {sorted(actual)} but expected {sorted(expected)}"
        for key in expected:
            diff = describe_difference(actual[key], expected[key], tol, index_names, f"{what}[{key!r}]")
            if diff:
                return diff
        return None
    if isinstance(expected, (list, tuple)):
        if isinstance(actual, torch.Tensor) or not isinstance(actual, (list, tuple)):
            return f"{what} is a {type(actual).__name__}, expected a {type(expected).__name__}"
        if len(actual) != len(expected):
            return f"{what} has {len(actual)} items but expected {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            diff = describe_difference(a, e, tol, None, f"{what}[{i}]")
            if diff:
                return diff
        return None
    return None if actual == expected else f"{what} is {_shown(actual)} but expected {_shown(expected)}"


def _shown(value: Any) -> str:
    """``repr`` on one line, numpy scalars and 0-d tensors as plain Python numbers."""
    if isinstance(value, np.generic) or (isinstance(value, torch.Tensor) and value.dim() == 0):
        value = value.item()
    text = " ".join(repr(value).split())
    return text if len(text) <= 120 else text[:119] + "…"


def _number_difference(actual: Any, expected: float, tol: Tolerance, what: str) -> str | None:
    if isinstance(actual, torch.Tensor) and actual.numel() == 1:
        actual = actual.item()
    if not isinstance(actual, (int, float, np.floating, np.integer)) or isinstance(actual, bool):
        return f"{what} is a {type(actual).__name__}, expected a number"
    if isinstance(expected, (int, np.integer)) and not float(actual).is_integer():
        return f"{what} is {float(actual):.4g} but expected the whole number {int(expected)}"
    if math.isclose(float(actual), float(expected), rel_tol=tol.rtol, abs_tol=tol.atol):
        return None
    if isinstance(actual, (int, np.integer)) and not float(expected).is_integer():
        return (
            f"{what} is the integer {int(actual)} but expected {float(expected):.4g} — "
            "is an integer division (`//`) or an `int(...)` dropping the fraction?"
        )
    return f"{what} is {float(actual):.4g} but expected {float(expected):.4g}"


def _dtype_kind(t: torch.Tensor) -> str:
    if t.dtype == torch.bool:
        return "bool"
    return "float" if t.is_floating_point() else "integer"


def _tensor_difference(
    actual: Any, expected: torch.Tensor, tol: Tolerance, index_names: Sequence[str] | None, what: str
) -> str | None:
    if not isinstance(actual, torch.Tensor):
        return f"{what} is a {type(actual).__name__}, expected a torch.Tensor of shape {tuple(expected.shape)}"
    if actual.shape != expected.shape:
        return f"{what} has shape {tuple(actual.shape)} but expected {tuple(expected.shape)}"
    if _dtype_kind(actual) != _dtype_kind(expected):
        because = (
            " — an integer division (`//`), `.long()` or `.int()` drops the fractions"
            if _dtype_kind(actual) == "integer" and _dtype_kind(expected) == "float"
            else ""
        )
        return f"{what} has dtype {actual.dtype} but expected a {_dtype_kind(expected)} tensor{because}"
    a, e = actual.detach().cpu(), expected.detach().cpu()
    if _dtype_kind(expected) != "float":
        wrong = (a != e).nonzero()
        if len(wrong) == 0:
            return None
        idx = tuple(wrong[0].tolist())
        return f"{what}{_where(idx, index_names)} is {a[idx].item()} but expected {e[idx].item()} ({len(wrong)} of {e.numel()} elements differ)"
    low_precision = actual.dtype in (torch.float16, torch.bfloat16)
    a, e = a.double(), e.double()
    if not torch.isfinite(a).all():
        idx = tuple((~torch.isfinite(a)).nonzero()[0].tolist())
        overflow = (
            f" — {_dtype_name(actual)} overflows past {torch.finfo(actual.dtype).max:.0f}" if low_precision else ""
        )
        return f"{what}{_where(idx, index_names)} is {a[idx].item()} (not finite){overflow}"
    err = (a - e).abs()
    bad = err > tol.atol + tol.rtol * e.abs()
    if not bad.any():
        return None
    idx = tuple(np.unravel_index(int(torch.argmax(err * bad)), tuple(e.shape))) if e.dim() else ()
    message = (
        f"{what}{_where(idx, index_names)} is {a[idx].item():.4g} but expected {e[idx].item():.4g} "
        f"(max abs error {err.max().item():.3g}; {int(bad.sum())} of {e.numel()} elements differ)"
    )
    if low_precision:
        return f"{message} — your output is {_dtype_name(actual)}, which keeps about 3 significant digits: compute in float32"
    if bool(a.any()) and torch.equal(a, a.round()) and not torch.equal(e, e.round()):
        return f"{message} — all your values are whole numbers: is an integer division (`//`) or a rounding dropping the fractions?"
    return message


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _where(idx: tuple[int, ...], index_names: Sequence[str] | None) -> str:
    idx = tuple(int(i) for i in idx)
    if not idx:
        return ""
    if index_names and len(index_names) == len(idx):
        return " at " + ", ".join(f"{n} {i}" for n, i in zip(index_names, idx))
    return f" at index {list(idx)}"


def _tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor inside ``value`` (tensors, caches, mappings, sequences)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, ActivationCache):
        return list(value.values())
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _mutated_input(case: Case, before: list[list[torch.Tensor]]) -> str | None:
    """Say which input the learner modified in place, and put its values back."""
    values = list(case.args) + list(case.kwargs.values())
    names = [f"argument {i + 1}" for i in range(len(case.args))] + [f"`{k}`" for k in case.kwargs]
    problem = None
    for name, value, old in zip(names, values, before):
        for live, saved in zip(_tensors(value), old):
            if live.shape == saved.shape and torch.equal(live, saved):
                continue
            problem = problem or f"your function modified its input ({name}) in place — work on a copy (`.clone()`)"
            if live.shape == saved.shape:
                with torch.no_grad():
                    live.copy_(saved)
    return problem


def _leftover_hooks(case: Case) -> str | None:
    """Remove hooks the learner left on a model argument, and say which."""
    for value in list(case.args) + list(case.kwargs.values()):
        hook_dict = getattr(value, "hook_dict", None)
        if not isinstance(hook_dict, Mapping):
            continue
        left = [name for name, hp in hook_dict.items() if getattr(hp, "_forward_hooks", None)]
        if left:
            value.reset_hooks(including_permanent=True)
            # The bridge lists each hook point under several names; prefer the familiar one.
            familiar = [n for n in left if not n.endswith(("hook_in", "hook_out"))] or left
            return (
                f"your function left a hook attached to {familiar[0]} — use `model.run_with_hooks(...)` "
                "or `with model.hooks(...):` so hooks are removed after the run"
            )
    return None


def _error_line(err: BaseException, fn: Callable) -> str:
    """``'ValueError: ... (line 12: x = y @ z)'``, pointing into the learner's own code."""
    filename = getattr(getattr(fn, "__code__", None), "co_filename", None)
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == filename]
    where = f" (line {frames[-1].lineno}: {frames[-1].line.strip()})" if frames and frames[-1].line else ""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}{': ' + text[:200] if text else ''}{where}"


class TookTooLong(BaseException):
    """Raised inside the learner's function when it runs past its time limit.

    A ``BaseException``, so that a learner's ``except Exception`` cannot swallow it."""


def time_limit_for(reference_seconds: float, chosen: float | None = None) -> float:
    """Seconds the learner's function may take on one case: ``$COURSE_CHECK_TIME_LIMIT`` when
    set (for slow machines), else the check's ``chosen`` limit, else ``GRACE_SECONDS`` plus
    ``SLOWDOWN`` times the reference's own time."""
    configured = os.environ.get(TIME_LIMIT_ENV)
    if configured:
        return float(configured)
    return chosen if chosen is not None else GRACE_SECONDS + SLOWDOWN * reference_seconds


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`TookTooLong` in the body after ``seconds`` (POSIX main thread; elsewhere no limit)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise TookTooLong(seconds)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _publish(result: CheckResult) -> None:
    """Show the check's line. In a Jupyter kernel it is a display output whose bundle also
    carries ``{exercise, status, message}`` as :data:`RESULT_MIME`; elsewhere it is printed."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if getattr(shell, "kernel", None) is None:
        print(result.message)
        return
    data = {"exercise": result.name, "status": result.status, "message": result.message}
    ipython.display.display({"text/plain": result.message, RESULT_MIME: data}, raw=True)


def _emit(name: str, status: Status, message: str) -> CheckResult:
    result = CheckResult(name, status, message)
    _publish(result)
    if status != PASSED and os.environ.get("COURSE_STRICT_CHECKS") == "1":
        raise CheckFailed(message)
    return result


def reject(name: str, diagnosis: str) -> CheckResult:
    """Fail check ``name`` with ``diagnosis`` before comparing outputs (a problem a check finds
    by its own means, such as seeding): ``✗ name: <diagnosis>``."""
    return _emit(name, FAILED, f"{FAIL} {name}: {diagnosis}")


@contextlib.contextmanager
def quiet_progress_bars():
    """While inside, tqdm bars are off unless a call passes ``disable=`` itself (every tqdm
    class, the notebook's included, initialises through ``tqdm.std.tqdm.__init__``).
    :func:`check` runs in it: the sweeps it runs would fill notebooks and logs with bars."""
    original = tqdm.std.tqdm.__init__

    @functools.wraps(original)
    def init(self, *args, **kwargs):
        kwargs.setdefault("disable", True)
        original(self, *args, **kwargs)

    tqdm.std.tqdm.__init__ = init
    try:
        yield
    finally:
        tqdm.std.tqdm.__init__ = original


def cached_by_inputs(fn: Callable) -> Callable:
    """``fn`` computed once per session for each set of inputs, recognised by identity.

    For expensive references and known mistakes (a patching sweep): a check builds its inputs
    once (``functools.cache``), so the same objects come back on every run. Each result keeps
    its inputs alive, so their ids cannot be reused by other objects.
    """
    store: dict = {}

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        key = tuple(map(id, args)) + tuple(sorted((k, id(v)) for k, v in kwargs.items()))
        if key not in store:
            store[key] = (fn(*args, **kwargs), args, kwargs)
        return store[key][0]

    return wrapper


@quiet_progress_bars()
def check(
    name: str,
    learner_fn: Callable,
    reference_fn: Callable,
    cases: Sequence[Case],
    *,
    tol: Tolerance = Tolerance(),
    index_names: Sequence[str] | None = None,
    known_mistakes: Mapping[str, Callable] | None = None,
    compare: Callable[[Any, Any], str | None] | None = None,
    time_limit: float | None = None,
) -> CheckResult:
    """Compare ``learner_fn`` with ``reference_fn`` on every case; print and return one line.

    ``known_mistakes`` maps a diagnosis (``"is the final LayerNorm applied twice?"``) to a
    function implementing that mistake: when the learner's output matches it, the
    failure line names the diagnosis. ``compare(actual, expected)`` replaces the default
    :func:`describe_difference` for outputs that need a custom notion of "equal".
    ``time_limit`` (seconds per case) replaces the default of :func:`time_limit_for`.
    """
    compare = compare or (lambda a, e: describe_difference(a, e, tol, index_names))
    for case in cases:
        started = time.perf_counter()
        expected = reference_fn(*case.args, **case.kwargs)
        limit = time_limit_for(time.perf_counter() - started, time_limit)
        before = [[t.detach().clone() for t in _tensors(v)] for v in list(case.args) + list(case.kwargs.values())]
        try:
            with _time_limit(limit):
                actual = learner_fn(*case.args, **case.kwargs)
        except NotImplementedError:
            _leftover_hooks(case)
            return _emit(name, NOT_ATTEMPTED, f"{TODO} {name} is not implemented yet.")
        except TookTooLong:
            _leftover_hooks(case)
            _mutated_input(case, before)
            return _emit(
                name,
                FAILED,
                f"{FAIL} {name}: on {case.label}, your function took longer than {round(limit, 1):g} s — is there an infinite loop?",
            )
        except Exception as err:  # noqa: BLE001 - any learner error becomes one line
            _leftover_hooks(case)
            return _emit(
                name, FAILED, f"{FAIL} {name}: on {case.label}, your function raised {_error_line(err, learner_fn)}"
            )
        except BaseException:  # an interrupt: leave the model and the inputs as they were, then stop
            _leftover_hooks(case)
            _mutated_input(case, before)
            raise
        problem = _leftover_hooks(case) or _mutated_input(case, before)
        if problem is None and actual is None and expected is not None:
            problem = "your function returned None — did you forget `return`?"
        if problem is None:
            diff = compare(actual, expected)
            if diff is None:
                continue
            problem = diff + _diagnose(actual, case, known_mistakes or {}, compare)
        return _emit(name, FAILED, f"{FAIL} {name}: on {case.label}, {problem}")
    n = len(cases)
    return _emit(name, PASSED, f"{PASS} {name}: matches the reference on {n} input{'s' if n != 1 else ''}.")


def _diagnose(actual: Any, case: Case, known_mistakes: Mapping[str, Callable], compare: Callable) -> str:
    for diagnosis, wrong_fn in known_mistakes.items():
        if _same_output(actual, wrong_fn(*case.args, **case.kwargs), compare):
            return f" — {diagnosis}"
    return ""


def _same_output(actual: Any, wrong: Any, compare: Callable) -> bool:
    """Whether the learner's output is a known mistake's: ``compare`` finds no difference, or both are
    the same tensor with infinities or NaNs (which ``compare`` reports as not finite before any value)."""
    if compare(actual, wrong) is None:
        return True
    if not (isinstance(actual, torch.Tensor) and isinstance(wrong, torch.Tensor)) or actual.shape != wrong.shape:
        return False
    a, w = actual.detach().double().cpu(), wrong.detach().double().cpu()
    return not a.isfinite().all() and torch.allclose(a, w, equal_nan=True)


def answer_readings(given: Any) -> list[Any]:
    """``given``, then what a learner may reasonably have meant by it in another type.

    ``'True'`` → True, ``'3'``/``torch.tensor(3)``/``np.int64(3)``/``3.0`` → 3, ``'0.5'`` → 0.5,
    ``'(1, 2)'`` → (1, 2), and a list ↔ a tuple.
    """
    readings = [given]
    if isinstance(given, torch.Tensor) and given.numel() == 1:
        readings.append(given.item())
    elif isinstance(given, np.generic):
        readings.append(given.item())
    elif isinstance(given, str):
        text = given.strip()
        if text.lower() in ("true", "false"):
            readings.append(text.lower() == "true")
        else:
            with contextlib.suppress(ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                value = ast.literal_eval(text)
                if isinstance(value, (int, float, tuple, list)):
                    readings.append(value)
    for value in list(readings):
        if isinstance(value, float) and value.is_integer():
            readings.append(int(value))
        if isinstance(value, (list, tuple)):
            readings.append(tuple(value) if isinstance(value, list) else list(value))
    return readings


def _accepts(accepted: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(accepted(value))
    except Exception:  # noqa: BLE001 - an answer of a type the test does not handle is not right
        return False


def check_answer(name: str, given: Any, accepted: Callable[[Any], bool], hint: str) -> CheckResult:
    """Check a "check your understanding" answer; ``hint`` is shown when it is wrong.

    ``accepted`` sees the answer as given and then each of :func:`answer_readings`, so
    ``'True'`` answers a yes/no question and ``torch.tensor(3)`` names head 3. The hint
    should make the learner think, never state the answer.
    """
    if given is ...:
        return _emit(name, NOT_ATTEMPTED, f"{TODO} {name} is not answered yet.")
    if any(_accepts(accepted, value) for value in answer_readings(given)):
        return _emit(name, PASSED, f"{PASS} {name}: correct.")
    return _emit(name, FAILED, f"{FAIL} {name}: {_shown(given)} is not right — {hint}")
