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
DDP = "tests/engine/test_distributed.py"
SPEEDRUN = "tests/engine/test_speedrun.py"
AIRBENCH = "tests/engine/test_airbench_recipe.py"
MUON = "tests/engine/test_muon_recipe.py"
SMALL = "tests/engine/test_small_sets.py"
LOADER = "tests/data/test_loader.py"
RUN_OPTIMISER = "tests/engine/test_trainer.py::test_a_run_steps_with_the_optimiser_and_schedule_it_names"
CHANNELS_LAST_TEST = (
    "tests/test_predict.py::test_the_test_pass_and_the_predictor_run_a_conv_net_in_channels_last"
)
BF16_TEST = "tests/test_predict.py::test_a_run_tested_in_bf16_if_native_is_evaluated_and_predicted_in_bf16"
PRECISION_OPTION = "tests/test_predict.py::test_precision_overrides_what_the_run_was_tested_in"
BALANCED = (
    "tests/engine/test_trainer.py::test_class_weights_and_the_balanced_sampler_are_inverse_class_frequencies"
)

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
        "return self.ema.module if self.ema is not None else self.model",
        "return self.model",
        [OPTIONS],
    ),
    "accumulation-ignored": (
        "engine/loop.py",
        "boundary = last or (b + 1) % accum == 0",
        "boundary = True",
        [OPTIONS],
    ),
    "accumulation-unscaled": (
        "engine/loop.py",
        "scaler.scale(loss / accum).backward()",
        "scaler.scale(loss).backward()",
        [OPTIONS],
    ),
    "clip": ("engine/loop.py", "nn.utils.clip_grad_norm_(", "(lambda *a, **k: 0)(", [OPTIONS]),
    "label-smoothing": (
        "engine/resolve.py",
        "cfg.task.loss, cfg.task.label_smoothing, weights",
        "cfg.task.loss, 0.0, weights",
        [OPTIONS],
    ),
    "mixup": ("data/pipeline.py", "        if aug.mixes:", "        if False:", [OPTIONS]),
    "size-schedule": (
        "engine/resolve.py",
        "            if epoch < until:\n                return size",
        "            if False:\n                return size",
        [OPTIONS],
    ),
    "early-stop": (
        "engine/hooks.py",
        "return bool(self.patience and t.state.stale_epochs >= self.patience)",
        "return False",
        [OPTIONS],
    ),
    "layer-decay": (
        "engine/optim.py",
        "layer_scale = cfg.layer_decay ** (last - layer) if cfg.layer_decay != 1.0 else 1.0",
        "layer_scale = 1.0",
        [OPTIONS, FINETUNE],
    ),
    "sam-second-pass": (
        "engine/loop.py",
        'if getattr(opt, "requires_second_pass", False):',
        "if False:",
        [OPTIONS],
    ),
    "lookahead-sync": ("engine/optim.py", "if self.steps % self.k == 0:", "if False:", [OPTIONS]),
    "last-pt-finite": ("engine/checkpoint.py", "bad = first_non_finite(state)", "bad = None", [OPTIONS]),
    "precision-auto": (
        "engine/precision.py",
        "    best = min(seconds, key=seconds.__getitem__)",
        '    best = "fp32"',
        [OPTIONS],
    ),
    "precision-trial-unbounded": (
        "engine/precision.py",
        "    if run_steps is not None and run_steps * SHARE < least:",
        "    if False:",
        [OPTIONS],
    ),
    "precision-trial-share": (
        "engine/precision.py",
        "        bounds = [SHARE * run_steps * step_s] if run_steps is not None else []",
        "        bounds = []",
        [OPTIONS],
    ),
    "bf16-autocast": (
        "amp.py",
        "    if dtype is None:\n        return contextlib.nullcontext()",
        "    if True:\n        return contextlib.nullcontext()",
        [OPTIONS],
    ),
    "thaw": (
        "engine/hooks.py",
        'frozen = self.spec not in ("", "none") and (not self.epochs or t.state.epoch < self.epochs)',
        'frozen = self.spec not in ("", "none")',
        [FINETUNE],
    ),
    "nan-skip-decided-alone": (
        "engine/loop.py",
        "finite = t.dist.all(math.isfinite(loss.item())) and finite",
        "finite = math.isfinite(loss.item()) and finite",
        [f"{DDP}::test_a_nan_on_one_rank_is_skipped_by_both"],
    ),
    "stop-decided-alone": (
        "engine/trainer.py",
        "if self.dist.any(self.stop is not None and self.stop.requested is not None):",
        "if self.stop is not None and self.stop.requested is not None:",
        [f"{DDP}::test_sigterm_to_one_rank_restarts_and_resumes_exactly"],
    ),
    "ranks-not-dealt-the-global-batch": (
        "data/loader.py",
        "out = [order[g * step : (g + 1) * step][self.rank :: self.world] for g in range(full)]",
        "out = _batches(np.array_split(order, self.world)[self.rank], self.batch_size, True)[:full]",
        [f"{DDP}::test_two_processes_train_like_one_with_the_global_batch"],
    ),
    "evaluation-split-like-training": (
        "data/loader.py",
        "        if self.evaluation:\n            return _batches(",
        "        if False:\n            return _batches(",
        [f"{DDP}::test_every_sample_once_per_epoch_and_the_same_weights_on_every_rank"],
    ),
    "bn-statistics-not-averaged": (
        "engine/validation.py",
        "        t.dist.average_buffers(t.model)  #",
        "        pass  #",
        [f"{DDP}::test_every_sample_once_per_epoch_and_the_same_weights_on_every_rank"],
    ),
    "bias-lr-scale": (
        "engine/optim.py",
        "speed = (cfg.bias_lr_scale if fast else 1.0) * (cfg.head_lr_scale if head else 1.0)",
        "speed = (1.0) * (cfg.head_lr_scale if head else 1.0)",
        [f"{SPEEDRUN}::test_biases_get_their_own_rate"],
    ),
    "fast-decay-follows-rate": (
        "engine/optim.py",
        'g["weight_decay"] = cfg.weight_decay / speed if decay else 0.0',
        'g["weight_decay"] = cfg.weight_decay if decay else 0.0',
        [AIRBENCH],
    ),
    "lookahead-ema-pull": (
        "engine/optim.py",
        "            state[name].copy_(avg)",
        "            pass",
        [AIRBENCH, RESUME],
    ),
    "lookahead-ema-not-called": (
        "engine/loop.py",
        "                    t.lookahead.update(t.net, t.scheduler.step_count, t.scheduler.total)",
        "                    pass",
        [AIRBENCH],
    ),
    "pad-reflect": (
        "data/batch_aug.py",
        'mode="reflect" if mode == "reflect" else "constant"',
        'mode="constant"',
        [AIRBENCH],
    ),
    "keep-last": (
        "engine/hooks.py",
        '        if t.cfg.keep == "last" or not record["val"]:',
        '        if not record["val"]:',
        [AIRBENCH],
    ),
    "held-parameters": (
        "engine/hooks.py",
        "                params[name].requires_grad_(False)",
        "                pass",
        [f"{SPEEDRUN}::test_held_parameters_do_not_move"],
    ),
    "alternating-flip": (
        "data/pipeline.py",
        "            x = torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)",
        "            pass",
        [f"{SPEEDRUN}::test_the_loaders_mirror_exactly_the_alternating_half"],
    ),
    "bn-recompute": (
        "engine/validation.py",
        '        if t.cfg.bn_recompute == "on":',
        "        if False:",
        [f"{SMALL}::test_a_small_set_from_scratch_ends_with_a_sane_best_checkpoint"],
    ),
    "tie-by-loss": (
        "engine/evaluate.py",
        'return (metrics["f1"] if task.kind == "multilabel" else metrics["acc"], -metrics["loss"])',
        'return (metrics["f1"] if task.kind == "multilabel" else metrics["acc"], 0.0)',
        [SMALL],
    ),
    "test-tta": (
        "engine/evaluate.py",
        "    return pair(x) / 2 + pair(padded[..., :h, :w]) / 4 + pair(padded[..., 2:, 2:]) / 4",
        "    return pair(x)",
        [f"{SPEEDRUN}::test_test_time_views_are_the_stated_averages"],
    ),
    "workers-restarted-each-epoch": (
        "data/loader.py",
        "                persistent_workers=self.workers > 0,",
        "                persistent_workers=False,",
        [f"{LOADER}::test_worker_processes_serve_every_epoch"],
    ),
    "decoded-pixels-not-shared": (
        "data/cache.py",
        "    _IN_USE[str(data)] = pixels\n    return pixels, keep",
        "    return pixels, keep",
        [f"{LOADER}::test_loaders_of_one_split_share_its_decoded_pixels"],
    ),
    "folded-norm-kept": (
        "models/fold_bn.py",
        "        _replace(model, norm_name, nn.Identity())",
        "        pass",
        ["tests/models/test_fold_bn.py"],
    ),
    "test-eval-in-training-precision": (
        "engine/validation.py",
        "precision, cl, t.dist, tta=t.cfg.test_tta, mirror=t.aug.mirror_share > 0)",
        "t.precision, t.channels_last, t.dist, tta=t.cfg.test_tta, mirror=t.aug.mirror_share > 0)",
        ["tests/test_predict.py::test_a_bf16_run_records_the_test_figures_eval_gives"],
    ),
    "test-pass-contiguous": (
        "engine/validation.py",
        "    cl = is_conv_net(model)",
        "    cl = False",
        [CHANNELS_LAST_TEST],
    ),
    "predictor-contiguous": (
        "predict.py",
        "self.memory_format = torch.channels_last if is_conv_net(self.model) else torch.contiguous_format",
        "self.memory_format = torch.contiguous_format",
        [CHANNELS_LAST_TEST],
    ),
    "test-precision-ignored": (
        "engine/validation.py",
        "    precision = infer_precision(t.cfg.test_precision, t.device)",
        '    precision = "fp32"',
        [BF16_TEST],
    ),
    "predictor-precision-ignored": (
        "predict.py",
        "        with autocast(self.device, self.precision):",
        '        with autocast(self.device, "fp32"):',
        [BF16_TEST],
    ),
    "precision-option-ignored": (
        "predict.py",
        "infer_precision(precision or meta.test_precision, device)",
        "infer_precision(meta.test_precision, device)",
        [PRECISION_OPTION],
    ),
    "wrapper-groups-copied": (
        "engine/optim.py",
        "        return self.base.param_groups",
        "        return self.__dict__.setdefault('_groups', self.base.param_groups)",
        [RESUME],
    ),
    "nesterov-dropped": (
        "engine/optim.py",
        "lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov",
        "lr=cfg.lr, momentum=cfg.momentum, nesterov=False",
        [RUN_OPTIMISER],
    ),
    "schedule-not-applied-to-the-groups": (
        "engine/schedule.py",
        'g["lr"] = self.peak * g.get("lr_scale", 1.0) * own',
        'g["lr"] = self.peak * g.get("lr_scale", 1.0)',
        [RUN_OPTIMISER],
    ),
    "balanced-sampler-weights-dropped": (
        "engine/loaders.py",
        "sample_weights=r.sample_weights if training else None,",
        "sample_weights=None,",
        [BALANCED],
    ),
    "muon-renorm-dropped": (
        "engine/optim.py",
        "                    if self.renorm:",
        "                    if False:",
        [MUON],
    ),
    "muon-gradient-not-given": (
        "engine/optim.py",
        "                    m.grad = _rows(p.grad, p)",
        "                    m.grad = _rows(p.grad, p) * 0",
        [MUON],
    ),
    "held-bias-follows-the-run": (
        "engine/schedule.py",
        'held_from = g.get("held_from", 0) if self.cfg.end_at_hold else 0',
        "held_from = 0",
        [MUON],
    ),
    "head-rate-not-scaled": (
        "engine/optim.py",
        "(cfg.head_lr_scale if head else 1.0)",
        "(1.0)",
        [MUON],
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
