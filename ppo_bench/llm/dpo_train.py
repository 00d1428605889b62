"""The DPO training loop (``algo=dpo``): preference pairs, cached reference log-probs, one loss per variant.

Before the first step:
  pairs      → read from ``algo.data_file``, or sampled from the policy on the task (preferences.py)
  reference  → log π_ref(y⁺|x), log π_ref(y⁻|x) of every pair, computed once: the reference is the policy
               at its starting weights, so this pass is made by the policy before any update and no
               second model is kept; the pairs and these log-probs are cached in ``preferences.pt``
Each step: ``algo.batch_size`` pairs (a fresh permutation every epoch), chosen and rejected of each
micro-batch in one concatenated forward pass, ``dpo.DPO_LOSSES[algo.loss]``, one AdamW step.
Evaluation, checkpoints, resume, status and the final model are the GRPO trainer's (train.py).
"""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from ppo_bench.atomic import atomic_torch_save
from ppo_bench.errors import ConfigError, NonFiniteLoss
from ppo_bench.llm.config import run_name, validate
from ppo_bench.llm.dpo import DPO_LOSSES, REFERENCE_FREE, LossOptions, concatenated_logps
from ppo_bench.llm.models import context_length
from ppo_bench.llm.preferences import PreferencePair, collate, pairs_from_task, read_jsonl, tokenize_pairs, write_jsonl
from ppo_bench.llm.tasks import Task
from ppo_bench.llm.train import GRPOTrainer, load_run_parts, run_or_skip

DPO_PHASES = ("pairs_s", "reference_s", "update_s")


