"""A zoo retrain gives the same bytes on other CPUs: pinned numerics, ``--verify``, no machine paths.

The slow tests stand in for two machines by running in subprocesses under two CPU capabilities
(the AVX-512 kernels this CPU would pick, and AVX2 kernels everywhere)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils.tasks import ternary
from course_utils.zoo import checkpoint, determinism, fingerprint
from course_utils.zoo.__main__ import compare, main
from course_utils.zoo.checkpoint import MODELS_DIR, CheckpointError

ROOT = Path(__file__).resolve().parents[1]
MACHINES = {
    "this CPU's best kernels": {},
    "an AVX2 CPU": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}


def _environ(machine: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in determinism.PINNED_ENV}
    return {**env, **machine, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}


def _python(code: str, machine: dict[str, str]) -> str:
    """Standard output of ``python -c code`` in a fresh process on the stand-in ``machine``."""
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_environ(machine), capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def test_shipped_ternary_eval_names_package_relative_sources():
    sources = [p.source for p in ternary.load_ternary_eval()]
    assert len(sources) == 800
    for source in sources:
        assert re.fullmatch(r"(stdlib|torch|transformers)/[\w./-]+\.py", source), source


def test_package_relative_takes_the_innermost_root(tmp_path):
    roots = {"stdlib": tmp_path / "lib", "torch": tmp_path / "lib" / "site-packages" / "torch"}
    assert ternary.package_relative(roots["torch"] / "nn" / "linear.py", roots) == "torch/nn/linear.py"
    assert ternary.package_relative(roots["stdlib"] / "json" / "decoder.py", roots) == "stdlib/json/decoder.py"
    with pytest.raises(ValueError, match="in none of the roots stdlib, torch"):
        ternary.package_relative(tmp_path / "elsewhere.py", roots)


def test_ternary_eval_is_checked_against_the_manifest(tmp_path):
    for name in (ternary.EVAL_FILE.name, checkpoint.MANIFEST):
        shutil.copy(MODELS_DIR / name, tmp_path / name)
    path = tmp_path / ternary.EVAL_FILE.name
    assert len(ternary.load_ternary_eval("trusted", path)) == 400
    path.write_text(path.read_text().replace('"trusted"', '"anomalous"', 1))
    with pytest.raises(CheckpointError, match="checksum mismatch .*ternary_eval.json"):
        ternary.load_ternary_eval(path=path)
    (tmp_path / checkpoint.MANIFEST).write_text(json.dumps({"files": {}}))
    with pytest.raises(CheckpointError, match="not listed"):
        ternary.load_ternary_eval(path=path)


def test_pinned_environment_overrides_values_set_from_outside():
    env = determinism.pinned_environ({"ATEN_CPU_CAPABILITY": "avx512", "HOME": "/home/x"})
    assert env["ATEN_CPU_CAPABILITY"] == "avx2" and env["HOME"] == "/home/x"
    assert determinism.is_pinned(env)
    assert not determinism.is_pinned({**env, "MKL_CBWR": "AUTO"})


def test_compare_tells_identical_files_wall_times_and_differences(tmp_path):
    shipped, retrained = tmp_path / "shipped", tmp_path / "retrained"
    card = "# m\n\n- steps: 10\n- wall time: {} s on CPU with 2 torch thread(s)\n"
    files = {
        "same.json": ("{}", "{}"),
        "m/MODEL_CARD.md": (card.format(100), card.format(97)),
        "n/MODEL_CARD.md": (card.format(100), card.format(100).replace("10", "11")),
        "m/model.safetensors": ("a", "b"),
    }
    for rel, (old, new) in files.items():
        for folder, text in ((shipped, old), (retrained, new)):
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
    (retrained / "new.json").write_text("{}")
    rows = compare([*files, "new.json"], shipped, retrained)
    assert [r[3] for r in rows] == ["yes", "yes (wall time differs)", "NO", "NO", "NO"]
    assert rows[-1][1] == "(missing)"


@pytest.mark.parametrize("argv", [["--verify", "--steps-scale", "0.5"], ["--verify", "--out", str(MODELS_DIR)]])
def test_verify_refuses_runs_that_cannot_match(argv, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error: --verify")


@pytest.mark.slow
@pytest.mark.integration
def test_zoo_retrain_is_byte_identical_under_two_cpu_capabilities(tmp_path):
    """The zoo entry point pins the numerics itself, whatever the caller's environment says."""
    digests = {}
    for machine, env in MACHINES.items():
        out = tmp_path / machine.replace(" ", "_")
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "course_utils.zoo",
                "--only",
                "attn-only-2l",
                "--steps-scale",
                "0.01",
                "--threads",
                "1",
                "--out",
                str(out),
            ],
            cwd=ROOT,
            env=_environ(env),
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert "zoo done" in run.stdout, run.stderr[-2000:]
        assert "CPU capability AVX2" in run.stdout
        digests[machine] = {
            f: checkpoint.sha256_file(out / "attn-only-2l" / f) for f in ("model.safetensors", "config.json")
        }
    first, second = digests.values()
    assert first == second


