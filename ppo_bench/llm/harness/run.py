"""The LM run harness: what every ``ppo-bench-llm`` run does, whichever algorithm trains it.

``LMRun`` owns the policy, its optimizer and everything around the updates: held-out greedy
evaluation before, during and after training, checkpoints and bit-for-bit resume, status.json,
summary.json, TensorBoard, the progress bar and the final Hugging Face model. The algorithm is a
separate object it holds (composition, not inheritance), with the small interface of
``registry.LMAlgorithm``; each algorithm's ``build`` makes the run with ``load_run_parts`` and attaches itself.

A run's identity (``ppo_bench.common.identity``, the same as the RL app's) is kept in its folder's identity.json:
a resume or a skip onto a folder that holds a run trained under other settings is refused in one line naming every
key that differs, with both values. Launching a run from a config (build, train, or skip a finished one) is
``ppo_bench.llm.launch``'s.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ppo_bench.common.atomic import atomic_write_text
from ppo_bench.common.errors import ConfigError, NonFiniteLoss
from ppo_bench.common.identity import IDENTITY, check_identity, training_keys, write_identity
from ppo_bench.common.machine import PeakPhases, peak_rss_mb
from ppo_bench.common.run_folder import (PREVIOUS, clear_run_files, has_checkpoint, load_last_good, save_checkpoint,
                                         set_aside)
from ppo_bench.llm.harness.config import NOT_IDENTITY, run_name, schema_defaults, validate
from ppo_bench.llm.harness.evaluate import greedy_eval
from ppo_bench.llm.harness.models import (context_length, eos_token_ids, is_lora, load_model, load_tokenizer,
                                          resolve_device, resolve_dtype)
from ppo_bench.llm.harness.registry import LMAlgorithm
from ppo_bench.llm.harness.tasks import Task, make_task, render_prompt
from ppo_bench.llm.harness.tblog import LLMRunLogger


def identity_keys(cfg: DictConfig) -> dict:
    """The keys of a run's resolved config that decide what it trains (``ppo_bench.common.identity``)."""
    return training_keys(OmegaConf.to_container(cfg, resolve=True), NOT_IDENTITY)


def check_run_identity(run_dir: Path, cfg: DictConfig) -> None:
    """Refuse (ConfigError, one line naming every differing key with both values) to resume or skip a folder
    whose run was trained under other settings (identity.json; a run older than it, its config.yaml)."""
    check_identity(run_dir, identity_keys(cfg), NOT_IDENTITY, schema_defaults(cfg.algo.name),
                   remedy="relaunch with the run's settings, or choose another run_name or run_root")


CHECKPOINT_KEYS = ("step", "updates", "model", "optimizer", "algorithm", "rng", "torch_rng", "cuda_rng", "history",
                   "evals", "wall_s", "eval_s", "times")


def check_lm_state(state: dict) -> None:
    """Refuse a checkpoint that is not an LM run's (e.g. a ppo-bench population's) before anything is loaded."""
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise ValueError(f"it lacks {', '.join(missing)}: not a ppo-bench-llm checkpoint")


def check_prompt_lengths(cfg, tokenizer, task: Task, limit: int, budget: int) -> None:
    """A prompt (plus the completion budget) longer than the model's context is a config error."""
    probe = task.eval_split() + task.sample_train(random.Random(0), 256)
    longest = max(len(tokenizer(render_prompt(tokenizer, e.question, cfg.task.chat, cfg.task.system_prompt), add_special_tokens=False).input_ids) for e in probe)
    budget = max(budget, cfg.eval.max_new_tokens)
    if longest + budget > limit:
        raise ConfigError(
            f"task {cfg.task.name}: prompts of up to {longest} tokens plus {budget} completion tokens "
            f"(algo.max_completion_length / eval.max_new_tokens) exceed the context of model={cfg.model.name} ({limit} tokens)"
        )