class DPOTrainer(GRPOTrainer):
    def __init__(self, cfg: DictConfig, run_dir: Path, model, tokenizer, task: Task, pairs: list[PreferencePair] | None = None,
                 compute_dtype: torch.dtype = torch.float32):
        super().__init__(cfg, run_dir, model, tokenizer, task, compute_dtype=compute_dtype)
        self.loss_fn = DPO_LOSSES[self.a.loss]
        self.options = LossOptions.from_config(self.a)
        self.pairs = pairs  # None: from algo.data_file or the task, at the start of train()
        self.times = dict.fromkeys(DPO_PHASES, 0.0)
        self.pair_stats: dict[str, float] = {}
        self.eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else self.eos_ids[0]  # ends every response

    # ---- data and reference ------------------------------------------------------------------

    @property
    def cache_path(self) -> Path:
        return self.run_dir / "preferences.pt"

    def build_pairs(self) -> list[PreferencePair]:
        a = self.a
        if a.data_file:
            return read_jsonl(a.data_file)
        examples = self.task.sample_train(random.Random(self.cfg.seed + 1), a.num_prompts)
        with self.autocast():
            pairs, self.pair_stats = pairs_from_task(
                self.model, self.tok, examples, [self.prompt(e) for e in examples], self.task.accuracy_reward(),
                num_samples=a.num_samples, pairs_per_prompt=a.pairs_per_prompt, temperature=a.temperature,
                max_new_tokens=a.max_completion_length, answer_template=a.answer_template, eos_ids=self.eos_ids,
                rng=random.Random(self.cfg.seed + 2))
        if not pairs:
            raise ConfigError(f"task {self.cfg.task.name}: every one of the policy's {a.num_samples} samples was correct on all "
                              f"{a.num_prompts} prompts, so no preference pair could be built (raise algo.num_prompts)")
        return pairs

    @torch.no_grad()
    def sequence_logps(self) -> tuple[torch.Tensor, torch.Tensor]:
        """log π(y⁺|x), log π(y⁻|x) of every pair under the current policy, no gradient."""
        was = self.model.training
        self.model.eval()
        chosen, rejected = [], []
        for idx in torch.arange(len(self.tokenized)).split(self.a.micro_batch_size):
            b = collate([self.tokenized[i] for i in idx], self.tok.pad_token_id).to(self.device)
            with self.autocast():
                logps = concatenated_logps(self.model, b.input_ids, b.attention_mask, b.response_mask).float()
            chosen.append(logps[: len(idx)])
            rejected.append(logps[len(idx):])
        self.model.train(was)
        return torch.cat(chosen).cpu(), torch.cat(rejected).cpu()

    def prepare(self, resuming: bool) -> None:
        """Pairs and their reference log-probs: from the cache when resuming, otherwise built and cached."""
        t = time.perf_counter()
        if resuming and self.cache_path.is_file():
            cache = torch.load(self.cache_path, weights_only=False)
            self.pairs = [PreferencePair(**p) for p in cache["pairs"]]
            self.ref_chosen, self.ref_rejected, self.pair_stats = cache["ref_chosen"], cache["ref_rejected"], cache["stats"]
            self.tokenized = tokenize_pairs(self.tok, self.pairs, self.eos_id)
            return
        if self.pairs is None:
            self.pairs = self.build_pairs()
        self.pair_stats = self.pair_stats or {"pairs": len(self.pairs)}
        self.tokenized = tokenize_pairs(self.tok, self.pairs, self.eos_id)
        longest = max(len(p) + max(len(c), len(r)) for p, c, r in self.tokenized)
        limit = context_length(self.cfg.model)
        if longest > limit:
            raise ConfigError(f"a preference pair of {longest} tokens exceeds the context of model={self.cfg.model.name} ({limit} tokens)")
        t1 = time.perf_counter()
        self.times["pairs_s"] += t1 - t
        if self.a.loss in REFERENCE_FREE:
            self.ref_chosen = self.ref_rejected = torch.zeros(len(self.pairs))
        else:
            self.ref_chosen, self.ref_rejected = self.sequence_logps()  # the starting policy is π_ref
        self.times["reference_s"] += time.perf_counter() - t1
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_jsonl(self.run_dir / "pairs.jsonl", self.pairs)
        atomic_torch_save({"pairs": [p.__dict__ for p in self.pairs], "ref_chosen": self.ref_chosen,
                           "ref_rejected": self.ref_rejected, "stats": self.pair_stats}, self.cache_path)

    def batch_indices(self, step: int) -> torch.Tensor:
        """The pairs of one step: consecutive slices of a per-epoch permutation (a function of the step, so a resume repeats it)."""
        n, B = len(self.pairs), self.a.batch_size
        out = []
        for k in range(step * B, step * B + B):
            epoch, pos = divmod(k, n)
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch))
            out.append(int(perm[pos]))
        return torch.tensor(out)

    # ---- one DPO step ------------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        a = self.a
        t0 = time.perf_counter()
        for group in self.opt.param_groups:
            group["lr"] = a.lr * self.lr_factor(self.step)
        idx = self.batch_indices(self.step)
        B = len(idx)
        sums = dict.fromkeys(("loss", "chosen", "rejected", "accuracy", "margin", "logps_chosen", "logps_rejected"), 0.0)
        self.opt.zero_grad(set_to_none=True)
        for chunk in idx.split(a.micro_batch_size):
            b = collate([self.tokenized[i] for i in chunk], self.tok.pad_token_id).to(self.device)
            with self.autocast():
                logps = concatenated_logps(self.model, b.input_ids, b.attention_mask, b.response_mask).float()
            pc, pr = logps[: len(chunk)], logps[len(chunk):]
            losses, cr, rr = self.loss_fn(pc, pr, self.ref_chosen[chunk].to(self.device), self.ref_rejected[chunk].to(self.device), self.options)
            loss = losses.sum() / B  # the mean over the step's pairs, whatever the micro-batching
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"non-finite DPO loss at step {self.step + 1}")
            loss.backward()
            sums["loss"] += loss.item()
            sums["chosen"] += cr.sum().item()
            sums["rejected"] += rr.sum().item()
            sums["accuracy"] += (cr > rr).float().sum().item()
            sums["margin"] += (cr - rr).sum().item()
            sums["logps_chosen"] += pc.detach().sum().item()
            sums["logps_rejected"] += pr.detach().sum().item()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, a.max_grad_norm or float("inf")).item()
        if not math.isfinite(grad_norm):
            raise NonFiniteLoss(f"non-finite gradient norm at step {self.step + 1}")
        self.opt.step()
        dt = time.perf_counter() - t0
        self.times["update_s"] += dt
        m = {
            "losses/dpo": sums["loss"],
            "rewards/chosen": sums["chosen"] / B,
            "rewards/rejected": sums["rejected"] / B,
            "rewards/accuracies": sums["accuracy"] / B,
            "rewards/margins": sums["margin"] / B,
            "logps/chosen": sums["logps_chosen"] / B,
            "logps/rejected": sums["logps_rejected"] / B,
            "stats/grad_norm": grad_norm,
            "charts/learning_rate": self.opt.param_groups[0]["lr"],
            "perf/update_s": dt,
            "perf/step_s": dt,
        }
        if hasattr(os, "getloadavg"):
            m["perf/load_avg_1min"] = os.getloadavg()[0]
        self.last_samples = [{"prompt": self.pairs[i].prompt[-60:], "chosen": self.pairs[i].chosen, "rejected": self.pairs[i].rejected}
                             for i in idx[: self.cfg.log_completions].tolist()]
        return m

    # ---- all training pairs, at every evaluation ---------------------------------------------

    def preference_stats(self) -> dict[str, float]:
        """Over every training pair: reward accuracy and margin, mean log-probs and their change from π_ref."""
        pc, pr = self.sequence_logps()
        rc, rr = self.ref_chosen, self.ref_rejected
        _, cr, rrw = self.loss_fn(pc, pr, rc, rr, self.options)
        return {"rewards/accuracies": (cr > rrw).float().mean().item(), "rewards/margins": (cr - rrw).mean().item(),
                "logps/chosen": pc.mean().item(), "logps/rejected": pr.mean().item(),
                "logps/chosen_change": (pc - rc).mean().item() if self.a.loss not in REFERENCE_FREE else float("nan"),
                "logps/rejected_change": (pr - rr).mean().item() if self.a.loss not in REFERENCE_FREE else float("nan")}

    def evaluate(self, final: bool = False) -> dict:
        res = super().evaluate(final)
        res["pairs"] = self.preference_stats()
        return res

    def log_eval(self, log, res: dict) -> None:
        log.scalars({f"train_pairs/{k}": v for k, v in res["pairs"].items()}, res["step"])
        super().log_eval(log, res)

    def train(self, progress: bool = False) -> dict:
        resuming = bool(self.cfg.resume and self.checkpoint_path.is_file())
        self.prepare(resuming)
        return super().train(progress=progress)

    def progress_postfix(self, metrics: dict) -> str:
        return (f"loss={metrics['losses/dpo']:.3f} acc={metrics['rewards/accuracies']:.2f} "
                f"margin={metrics['rewards/margins']:.2f} step_s={metrics['perf/step_s']:.1f}")

    def summary(self) -> dict:
        s = super().summary()
        first = next((e for e in self.evals if e["step"] == 0), None)
        last = max(self.evals, key=lambda e: e["step"]) if self.evals else None
        s["algo"] = f"DPO ({self.a.loss})"
        s["pairs"] = self.pair_stats
        s["train_pairs_before"] = first.get("pairs") if first else None
        s["train_pairs_after"] = last.get("pairs") if last else None
        by_step = {e["step"]: e.get("pairs") for e in self.evals}
        for e in s["evals"]:
            e["pairs"] = by_step.get(e["step"])
        done = max(self.step, 1)
        s["seconds_per_step"] = {"update": round(self.times["update_s"] / done, 3)}
        s["setup_s"] = {"pairs": round(self.times["pairs_s"], 1), "reference_logprobs": round(self.times["reference_s"], 1)}
        return s


def build_trainer(cfg: DictConfig) -> DPOTrainer:
    """Validate, the preference file, tokenizer and prompt lengths, then (only then) the model weights."""
    validate(cfg)
    pairs = read_jsonl(cfg.algo.data_file) if cfg.algo.data_file else None  # a malformed file fails before any weights load
    _, dtype, task, tokenizer, model = load_run_parts(cfg)
    return DPOTrainer(cfg, Path(cfg.run_root) / run_name(cfg), model, tokenizer, task, pairs=pairs, compute_dtype=dtype)


def train_from_config(cfg: DictConfig, progress: bool = False) -> dict:
    """One DPO run (see ppo_bench.llm.train.run_or_skip)."""
    return run_or_skip(cfg, build_trainer, progress)