TINY_RUN = """
import hashlib, torch
from course_utils.zoo import batches, checkpoint
from course_utils.zoo.recipes import GELU_4L
from course_utils.zoo.train import tie_embeddings, train
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge
torch.set_num_threads(1)
torch.manual_seed(0)
tok = checkpoint.load_tokenizer()
model = TransformerBridge.boot_native(TransformerBridgeConfig.from_dict(GELU_4L.config), tokenizer=tok)
tie_embeddings(model)
train(model, batches.periodic_batches(4096, tok.bos_token_id, 8, 32, seed=0, min_period=5, max_period=15), 3, 3e-3, warmup=1)
print(hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest())
"""


@pytest.mark.slow
@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() != "AVX512", reason="needs a CPU with AVX-512")
def test_the_two_capabilities_do_give_other_weights_unpinned():
    """Without the pin the two stand-in machines disagree, so the test above can fail (that the pin
    makes them agree is the test above's, on the zoo itself)."""
    unpinned = {_python(TINY_RUN, env).strip() for env in MACHINES.values()}
    assert len(unpinned) == 2


def test_fingerprint_logs_every_op_and_tells_last_bits_shapes_and_dtypes_apart():
    a = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    with fingerprint.OpLog() as log:
        (a * 2).sum()
    assert [line.split()[1] for line in log.lines] == ["aten.mul.Tensor", "aten.sum.default"]
    assert fingerprint.tensor_hash(a) == fingerprint.tensor_hash(a.clone())
    others = (torch.nextafter(a, a + 1), a.reshape(3, 2), a.double(), a.t())
    assert len({fingerprint.tensor_hash(t) for t in (a, *others)}) == 1 + len(others)


def test_pinned_sqrt_is_correctly_rounded_and_keeps_torch_sqrt_dtypes():
    x = torch.rand(4096, generator=torch.Generator().manual_seed(0)) * 10 + 1e-3
    ieee = torch.from_numpy(np.sqrt(x.numpy()))  # the CPU's own square-root instruction
    assert torch.equal(determinism.ieee_sqrt(x), ieee)
    assert torch.equal(determinism.ieee_sqrt(x.double()), torch.from_numpy(np.sqrt(x.double().numpy())))
    assert determinism.ieee_sqrt(torch.tensor([4, 9])).dtype == torch.get_default_dtype()
    assert torch.equal(determinism.ieee_sqrt(x.view(64, 64).t()), ieee.view(64, 64).t())
    with pytest.raises(TypeError, match="real tensors"):
        determinism.ieee_sqrt(torch.ones(2, dtype=torch.complex64))


PINNED_SQRT_RUN = """
import numpy as np, torch
from course_utils.zoo import determinism
x = (torch.rand(4096, generator=torch.Generator().manual_seed(0)) * 10 + 1e-3).requires_grad_()
determinism.apply_in_process(1)  # the zoo's in-process pin includes the sqrt
determinism.pin_sqrt()  # a second call changes nothing
ieee = torch.from_numpy(np.sqrt(x.detach().numpy()))
y = x.sqrt()
y.sum().backward()
z = x.detach().clone().sqrt_()
print(torch.equal(y.detach(), ieee), torch.equal(z, ieee), torch.allclose(x.grad, 0.5 / ieee))
print("correctly rounded sqrt" in determinism.describe(1))
"""


def test_the_zoo_pin_makes_torch_sqrt_correctly_rounded_with_its_gradient():
    """In a subprocess: the in-process pin replaces ATen's sqrt kernel for the whole process."""
    assert _python(PINNED_SQRT_RUN, {}).split() == ["True", "True", "True", "True"]
