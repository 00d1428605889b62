"""The GRPO training loop: sample G completions per prompt, reward them, update the policy μ times.

One step (DeepSeekMath Alg. 1, one outer iteration with the reference fixed at the start):
  generation  → G samples per prompt from π_θold with the KV cache
  rewards     → Σ_k w_k r_k, group-normalised advantages
  log-probs   → log π_θold (only when μ > 1; otherwise ρ = exp(logp − logp.detach())) and log π_ref (β > 0)
  update      → μ AdamW steps on −J_GRPO, micro-batched with gradient accumulation
Each phase is timed; the split is logged under ``perf/`` and summarised in ``summary.json``.
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

from ppo_bench.atomic import atomic_torch_save, atomic_write_text
from ppo_bench.errors import ConfigError, NonFiniteLoss
from ppo_bench.llm.config import run_name, validate
from ppo_bench.llm.evaluate import greedy_eval
from ppo_bench.llm.grpo import grpo_loss
from ppo_bench.llm.logprobs import token_logprobs
from ppo_bench.llm.models import context_length, eos_token_ids, load_model, load_tokenizer, resolve_device, resolve_dtype
from ppo_bench.llm.rewards import weighted_rewards
from ppo_bench.llm.sampling import generate
from ppo_bench.llm.tasks import Task, make_task, render_prompt
from ppo_bench.llm.tblog import LLMRunLogger
from ppo_bench.losses import equal_reward_groups, group_advantages

PHASES = ("generation_s", "reward_s", "logprobs_s", "update_s")
# a resumed run must be the same experiment: these parts of the config may not change
FROZEN_KEYS = ("model", "task", "seed", "algo.prompts_per_step", "algo.num_generations", "algo.lr", "algo.beta",
               "algo.loss_type", "algo.scale_rewards", "algo.temperature", "algo.max_completion_length", "algo.num_iterations")


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def check_prompt_lengths(cfg, tokenizer, task: Task, limit: int) -> None:
    """A prompt (plus the completion budget) longer than the model's context is a config error."""
    probe = task.eval_split() + task.sample_train(random.Random(0), 256)
    longest = max(len(tokenizer(render_prompt(tokenizer, e.question, cfg.task.chat, cfg.task.system_prompt), add_special_tokens=False).input_ids) for e in probe)
    budget = max(cfg.algo.max_completion_length, cfg.eval.max_new_tokens)
    if longest + budget > limit:
        raise ConfigError(
            f"task {cfg.task.name}: prompts of up to {longest} tokens plus {budget} completion tokens "
            f"(algo.max_completion_length / eval.max_new_tokens) exceed the context of model={cfg.model.name} ({limit} tokens)"
        )


