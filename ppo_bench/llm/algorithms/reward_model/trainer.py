"""The reward model of RLHF (``algo=reward_model``): a scalar head on the LM, trained on preference pairs.

Stage 2 of the SFT → reward model → PPO pipeline (Ziegler et al. 2019; Ouyang et al. 2022) that DPO
collapses into one loss. The model is a copy of the starting LM with a linear head on the last hidden
state of a sequence's final token: r(x, y). It is trained on pairs (y⁺ preferred to y⁻) with the
Bradley–Terry loss −log σ(r(x, y⁺) − r(x, y⁻)); a share ``algo.eval_fraction`` of the pairs is held out
and its pair accuracy (r(y⁺) > r(y⁻)) is the run's accuracy before and after. The pairs are those the
DPO path reads (``algo.data_file``, JSONL ``prompt``/``chosen``/``rejected``) or builds from the task
(the model's own correct vs incorrect samples). The saved ``model/`` folder holds the LM and
``reward_head.pt``; ``algo=ppo algo.reward_model=<run>/model`` scores completions with it (``harness.reward_models``).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from ppo_bench.common.errors import ConfigError, NonFiniteLoss
from ppo_bench.llm.algorithms.reward_model.config import RewardModelConfig
from ppo_bench.llm.algorithms.reward_model.loss import bradley_terry_loss
from ppo_bench.llm.harness.batches import collate
from ppo_bench.llm.harness.models import context_length
from ppo_bench.llm.harness.preferences import (data_file_pairs, epoch_batch, pairs_for_run, read_jsonl, tokenize_pairs,
                                               write_jsonl)
from ppo_bench.llm.harness.registry import LMAlgorithm, register_lm_algorithm
from ppo_bench.llm.harness.reward_models import HEAD_FILE, pair_scores, score_head
from ppo_bench.llm.harness.run import LMRun, load_run_parts

@register_lm_algorithm("reward_model", config=RewardModelConfig)
class RewardTrainer(LMAlgorithm):
    label = "reward model"
    phases = ("pairs_s", "update_s")

    def __init__(self, run: LMRun, pairs=None):
        self.run, self.a = run, run.a
        run.greedy_eval = False  # its accuracy is the held-out pair accuracy, not generation
        self.head = score_head(run.model)
        self.pairs = pairs
        self.pair_stats: dict = {}
        self.eos_id = run.tok.eos_token_id if run.tok.eos_token_id is not None else run.eos_ids[0]

    @classmethod
    def build(cls, cfg: DictConfig, run_dir: Path) -> LMRun:
        """The preference file first (a malformed one fails before any weights load), then the run."""
        pairs = data_file_pairs(cfg, run_dir, "pairs.jsonl")
        _, dtype, task, tokenizer, model = load_run_parts(cfg)
        run = LMRun(cfg, run_dir, model, tokenizer, task, compute_dtype=dtype)
        return run.attach(cls(run, pairs=pairs))

    @staticmethod
    def models_held(algo) -> tuple[int, str]:
        return 1, "reward model"

    def parameters(self):
        return [*self.run.model.parameters(), *self.head.parameters()]

    def state_dict(self) -> dict:
        return {"head": self.head.state_dict(), "pair_stats": self.pair_stats}

    def load_state_dict(self, state: dict) -> None:
        self.head.load_state_dict(state["head"])
        self.pair_stats = state["pair_stats"]

    def save_extra(self, folder: Path) -> None:
        torch.save(self.head.state_dict(), folder / HEAD_FILE)

    def prepare(self, resuming: bool) -> None:
        """The pairs (from the run folder when resuming: the same ones), split into training and held-out."""
        run, a = self.run, self.a
        t = time.perf_counter()
        saved = run.run_dir / "pairs.jsonl"
        if resuming and saved.is_file():
            self.pairs = read_jsonl(saved)
        else:
            if self.pairs is None:
                self.pairs, self.pair_stats = pairs_for_run(run)
            write_jsonl(saved, self.pairs)
        n = len(self.pairs)
        n_eval = max(1, round(a.eval_fraction * n))
        if n - n_eval < 1:
            raise ConfigError(f"{n} preference pairs: too few to hold out algo.eval_fraction={a.eval_fraction} and train on the rest")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(run.cfg.seed)).tolist()
        tokenized = tokenize_pairs(run.tok, self.pairs, self.eos_id)
        longest = max(len(p) + max(len(c), len(r)) for p, c, r in tokenized)
        if longest > context_length(run.cfg.model):
            raise ConfigError(f"a preference pair of {longest} tokens exceeds the context of model={run.cfg.model.name}")
        self.eval_pairs = [tokenized[i] for i in order[:n_eval]]
        self.train_pairs = [tokenized[i] for i in order[n_eval:]]
        self.pair_stats = {**self.pair_stats, "pairs": n, "train": len(self.train_pairs), "held_out": n_eval}
        run.times["pairs_s"] = run.times.get("pairs_s", 0.0) + time.perf_counter() - t

    def train_step(self) -> dict[str, float]:
        run, a = self.run, self.a
        t0 = time.perf_counter()
        run.set_learning_rate()
        idx = epoch_batch(len(self.train_pairs), a.batch_size, run.step, run.cfg.seed)
        B = len(idx)
        sums = dict.fromkeys(("loss", "accuracy", "margin", "chosen", "rejected"), 0.0)
        run.opt.zero_grad(set_to_none=True)
        for chunk in idx.split(a.micro_batch_size):
            batch = collate([self.train_pairs[i] for i in chunk], run.tok.pad_token_id).to(run.device)
            with run.autocast():
                chosen, rejected = pair_scores(run.model, self.head, batch)
            loss = bradley_terry_loss(chosen.float(), rejected.float()).sum() / B
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"non-finite reward-model loss at step {run.step + 1}")
            loss.backward()
            sums["loss"] += loss.item()
            sums["accuracy"] += (chosen > rejected).float().sum().item()
            sums["margin"] += (chosen - rejected).sum().item()
            sums["chosen"] += chosen.sum().item()
            sums["rejected"] += rejected.sum().item()
        grad_norm = run.optimizer_step()
        return {
            "losses/bradley_terry": sums["loss"],
            "rewards/accuracies": sums["accuracy"] / B,
            "rewards/margins": sums["margin"] / B,
            "rewards/chosen": sums["chosen"] / B,
            "rewards/rejected": sums["rejected"] / B,
            "stats/grad_norm": grad_norm,
            "stats/optimizer_steps": 1,
            "charts/learning_rate": run.opt.param_groups[0]["lr"],
            "perf/update_s": time.perf_counter() - t0,
        }

    @torch.no_grad()
    def evaluate_extra(self) -> dict:
        """Pair accuracy and mean margin r(y⁺) − r(y⁻) on the held-out pairs."""
        run = self.run
        was = run.model.training
        run.model.eval()
        margins = []
        for start in range(0, len(self.eval_pairs), self.a.micro_batch_size):
            batch = collate(self.eval_pairs[start:start + self.a.micro_batch_size], run.tok.pad_token_id).to(run.device)
            with run.autocast():
                chosen, rejected = pair_scores(run.model, self.head, batch)
            margins.append((chosen - rejected).float().cpu())
        run.model.train(was)
        m = torch.cat(margins)
        accuracy = (m > 0).float().mean().item()
        return {"accuracy": accuracy, "n": len(m), "final": True, "margin": m.mean().item(),
                "scalars": {"eval/pair_accuracy": accuracy, "eval/pair_margin": m.mean().item()}}

    def progress_postfix(self, metrics: dict) -> str:
        return f"loss={metrics['losses/bradley_terry']:.3f} acc={metrics['rewards/accuracies']:.2f}"

    def summary_extra(self, summary: dict) -> None:
        summary["pairs"] = self.pair_stats
        summary["accuracy_is"] = "held-out preference-pair accuracy r(y+) > r(y-)"

