"""Mutation check: disable one training option's effect in the source, run the tests that should
notice, and report which failed. Every mutation must be caught by at least one test.

    .venv/bin/python tests/mutation_check.py            # all mutations (about 10 minutes on 2 cores)
    .venv/bin/python tests/mutation_check.py ema clip   # some of them

Each mutation is an exact text replacement in one source file (it must match once, so a refactor
that moves the code makes this script fail loudly instead of checking nothing); the file is
restored afterwards, whatever happens.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
SRC = ROOT / "src" / "imgcls"
OPTIONS = "tests/engine/test_options.py"
FINETUNE = "tests/test_transfer.py::test_finetune_thaws_after_the_frozen_epochs_with_layer_decayed_rates"
RESUME = "tests/engine/test_trainer.py::test_exact_resume_with_options"

# name: (file, original text, mutated text, tests to run)
MUTATIONS: dict[str, tuple[str, str, str, list[str]]] = {
    "ema-update": (
        "engine/precision.py",
        "        torch._foreach_lerp_(",
        "        return\n        torch._foreach_lerp_(",
        [OPTIONS],
    ),
    "ema-not-evaluated": (
        "engine/trainer.py",
        "eval_model = self.ema.module if self.ema is not None else self.model",
        "eval_model = self.model",
        [OPTIONS],
    ),
    "accumulation-ignored": (
        "engine/trainer.py",
        "step_now = self.batch_in_epoch % cfg.optim.accum_steps == 0",
        "step_now = True",
        [OPTIONS],
    ),
    "accumulation-unscaled": (
        "engine/trainer.py",
        "self.scaler.scale(loss / cfg.accum_steps)",
        "self.scaler.scale(loss)",
        [OPTIONS],
    ),
    "clip": ("engine/trainer.py", "torch.nn.utils.clip_grad_norm_(", "(lambda *a, **k: 0)(", [OPTIONS]),
    "label-smoothing": (
        "engine/trainer.py",
        "kind, self.source.num_classes, cfg.task.loss, cfg.task.label_smoothing,",
        "kind, self.source.num_classes, cfg.task.loss, 0.0,",
        [OPTIONS],
    ),
    "mixup": ("data/pipeline.py", "        if aug.mixes:", "        if False:", [OPTIONS]),
    "size-schedule": (
        "engine/trainer.py",
        "            if epoch < until:\n                return size",
        "            if False:\n                return size",
        [OPTIONS],
    ),
    "early-stop": (
        "engine/trainer.py",
        "cfg.early_stop and self.stale_epochs >= cfg.early_stop",
        "False",
        [OPTIONS],
    ),
    "layer-decay": (
        "engine/optim.py",
        'g["lr_scale"] = cfg.layer_decay ** (last - layer) if cfg.layer_decay != 1.0 else 1.0',
        'g["lr_scale"] = 1.0',
        [OPTIONS, FINETUNE],
    ),
    "sam-second-pass": (
        "engine/trainer.py",
        'if getattr(self.optimizer, "requires_second_pass", False):',
        "if False:",
        [OPTIONS],
    ),
    "lookahead-sync": ("engine/optim.py", "if self.steps % self.k == 0:", "if False:", [OPTIONS]),
    "last-pt-finite": (
        "engine/trainer.py",
        "        if bad is not None:  # never replace",
        "        if False:  # never replace",
        [OPTIONS],
    ),
    "precision-auto": (
        "engine/precision.py",
        "    best = min(seconds, key=seconds.__getitem__)",
        '    best = "fp32"',
        [OPTIONS],
    ),
    "bf16-autocast": (
        "engine/precision.py",
        "    if dtype is None:\n        return contextlib.nullcontext()",
        "    if True:\n        return contextlib.nullcontext()",
        [OPTIONS],
    ),
    "thaw": (
        "engine/trainer.py",
        "not self.cfg.model.freeze_epochs or epoch < self.cfg.model.freeze_epochs",
        "True",
        [FINETUNE],
    ),
    "wrapper-groups-copied": (
        "engine/optim.py",
        "        return self.base.param_groups",
        "        return self.__dict__.setdefault('_groups', self.base.param_groups)",
        [RESUME],
    ),
}


def failures(tests: list[str]) -> list[str]:
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rf", "--tb=no", "-p", "no:cacheprovider", *tests],
                       cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    return sorted(set(re.findall(r"^FAILED (\S+)", r.stdout, flags=re.MULTILINE)))


def main(names: list[str]) -> int:
    missed = 0
    for name in names or list(MUTATIONS):
        file, original, mutated, tests = MUTATIONS[name]
        path = SRC / file
        text = path.read_text()
        if text.count(original) != 1:
            print(f"{name}: the original text is not in {file} exactly once; update this mutation")
            return 2
        try:
            path.write_text(text.replace(original, mutated))
            caught = failures(tests)
        finally:
            path.write_text(text)
        missed += not caught
        print(f"{name}: {'caught by ' + ', '.join(caught) if caught else 'NOT CAUGHT'}", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
