"""The DPO training loop (``algo=dpo``): preference pairs, cached reference log-probs, one loss per variant.

Before the first step:
  pairs      → read from ``algo.data_file``, or sampled from the policy on the task (``harness.preferences``)
  reference  → log π_ref(y⁺|x), log π_ref(y⁻|x) of every pair, computed once: the reference is the policy
               at its starting weights, so this pass is made by the policy before any update and no
               second model is kept; the pairs and these log-probs are cached in ``preferences.pt``
Each step: ``algo.batch_size`` pairs (a fresh permutation every epoch), chosen and rejected of each
micro-batch in one concatenated forward pass, ``loss.DPO_LOSSES[algo.loss]``, one AdamW step.
Evaluation (plus reward accuracy and log-prob changes over all training pairs), checkpoints, resume,
status and the final model are the run harness's (``harness.run.LMRun``), which holds a ``DPOTrainer`` by
composition.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from ppo_bench.common.atomic import atomic_torch_save
from ppo_bench.common.errors import ConfigError, NonFiniteLoss
from ppo_bench.common.run_folder import read_checkpoint
from ppo_bench.llm.algorithms.dpo.config import DPOConfig
from ppo_bench.llm.algorithms.dpo.loss import DPO_LOSSES, REFERENCE_FREE, LossOptions
from ppo_bench.llm.harness.batches import collate
from ppo_bench.llm.harness.logprobs import sequence_logprob, token_logprobs
from ppo_bench.llm.harness.models import context_length
from ppo_bench.llm.harness.preferences import (PreferencePair, data_file_pairs, epoch_batch, pairs_for_run, tokenize_pairs,
                                               write_jsonl)
from ppo_bench.llm.harness.registry import LMAlgorithm, register_lm_algorithm
from ppo_bench.llm.harness.run import LMRun, load_run_parts


def concatenated_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """log π(y|x) summed over the response tokens of every row, [2B], in one forward pass.

    Rows are the B chosen then the B rejected sequences: the prompt left-padded, the response
    right-padded to the batch's longest (``batches.collate``); prompt tokens and padding are
    outside ``response_mask`` and so outside the sum.
    """
    token_logp, _ = token_logprobs(model, input_ids, attention_mask, response_mask.shape[1])
    return sequence_logprob(token_logp, response_mask)


@register_lm_algorithm("dpo", config=DPOConfig)
class DPOTrainer(LMAlgorithm):
    phases = ("pairs_s", "reference_s", "update_s")

    def __init__(self, run: LMRun, pairs: list[PreferencePair] | None = None):
        self.run, self.a, self.cfg = run, run.a, run.cfg
        self.model, self.tok, self.task, self.device = run.model, run.tok, run.task, run.device
        self.label = f"DPO ({self.a.loss})"
        self.loss_fn = DPO_LOSSES[self.a.loss]
        self.options = LossOptions.from_config(self.a)
        self.pairs = pairs  # None: from algo.data_file or the task, at the start of train()
        self.pair_stats: dict[str, float] = {}
        self.eos_id = run.tok.eos_token_id if run.tok.eos_token_id is not None else run.eos_ids[0]  # ends every response

    @classmethod
    def build(cls, cfg: DictConfig, run_dir: Path) -> LMRun:
        """The preference file first (a malformed one fails before any weights load), then the run."""
        pairs = data_file_pairs(cfg, run_dir, "preferences.pt")
        _, dtype, task, tokenizer, model = load_run_parts(cfg)
        run = LMRun(cfg, run_dir, model, tokenizer, task, compute_dtype=dtype)
        return run.attach(cls(run, pairs=pairs))

    @staticmethod
    def models_held(algo) -> tuple[int, str]:
        if algo["loss"] in REFERENCE_FREE:
            return 1, "policy (no reference)"
        return 1, "policy (reference log-probs computed once, cached)"

    def parameters(self):
        return list(self.model.parameters())

    # the pairs and reference log-probs are cached in preferences.pt: no state of its own in the checkpoint

    # ---- data and reference ------------------------------------------------------------------

    @property
    def cache_path(self) -> Path:
        return self.run.run_dir / "preferences.pt"

    def build_pairs(self) -> list[PreferencePair]:
        pairs, self.pair_stats = pairs_for_run(self.run)
        return pairs

    @torch.no_grad()
    def sequence_logps(self) -> tuple[torch.Tensor, torch.Tensor]:
        """log π(y⁺|x), log π(y⁻|x) of every pair under the current policy, no gradient."""
        was = self.model.training
        self.model.eval()
        chosen, rejected = [], []
        for idx in torch.arange(len(self.tokenized)).split(self.a.micro_batch_size):
            b = collate([self.tokenized[i] for i in idx], self.tok.pad_token_id).to(self.device)
            with self.run.autocast():
                logps = concatenated_logps(self.model, b.input_ids, b.attention_mask, b.response_mask).float()
            chosen.append(logps[: len(idx)])
            rejected.append(logps[len(idx):])
        self.model.train(was)
        return torch.cat(chosen).cpu(), torch.cat(rejected).cpu()

    def prepare(self, resuming: bool) -> None:
        """Pairs and their reference log-probs: from the cache when resuming, otherwise built and cached."""
        run = self.run
        if resuming and self.cache_path.is_file():
            cache = read_checkpoint(self.cache_path, what="the preference cache")  # as data: runs no code
            self.pairs = [PreferencePair(**p) for p in cache["pairs"]]
            self.ref_chosen, self.ref_rejected, self.pair_stats = cache["ref_chosen"], cache["ref_rejected"], cache["stats"]
            self.tokenized = tokenize_pairs(self.tok, self.pairs, self.eos_id)
            return
        with run.phase("setup: pairs", run.times, "pairs_s"):
            if self.pairs is None:
                self.pairs = self.build_pairs()
            self.pair_stats = self.pair_stats or {"pairs": len(self.pairs)}
            self.tokenized = tokenize_pairs(self.tok, self.pairs, self.eos_id)
            longest = max(len(p) + max(len(c), len(r)) for p, c, r in self.tokenized)
            limit = context_length(self.cfg.model)
            if longest > limit:
                raise ConfigError(f"a preference pair of {longest} tokens exceeds the context of model={self.cfg.model.name} ({limit} tokens)")
        with run.phase("setup: reference log-probs", run.times, "reference_s"):
            if self.a.loss in REFERENCE_FREE:
                self.ref_chosen = self.ref_rejected = torch.zeros(len(self.pairs))
            else:
                self.ref_chosen, self.ref_rejected = self.sequence_logps()  # the starting policy is π_ref
        run.run_dir.mkdir(parents=True, exist_ok=True)
        write_jsonl(run.run_dir / "pairs.jsonl", self.pairs)
        atomic_torch_save({"pairs": [p.__dict__ for p in self.pairs], "ref_chosen": self.ref_chosen,
                           "ref_rejected": self.ref_rejected, "stats": self.pair_stats}, self.cache_path)

    def batch_indices(self, step: int) -> torch.Tensor:
        return epoch_batch(len(self.pairs), self.a.batch_size, step, self.cfg.seed)

    # ---- one DPO step ------------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        a, run = self.a, self.run
        t0 = time.perf_counter()
        run.set_learning_rate()
        idx = self.batch_indices(run.step)
        B = len(idx)
        sums = dict.fromkeys(("loss", "chosen", "rejected", "accuracy", "margin", "logps_chosen", "logps_rejected"), 0.0)
        run.opt.zero_grad(set_to_none=True)
        for chunk in idx.split(a.micro_batch_size):
            b = collate([self.tokenized[i] for i in chunk], self.tok.pad_token_id).to(self.device)
            with run.autocast():
                logps = concatenated_logps(self.model, b.input_ids, b.attention_mask, b.response_mask).float()
            policy_chosen, policy_rejected = logps[: len(chunk)], logps[len(chunk):]
            losses, chosen_rewards, rejected_rewards = self.loss_fn(
                policy_chosen, policy_rejected, self.ref_chosen[chunk].to(self.device), self.ref_rejected[chunk].to(self.device),
                self.options)
            loss = losses.sum() / B  # the mean over the step's pairs, whatever the micro-batching
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"non-finite DPO loss at step {run.step + 1}")
            loss.backward()
            sums["loss"] += loss.item()
            sums["chosen"] += chosen_rewards.sum().item()
            sums["rejected"] += rejected_rewards.sum().item()
            sums["accuracy"] += (chosen_rewards > rejected_rewards).float().sum().item()
            sums["margin"] += (chosen_rewards - rejected_rewards).sum().item()
            sums["logps_chosen"] += policy_chosen.detach().sum().item()
            sums["logps_rejected"] += policy_rejected.detach().sum().item()
        grad_norm = run.optimizer_step()
        dt = time.perf_counter() - t0
        m = {
            "losses/dpo": sums["loss"],
            "rewards/chosen": sums["chosen"] / B,
            "rewards/rejected": sums["rejected"] / B,
            "rewards/accuracies": sums["accuracy"] / B,
            "rewards/margins": sums["margin"] / B,
            "logps/chosen": sums["logps_chosen"] / B,
            "logps/rejected": sums["logps_rejected"] / B,
            "stats/grad_norm": grad_norm,
            "stats/optimizer_steps": 1,
            "charts/learning_rate": run.opt.param_groups[0]["lr"],
            "perf/update_s": dt,
        }
        run.last_samples = [{"prompt": self.pairs[i].prompt[-60:], "chosen": self.pairs[i].chosen, "rejected": self.pairs[i].rejected}
                             for i in idx[: self.cfg.log_completions].tolist()]
        return m

    # ---- all training pairs, at every evaluation ---------------------------------------------

    def preference_stats(self) -> dict[str, float]:
        """Over every training pair: reward accuracy and margin, mean log-probs and their change from π_ref."""
        policy_chosen, policy_rejected = self.sequence_logps()
        ref_chosen, ref_rejected = self.ref_chosen, self.ref_rejected
        _, chosen_rewards, rejected_rewards = self.loss_fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected, self.options)
        with_reference = self.a.loss not in REFERENCE_FREE
        return {"rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean().item(),
                "rewards/margins": (chosen_rewards - rejected_rewards).mean().item(),
                "logps/chosen": policy_chosen.mean().item(), "logps/rejected": policy_rejected.mean().item(),
                "logps/chosen_change": (policy_chosen - ref_chosen).mean().item() if with_reference else float("nan"),
                "logps/rejected_change": (policy_rejected - ref_rejected).mean().item() if with_reference else float("nan")}

    def evaluate_extra(self) -> dict:
        pairs = self.preference_stats()
        return {"pairs": pairs, "scalars": {f"train_pairs/{k}": v for k, v in pairs.items()}}

    def progress_postfix(self, metrics: dict) -> str:
        return (f"loss={metrics['losses/dpo']:.3f} acc={metrics['rewards/accuracies']:.2f} "
                f"margin={metrics['rewards/margins']:.2f} step_s={metrics['perf/step_s']:.1f}")

    def summary_extra(self, s: dict) -> None:
        evals = self.run.evals
        first = next((e for e in evals if e["step"] == 0), None)
        last = self.run.final_eval()  # "after": at the last step, not the last periodic evaluation
        s["pairs"] = self.pair_stats
        s["train_pairs_before"] = first.get("pairs") if first else None
        s["train_pairs_after"] = last.get("pairs") if last else None
        by_step = {e["step"]: e.get("pairs") for e in evals}
        for e in s["evals"]:
            e["pairs"] = by_step.get(e["step"])
        times = self.run.times
        s["seconds_per_step"] = {"update": round(times["update_s"] / max(self.run.step, 1), 3)}
        s["setup_s"] = {"pairs": round(times["pairs_s"], 1), "reference_logprobs": round(times["reference_s"], 1)}