class GRPOTrainer:
    def __init__(self, cfg: DictConfig, run_dir: Path, model, tokenizer, task: Task, ref_model=None, reward_fns=None,
                 compute_dtype: torch.dtype = torch.float32):
        self.cfg, self.a, self.run_dir = cfg, cfg.algo, Path(run_dir)
        self.model, self.ref, self.tok, self.task = model, ref_model, tokenizer, task
        self.reward_fns = dict(reward_fns or task.rewards)
        self.weights = {k: float(v) for k, v in cfg.task.rewards.items()}
        self.eval_fns = {"correct": task.accuracy_reward(), **{k: self.reward_fns[k] for k in self.weights}}
        self.device = next(model.parameters()).device
        # float32 master weights; forward passes in compute_dtype (bf16 on a GPU that has it) under autocast
        self.compute_dtype = compute_dtype
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.params = [p for p in model.parameters() if p.requires_grad]
        a = self.a
        self.opt = torch.optim.AdamW(self.params, lr=a.lr, betas=tuple(a.adam_betas), weight_decay=a.weight_decay)
        self.rng = random.Random(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.step = 0
        self.history: list[dict] = []  # one row of scalars per step
        self.evals: list[dict] = []  # held-out results, step 0 = before training
        self.wall_s = 0.0  # training-loop seconds, summed over resumed segments
        self.eval_s = 0.0
        self.times = dict.fromkeys(PHASES, 0.0)
        self.eval_examples = task.eval_split()
        self.eval_prompts = [self.prompt(e) for e in self.eval_examples]

    # ---- pieces ------------------------------------------------------------------------------

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.compute_dtype, enabled=self.compute_dtype != torch.float32)

    def lr_factor(self, step: int) -> float:
        a = self.a
        warm = min(1.0, (step + 1) / a.warmup_steps) if a.warmup_steps > 0 else 1.0
        decay = 1.0 - step / a.steps if a.lr_schedule == "linear" else 1.0
        return warm * max(decay, 0.0)

    def prompt(self, example) -> str:
        return render_prompt(self.tok, example.question, self.cfg.task.chat, self.cfg.task.system_prompt)

    @torch.no_grad()
    def logprobs(self, model, ids, am, rows, n_completion) -> torch.Tensor:
        """log-probs of the completion tokens of ``rows`` (others left 0), micro-batched, no gradient."""
        out = torch.zeros(ids.shape[0], n_completion, device=ids.device)
        for chunk in rows.split(self.a.micro_batch_size):
            out[chunk] = token_logprobs(model, ids[chunk], am[chunk], n_completion, self.a.temperature)[0]
        return out

    def evaluate(self, final: bool = False) -> dict:
        """Greedy accuracy on the held-out split (during training, on its first eval.periodic_n problems)."""
        t = time.perf_counter()
        n = len(self.eval_examples)
        if not final and self.step > 0 and self.cfg.eval.periodic_n:
            n = min(n, self.cfg.eval.periodic_n)
        with self.autocast():
            res = greedy_eval(self.model, self.tok, self.eval_examples[:n], self.eval_prompts[:n], self.eval_fns,
                              batch_size=self.cfg.eval.batch_size, max_new_tokens=self.cfg.eval.max_new_tokens,
                              eos_ids=self.eos_ids)
        res["step"], res["seconds"] = self.step, time.perf_counter() - t
        self.eval_s += res["seconds"]
        self.evals = [e for e in self.evals if e["step"] != self.step] + [res]
        return res

    # ---- one GRPO step -----------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        a, G = self.a, self.a.num_generations
        t0 = time.perf_counter()
        examples = self.task.sample_train(self.rng, a.prompts_per_step)
        prompts = [self.prompt(e) for e in examples]
        with self.autocast():
            comp = generate(self.model, self.tok, prompts, n=G, max_new_tokens=a.max_completion_length,
                            temperature=a.temperature, eos_ids=self.eos_ids)
        t1 = time.perf_counter()

        rep_prompts = [p for p in prompts for _ in range(G)]
        fields = [e.reward_fields() for e in examples for _ in range(G)]
        rewards, per_fn = weighted_rewards(self.reward_fns, self.weights, rep_prompts, comp.texts, fields)
        if a.truncated == "zero":  # a completion cut off before its EOS has given no final answer
            finished = (~comp.truncated).float().cpu()
            rewards, per_fn = rewards * finished, {k: v * finished for k, v in per_fn.items()}
        adv = group_advantages(rewards, G, a.scale_rewards, a.adv_eps).to(self.device)
        t2 = time.perf_counter()

        ids, am, mask = comp.input_ids, comp.attention_mask, comp.completion_mask
        if a.truncated == "mask":  # DAPO's overlong filtering: truncated completions take no part in the loss
            mask = mask * (~comp.truncated).long().unsqueeze(1)
        n_seqs, n_tokens, C = ids.shape[0], int(mask.sum()), mask.shape[1]
        rows = torch.arange(n_seqs, device=self.device)
        if a.skip_zero_advantage and a.beta == 0:
            rows = rows[adv != 0]  # exact: these rows' loss terms are identically 0 (no KL term either)
        rows = rows[mask[rows].sum(1) > 0]  # fully masked rows contribute nothing
        with self.autocast():
            old_logp = self.logprobs(self.model, ids, am, rows, C) if a.num_iterations > 1 else None
            ref_logp = self.logprobs(self.ref, ids, am, rows, C) if a.beta > 0 else None
        t3 = time.perf_counter()

        for group in self.opt.param_groups:
            group["lr"] = a.lr * self.lr_factor(self.step)
        sums = {"loss": 0.0, "entropy": 0.0, "clip_low": 0.0, "clip_high": 0.0, "kl": 0.0, "tokens": 0.0, "ratio_max": 1.0}
        grad_norm = float("nan")
        for it in range(a.num_iterations):
            if len(rows) == 0:
                break  # no group had a learning signal: no update (an Adam step on zero gradients would only replay momentum)
            self.opt.zero_grad(set_to_none=True)
            for chunk in rows.split(a.micro_batch_size):
                with self.autocast():
                    logp, entropy = token_logprobs(self.model, ids[chunk], am[chunk], C, a.temperature, with_entropy=(it == 0))
                old = old_logp[chunk] if old_logp is not None else logp.detach()
                loss, st = grpo_loss(logp, old, ref_logp[chunk] if ref_logp is not None else None, adv[chunk], mask[chunk],
                                     eps_low=a.epsilon, eps_high=a.epsilon_high if a.epsilon_high is not None else a.epsilon,
                                     beta=a.beta, loss_type=a.loss_type, n_seqs=n_seqs, n_tokens=n_tokens,
                                     max_len=a.max_completion_length)
                if not torch.isfinite(loss):
                    raise NonFiniteLoss(f"non-finite GRPO loss at step {self.step + 1}")
                loss.backward()
                if it == a.num_iterations - 1:
                    sums["loss"] += loss.item()
                    for k in ("clip_low", "clip_high", "kl", "tokens"):
                        sums[k] += st[k].item()
                    sums["ratio_max"] = max(sums["ratio_max"], st["ratio_max"].item())
                if entropy is not None:
                    sums["entropy"] += (entropy * mask[chunk]).sum().item()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, a.max_grad_norm or float("inf")).item()
            if not math.isfinite(grad_norm):
                raise NonFiniteLoss(f"non-finite gradient norm at step {self.step + 1}")
            self.opt.step()
        t4 = time.perf_counter()

        lengths = comp.lengths.float()
        zero_std = equal_reward_groups(rewards, G)  # the groups whose advantages are exactly 0
        tok = max(sums["tokens"], 1.0)
        m = {
            "rewards/mean": rewards.mean().item(),
            "rewards/std": rewards.std().item(),
            **{f"rewards/{k}/mean": v.mean().item() for k, v in per_fn.items()},
            "rewards/frac_zero_std": zero_std.float().mean().item(),
            "losses/policy": sums["loss"],
            "stats/clip_ratio/low": sums["clip_low"] / tok,
            "stats/clip_ratio/high": sums["clip_high"] / tok,
            "stats/clip_ratio/region": (sums["clip_low"] + sums["clip_high"]) / tok,
            "stats/ratio_max": sums["ratio_max"],
            "stats/grad_norm": grad_norm,
            "stats/update_rows": len(rows) / n_seqs,
            "stats/completion_length/mean": lengths.mean().item(),
            "stats/completion_length/min": lengths.min().item(),
            "stats/completion_length/max": lengths.max().item(),
            "stats/completion_truncated": comp.truncated.float().mean().item(),
            "charts/learning_rate": self.opt.param_groups[0]["lr"],
            "perf/generation_s": t1 - t0,
            "perf/reward_s": t2 - t1,
            "perf/logprobs_s": t3 - t2,
            "perf/update_s": t4 - t3,
            "perf/step_s": t4 - t0,
            "perf/generated_tokens_per_s": lengths.sum().item() / max(t1 - t0, 1e-9),
        }
        if hasattr(os, "getloadavg"):
            m["perf/load_avg_1min"] = os.getloadavg()[0]  # other work on the machine shows in the timings
        if len(rows):
            m["losses/entropy"] = sums["entropy"] / max(mask[rows].sum().item(), 1.0)
        if a.beta > 0:
            m["stats/kl"] = sums["kl"] / tok
        for k in PHASES:
            self.times[k] += m[f"perf/{k}"]
        self.last_samples = [
            {"prompt": examples[i // G].question, "completion": comp.texts[i], "reward": round(rewards[i].item(), 3)}
            for i in range(0, min(len(comp.texts), self.cfg.log_completions * G), G)
        ]
        return m

    # ---- checkpoints -------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        state = {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "rng": self.rng.getstate(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "history": self.history,
            "evals": self.evals,
            "wall_s": self.wall_s,
            "eval_s": self.eval_s,
            "times": self.times,
            "config": OmegaConf.to_container(self.cfg, resolve=True),
        }
        atomic_torch_save(state, self.checkpoint_path)

    def load_checkpoint(self) -> bool:
        if not self.checkpoint_path.is_file():
            return False
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)  # RNG states stay on the CPU
        saved = OmegaConf.create(state["config"])
        for key in FROZEN_KEYS:
            old, new = OmegaConf.select(saved, key), OmegaConf.select(self.cfg, key)
            if OmegaConf.is_config(old):
                old, new = OmegaConf.to_container(old), OmegaConf.to_container(new)
            if old != new:
                raise ConfigError(f"{self.run_dir} holds a checkpoint of another experiment ({key}: {old} there, {new} now); "
                                  "choose another run_name, or resume=false to start it over")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step, self.history, self.evals = state["step"], state["history"], state["evals"]
        self.wall_s, self.eval_s, self.times = state["wall_s"], state["eval_s"], state["times"]
        return True

    def save_model(self) -> None:
        """The final policy as a Hugging Face directory (written beside, then renamed into place)."""
        final, tmp = self.run_dir / "model", self.run_dir / ".model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        self.tok.save_pretrained(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)

    def write_status(self, status: str, **extra) -> None:
        atomic_write_text(self.run_dir / "status.json", json.dumps({"status": status, "step": self.step, **extra}, indent=2))

    # ---- the loop ----------------------------------------------------------------------------

    def summary(self) -> dict:
        done = max(self.step, 1)
        before = next((e for e in self.evals if e["step"] == 0), None)
        after = max(self.evals, key=lambda e: e["step"]) if self.evals else None
        return {
            "model": self.cfg.model.name,
            "task": self.cfg.task.name,
            "steps": self.step,
            "wall_s": round(self.wall_s, 1),
            "eval_s": round(self.eval_s, 1),
            "n_eval": len(self.eval_examples),
            "acc_before": before["accuracy"] if before else None,
            "acc_after": after["accuracy"] if after and after["step"] == self.step and after["n"] == len(self.eval_examples) else None,
            "stopped_by": "max_wall_s" if self.step < self.a.steps else "steps",
            "seconds_per_step": {k.removesuffix("_s"): round(v / done, 3) for k, v in self.times.items()}
            | {"total": round(sum(self.times.values()) / done, 3)},
            "evals": [{k: e[k] for k in ("step", "n", "accuracy", "completion_length", "truncated", "rewards", "samples")} for e in self.evals],
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "device": str(self.device),
            "torch_threads": torch.get_num_threads(),
        }

    def train(self, progress: bool = False) -> dict:
        cfg, a = self.cfg, self.a
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        resumed = cfg.resume and self.load_checkpoint()
        if not resumed:  # a fresh start: the folder's older events and results belong to a discarded run
            for old in [*self.run_dir.glob("events.out.tfevents*"), self.run_dir / "summary.json"]:
                old.unlink(missing_ok=True)
        # after a resume, TensorBoard drops what the killed process logged past its last checkpoint
        log = LLMRunLogger(self.run_dir, hparams=None if resumed else OmegaConf.to_container(cfg, resolve=True),
                           purge_after=self.step if resumed else None)
        self.write_status("running")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=a.steps, initial=self.step, desc=run_name(cfg), unit="step", file=sys.stderr, dynamic_ncols=True)
        try:
            if cfg.eval.before and not any(e["step"] == 0 for e in self.evals):
                self.log_eval(log, self.evaluate())
            while self.step < a.steps and not self.out_of_time():
                t = time.perf_counter()
                metrics = self.train_step()
                self.step += 1
                log.scalars(metrics, self.step)
                self.history.append({"step": self.step, **metrics})
                if cfg.eval.every and self.step % cfg.eval.every == 0 and self.step < a.steps and not self.out_of_time():
                    self.log_eval(log, self.evaluate())
                    log.text("samples/train", self.last_samples, self.step)
                self.wall_s += time.perf_counter() - t
                if self.step % cfg.checkpoint_every == 0 or self.step == a.steps or self.out_of_time():
                    t = time.perf_counter()
                    self.save_checkpoint()
                    self.wall_s += time.perf_counter() - t  # counted from the next checkpoint on
                if bar is not None:
                    bar.set_postfix_str(self.progress_postfix(metrics), refresh=False)
                    bar.update(1)
            if not any(e["step"] == self.step and e["n"] == len(self.eval_examples) for e in self.evals):
                self.log_eval(log, self.evaluate(final=True))
                self.save_checkpoint()
        except NonFiniteLoss as e:
            self.write_status("failed", error=str(e))
            raise
        finally:
            if bar is not None:
                bar.close()
            log.close()
        if cfg.save_model:
            self.save_model()
        summary = self.summary()
        atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2))
        self.write_status("finished", acc_before=summary["acc_before"], acc_after=summary["acc_after"])
        return summary

    def progress_postfix(self, metrics: dict) -> str:
        """What the progress bar shows after each step."""
        return f"reward={metrics['rewards/mean']:.3f} step_s={metrics['perf/step_s']:.1f}"

    def out_of_time(self) -> bool:
        return self.cfg.max_wall_s is not None and self.wall_s >= self.cfg.max_wall_s

    def log_eval(self, log: LLMRunLogger, res: dict) -> None:
        scalars = {"eval/accuracy": res["accuracy"], "eval/n": res["n"], "eval/completion_length": res["completion_length"],
                   "eval/truncated": res["truncated"], **{f"eval/rewards/{k}": v for k, v in res["rewards"].items()}}
        log.scalars(scalars, res["step"])
        log.text("samples/eval", res["samples"], res["step"])
        log.flush()