class LMRun:
    """One run of one algorithm on one policy: evaluation, checkpoints, resume, status, summary, the model."""

    def __init__(self, cfg: DictConfig, run_dir: Path, model, tokenizer, task: Task, compute_dtype: torch.dtype = torch.float32):
        self.cfg, self.a, self.run_dir = cfg, cfg.algo, Path(run_dir)
        self.model, self.tok, self.task = model, tokenizer, task
        self.algorithm: LMAlgorithm | None = None  # attach() sets it
        self.device = next(model.parameters()).device
        # float32 master weights; forward passes in compute_dtype (bf16 on a GPU that has it) under autocast
        self.compute_dtype = compute_dtype
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.rng = random.Random(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.step = 0  # training steps done (a step whose batch gave no learning signal counts, without an update)
        self.updates = 0  # steps that took at least one optimizer step
        self.history: list[dict] = []  # one row of scalars per step
        self.evals: list[dict] = []  # held-out results, step 0 = before training
        self.wall_s = 0.0  # training-loop seconds, summed over resumed segments
        self.eval_s = 0.0
        self.peak_rss_mb = None  # the largest peak resident memory of the run's earlier segments
        self.peak_rss_phase = None  # and the phase that reached it
        self.phase = PeakPhases()  # with run.phase("setup"): which phase reaches this process's peak memory
        self.times: dict[str, float] = {}
        self.last_samples: list[dict] = []
        self.eval_examples = task.eval_split()
        self.eval_prompts = [self.prompt(e) for e in self.eval_examples]
        self.eval_fns = {"correct": task.accuracy_reward(), **{k: task.rewards[k] for k in cfg.task.rewards}}
        self.greedy_eval = True  # the reward model generates nothing: its evaluation is its own

    def attach(self, algorithm: LMAlgorithm) -> "LMRun":
        a = self.a
        self.algorithm = algorithm
        self.params = [p for p in algorithm.parameters() if p.requires_grad]
        # parameter groups with a learning rate of their own (PPO's value head: algo.vf_lr) keep it as "base_lr";
        # every group follows the same schedule
        groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in algorithm.param_groups()] \
            if hasattr(algorithm, "param_groups") else [{"params": self.params}]
        self.opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=a.lr, betas=tuple(a.adam_betas),
                                     weight_decay=a.weight_decay)
        self.times = dict.fromkeys(algorithm.phases, 0.0)
        return self

    # ---- pieces shared by the algorithms -----------------------------------------------------

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.compute_dtype, enabled=self.compute_dtype != torch.float32)

    def lr_factor(self, step: int) -> float:
        """The schedule's multiple of the learning rate at ``step`` (0-based): a linear warm-up over
        ``algo.warmup_steps``, then constant, a linear decay to 0 at ``algo.steps``, or a cosine one
        (½(1 + cos(π·step/steps)), as Hugging Face's get_cosine_schedule_with_warmup but counted from step 0)."""
        a = self.a
        warm = min(1.0, (step + 1) / a.warmup_steps) if a.warmup_steps > 0 else 1.0
        progress = min(step / a.steps, 1.0)
        decay = {"linear": 1.0 - progress, "cosine": 0.5 * (1.0 + math.cos(math.pi * progress))}.get(a.lr_schedule, 1.0)
        return warm * max(decay, 0.0)

    def set_learning_rate(self) -> None:
        for group in self.opt.param_groups:
            group["lr"] = group.get("base_lr", self.a.lr) * self.lr_factor(self.step)

    def optimizer_step(self) -> float:
        """Clip the gradients to ``algo.max_grad_norm`` (null: no clipping) and take one optimiser step; returns the
        norm before clipping. A non-finite norm stops the run (NonFiniteLoss) before the step."""
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.a.max_grad_norm or float("inf")).item()
        if not math.isfinite(grad_norm):
            raise NonFiniteLoss(f"non-finite gradient norm at step {self.step + 1}")
        self.opt.step()
        return grad_norm

    def prompt(self, example) -> str:
        return render_prompt(self.tok, example.question, self.cfg.task.chat, self.cfg.task.system_prompt)

    def evaluate(self, final: bool = False) -> dict:
        """Greedy accuracy on the held-out split (during training, on its first eval.periodic_n problems),
        and the algorithm's own held-out figures."""
        t = time.perf_counter()
        n = len(self.eval_examples)
        if not final and self.step > 0 and self.cfg.eval.periodic_n:
            n = min(n, self.cfg.eval.periodic_n)
        res: dict = {"n": n, "accuracy": None, "completion_length": None, "truncated": None, "rewards": {}, "samples": []}
        if self.greedy_eval:
            with self.autocast():
                res = greedy_eval(self.model, self.tok, self.eval_examples[:n], self.eval_prompts[:n], self.eval_fns,
                                  batch_size=self.cfg.eval.batch_size, max_new_tokens=self.cfg.eval.max_new_tokens,
                                  eos_ids=self.eos_ids)
        res["final"] = n == len(self.eval_examples)  # the whole split: what before/after report
        extra = self.algorithm.evaluate_extra()
        if extra is not None:
            res.update(extra)
        res["step"], res["wall_s"], res["seconds"] = self.step, self.wall_s, time.perf_counter() - t
        self.eval_s += res["seconds"]
        self.evals = [e for e in self.evals if e["step"] != self.step] + [res]
        return res

    # ---- checkpoints -------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        state = {
            "step": self.step,
            "updates": self.updates,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "algorithm": self.algorithm.state_dict(),
            "rng": self.rng.getstate(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "history": self.history,
            "evals": self.evals,
            "wall_s": self.wall_s,
            "eval_s": self.eval_s,
            "peak_rss_mb": self.peak_rss(),
            "peak_rss_phase": self.peak_phase(),
            "times": self.times,
            "config": OmegaConf.to_container(self.cfg, resolve=True),
        }
        save_checkpoint(state, self.run_dir)  # the one it replaces is kept as checkpoint.prev.pt

    def load_checkpoint(self) -> bool:
        """Resume from the last readable checkpoint (the previous one, with a warning, when the last is damaged),
        read as data: tensors and plain Python values, so a foreign file cannot run code while it loads."""
        check_run_identity(self.run_dir, self.cfg)  # before the checkpoint is read
        state, source = load_last_good(self.run_dir, check_lm_state)  # on the CPU: RNG states stay there
        if state is None:
            return False
        if source.name == PREVIOUS:
            set_aside(self.run_dir)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.algorithm.load_state_dict(state["algorithm"])
        self.rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step, self.updates, self.history, self.evals = state["step"], state["updates"], state["history"], state["evals"]
        self.wall_s, self.eval_s, self.times = state["wall_s"], state["eval_s"], state["times"]
        self.peak_rss_mb, self.peak_rss_phase = state.get("peak_rss_mb"), state.get("peak_rss_phase")
        return True

    def peak_rss(self) -> float | None:
        """The run's peak resident memory: the largest of this process's and its earlier segments'."""
        return max((p for p in (peak_rss_mb(), self.peak_rss_mb) if p is not None), default=None)

    def peak_phase(self) -> str | None:
        """The phase that reached ``peak_rss()``: "loading" when this process peaked before any phase raised it (the
        models, the tokenizer), "other" when it rose between the phases after the last one that raised it, None
        where the peak is not known."""
        now = peak_rss_mb()
        if now is None or (self.peak_rss_mb is not None and self.peak_rss_mb > now):
            return self.peak_rss_phase  # an earlier segment's
        if self.phase.peak_mb is None:
            return "loading"
        return self.phase.phase if self.phase.peak_mb == now else "other"

    def save_model(self) -> None:
        """The final policy as a Hugging Face directory (written beside, then renamed into place), with
        what the algorithm adds to it (a value or reward head)."""
        final, tmp = self.run_dir / "model", self.run_dir / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if is_lora(self.model):  # the adapters merged into the weights: model/ is a plain model (the run is over)
            self.model = self.model.merge_and_unload()
        self.model.save_pretrained(tmp)
        self.tok.save_pretrained(tmp)
        self.algorithm.save_extra(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)

    def write_status(self, status: str, **extra) -> None:
        atomic_write_text(self.run_dir / "status.json", json.dumps({"status": status, "step": self.step, **extra}, indent=2))

    # ---- the loop ----------------------------------------------------------------------------

    def final_eval(self) -> dict | None:
        """The evaluation of every held-out problem at the run's last step; None where there is none (eval.after=false,
        or a run stopped before it)."""
        last = max(self.evals, key=lambda e: e["step"]) if self.evals else None
        return last if last and last["step"] == self.step and last.get("final") else None

    def summary(self) -> dict:
        done = max(self.step, 1)
        before = next((e for e in self.evals if e["step"] == 0), None)
        after = max(self.evals, key=lambda e: e["step"]) if self.evals else None
        final = self.final_eval()
        s = {
            "algo": self.algorithm.label,
            "model": self.cfg.model.name,
            "task": self.cfg.task.name,
            "steps": self.step,
            "updates": self.updates,  # steps that changed the weights; the others had no learning signal
            "wall_s": round(self.wall_s, 1),
            "eval_s": round(self.eval_s, 1),
            "n_eval": after["n"] if after else len(self.eval_examples),
            "acc_before": before["accuracy"] if before else None,
            "acc_after": final["accuracy"] if final else None,
            "stopped_by": "max_wall_s" if self.step < self.a.steps else "steps",
            "seconds_per_step": {k.removesuffix("_s"): round(v / done, 3) for k, v in self.times.items()}
            | {"total": round(sum(self.times.values()) / done, 3)},
            "evals": [{k: e.get(k) for k in ("step", "wall_s", "n", "accuracy", "completion_length", "truncated", "rewards", "samples")}
                      for e in self.evals],
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "device": str(self.device),
            "compute_dtype": str(self.compute_dtype).removeprefix("torch."),  # autocast's; the weights stay float32
            # this process's peak of GPU memory held by tensors (torch.cuda.max_memory_allocated); None on the CPU
            "peak_gpu_mb": (round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
                            if self.device.type == "cuda" else None),
            "torch_threads": torch.get_num_threads(),
            "peak_rss_mb": self.peak_rss(),  # the largest over the run's processes (segments of a resumed run)
            "peak_rss_phase": self.peak_phase(),  # setup, step, evaluation, checkpoint, saving the model, loading, other
            "peak_rss_by_phase": self.phase.raised,  # this process's: each phase that raised the peak, and to what
        }
        self.algorithm.summary_extra(s)
        return s

    def train(self, progress: bool = False) -> dict:
        cfg, a = self.cfg, self.a
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resuming = bool(cfg.resume and has_checkpoint(self.run_dir))
        if resuming:
            self.load_checkpoint()  # refused here, before anything is written, when the settings differ
        else:  # a fresh start: the folder's older events, checkpoint and results belong to a discarded run
            clear_run_files(self.run_dir, ("summary.json", IDENTITY))
        write_identity(self.run_dir, identity_keys(cfg), steps=a.steps, max_wall_s=cfg.max_wall_s)
        atomic_write_text(self.run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        t = time.perf_counter()
        with self.phase("setup"):
            self.algorithm.prepare(resuming)
        if cfg.setup_in_wall:  # the algorithm's setup (pairs, the reference pass) spends the budget too
            self.wall_s += time.perf_counter() - t
        # after a resume, TensorBoard drops what the killed process logged past its last checkpoint
        log = LLMRunLogger(self.run_dir, hparams=None if resuming else OmegaConf.to_container(cfg, resolve=True),
                           purge_after=self.step if resuming else None)
        self.write_status("running")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=a.steps, initial=self.step, desc=run_name(cfg), unit="step", file=sys.stderr, dynamic_ncols=True)
        try:
            if cfg.eval.before and not any(e["step"] == 0 for e in self.evals):
                with self.phase("evaluation"):
                    self.log_eval(log, self.evaluate(final=True))
            last_eval_wall = max((e.get("wall_s") or 0.0 for e in self.evals), default=0.0)
            while self.step < a.steps and not self.out_of_time():
                t = time.perf_counter()
                with self.phase("step"):
                    metrics = self.train_step()
                log.scalars(metrics, self.step)
                self.wall_s += time.perf_counter() - t
                if self.periodic_eval_due(last_eval_wall):
                    t = time.perf_counter()
                    with self.phase("evaluation"):
                        self.log_eval(log, self.evaluate())
                    log.text("samples/train", self.last_samples, self.step)
                    if cfg.eval.in_wall:
                        self.wall_s += time.perf_counter() - t
                    last_eval_wall = self.wall_s
                if self.step % cfg.checkpoint_every == 0 or self.step == a.steps or self.out_of_time():
                    t = time.perf_counter()
                    with self.phase("checkpoint"):
                        self.save_checkpoint()
                    self.wall_s += time.perf_counter() - t  # counted from the next checkpoint on
                if bar is not None:
                    bar.set_postfix_str(self.algorithm.progress_postfix(metrics), refresh=False)
                    bar.update(1)
            if cfg.eval.after and not any(e["step"] == self.step and e.get("final") for e in self.evals):
                with self.phase("evaluation"):
                    self.log_eval(log, self.evaluate(final=True))
                with self.phase("checkpoint"):
                    self.save_checkpoint()
        except NonFiniteLoss as e:
            self.write_status("failed", error=str(e))
            raise
        finally:
            if bar is not None:
                bar.close()
            log.close()
        if cfg.save_model:
            with self.phase("saving the model"):
                self.save_model()
        summary = self.summary()
        atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2))
        self.write_status("finished", acc_before=summary["acc_before"], acc_after=summary["acc_after"])
        return summary

    def train_step(self) -> dict[str, float]:
        """One step of the algorithm, counted: an update when it took an optimizer step."""
        t0 = time.perf_counter()
        metrics = self.algorithm.train_step()
        metrics["perf/step_s"] = time.perf_counter() - t0
        if hasattr(os, "getloadavg"):
            metrics["perf/load_avg_1min"] = os.getloadavg()[0]  # other work on the machine shows in the timings
        for k in self.times:
            self.times[k] += metrics.get(f"perf/{k}", 0.0)
        self.step += 1
        self.updates += int(metrics.get("stats/optimizer_steps", 0) > 0)
        self.history.append({"step": self.step, **metrics})
        return metrics

    def out_of_time(self) -> bool:
        return self.cfg.max_wall_s is not None and self.wall_s >= self.cfg.max_wall_s

    def periodic_eval_due(self, last_eval_wall: float) -> bool:
        """An evaluation during training: every ``eval.every`` steps, or ``eval.every_s`` seconds of wall_s after the
        last one; none at the last step or once the time is up (the final evaluation follows)."""
        e = self.cfg.eval
        due = (e.every and self.step % e.every == 0) or (e.every_s is not None and self.wall_s - last_eval_wall >= e.every_s)
        return bool(due) and self.step < self.a.steps and not self.out_of_time()

    def log_eval(self, log: LLMRunLogger, res: dict) -> None:
        scalars = {"eval/n": res["n"], **{f"eval/rewards/{k}": v for k, v in res["rewards"].items()}}
        for k in ("accuracy", "completion_length", "truncated"):
            if res[k] is not None:
                scalars[f"eval/{k}"] = res[k]
        scalars.update(res.get("scalars", {}))  # the algorithm's own, under their full names
        log.scalars(scalars, res["step"])
        if res["samples"]:
            log.text("samples/eval", res["samples"], res["step"])
        log.flush()


def load_run_parts(cfg: DictConfig, completion_budget: int = 0):
    """Validated config → (device, compute dtype, task, tokenizer, trainable model), cheapest checks first:
    the prompt lengths are checked against the context before any weights load."""
    validate(cfg)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    task = make_task(cfg.task)
    tokenizer = load_tokenizer(cfg.model)
    check_prompt_lengths(cfg, tokenizer, task, context_length(cfg.model), completion_budget)
    model = load_model(cfg.model, tokenizer, device, torch.float32, seed=cfg.seed)  # master weights
    return device, dtype, task, tokenizer, model