def load_run_parts(cfg: DictConfig):
    """Validated config → (device, compute dtype, task, tokenizer, trainable model), cheapest checks first:
    the prompt lengths are checked against the context before any weights load."""
    validate(cfg)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    task = make_task(cfg.task)
    tokenizer = load_tokenizer(cfg.model)
    check_prompt_lengths(cfg, tokenizer, task, context_length(cfg.model))
    model = load_model(cfg.model, tokenizer, device, torch.float32, seed=cfg.seed)  # master weights
    return device, dtype, task, tokenizer, model


def build_trainer(cfg: DictConfig) -> GRPOTrainer:
    """Validate, then tokenizer and prompt-length check, then (only then) the model weights."""
    device, dtype, task, tokenizer, model = load_run_parts(cfg)
    ref = load_model(cfg.model, tokenizer, device, dtype, seed=cfg.seed, trainable=False) if cfg.algo.beta > 0 else None
    return GRPOTrainer(cfg, Path(cfg.run_root) / run_name(cfg), model, tokenizer, task, ref_model=ref, compute_dtype=dtype)


def run_or_skip(cfg: DictConfig, build, progress: bool = False) -> dict:
    """One run: skipped (with its summary) when it already finished and resume is on, else built and trained."""
    validate(cfg)
    run_dir = Path(cfg.run_root) / run_name(cfg)
    status = read_json(run_dir / "status.json")
    if cfg.resume and status and status["status"] == "finished":
        summary = read_json(run_dir / "summary.json") or {}
        return {**summary, "skipped": True, "run_dir": str(run_dir)}
    return {**build(cfg).train(progress=progress), "run_dir": str(run_dir)}


def train_from_config(cfg: DictConfig, progress: bool = False) -> dict:
    """One GRPO run (see run_or_skip)."""
    return run_or_skip(cfg, build_trainer, progress)
