"""KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization"), ``algo=kto``: preference
training on unpaired examples, each a prompt x and one completion y labelled desirable (y⁺) or undesirable (y⁻).

The data are the DPO path's pairs (``algo.data_file``, or built from the task by the policy's own samples), each
split into a desirable example (its chosen) and an undesirable one (its rejected): ``preferences.unpair``. With
the implied reward r(x, y) = log π(y|x) − log π_ref(y|x), summed over the response tokens:

    z0          = max(0, mean_i r(x_i, y'_i)), no gradient: the reference point, a batch estimate of
                  KL[π‖π_ref] on mismatched examples (x_i, y'_i), y'_i the completion of an example with another prompt
    loss(x, y⁺) = λ_D (1 − σ(β (r(x, y⁺) − z0)))
    loss(x, y⁻) = λ_U (1 − σ(β (z0 − r(x, y⁻))))        KTO eq. 7: λ_y − v(x, y)

averaged over the step's examples. The reference is the policy at its starting weights, as for DPO: log π_ref
of every example and of its mismatched partner is computed once, before the first update, and cached in the
run folder's ``preferences.pt`` (TRL's ``precompute_ref_log_probs``); no second model is kept. Each example's
partner is fixed once (the next example with another prompt in a seeded order), so that its reference log-prob
can be cached; TRL pairs each example with its batch neighbour's completion instead. The policy's side of z0 is
a forward pass without gradient over the batch's mismatched examples, as in TRL.

Metrics use TRL's ``KTOTrainer`` names: ``kl`` (z0), ``rewards/chosen``, ``rewards/rejected``, ``rewards/margins``
(β r, batch means), ``logps/chosen``, ``logps/rejected``, ``count/chosen``, ``count/rejected``; ``losses/kto``.
The equations are in ``loss``; evaluation, checkpoints and the rest of the run are the harness's (``harness.run.LMRun``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import torch
from omegaconf import DictConfig

from ppo_bench.common.atomic import atomic_torch_save
from ppo_bench.common.errors import ConfigError, NonFiniteLoss
from ppo_bench.common.run_folder import read_checkpoint
from ppo_bench.llm.algorithms.kto.config import KTOConfig
from ppo_bench.llm.algorithms.kto.loss import kto_loss, kto_reference_point
from ppo_bench.llm.harness.batches import collate_rows
from ppo_bench.llm.harness.logprobs import response_logps, sequence_logprob, token_logprobs
from ppo_bench.llm.harness.models import context_length
from ppo_bench.llm.harness.preferences import (PreferencePair, UnpairedExample, data_file_pairs, epoch_batch, pairs_for_run,
                                               tokenize_examples, unpair, write_jsonl)
from ppo_bench.llm.harness.registry import LMAlgorithm, register_lm_algorithm
from ppo_bench.llm.harness.run import LMRun, load_run_parts


def mismatched_partners(prompts: Sequence[str], seed: int) -> list[int]:
    """For each example i, the example j whose completion makes its mismatched pair (x_i, y_j): the next one with
    another prompt in a seeded cyclic order (the next one at all when every prompt is the same)."""
    n = len(prompts)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    partners = list(range(n))
    for k, i in enumerate(order):
        following = [order[(k + step) % n] for step in range(1, n)]
        partners[i] = next((j for j in following if prompts[j] != prompts[i]), following[0] if following else i)
    return partners


@register_lm_algorithm("kto", config=KTOConfig)
class KTOTrainer(LMAlgorithm):
    label = "KTO"
    phases = ("pairs_s", "reference_s", "update_s")

    def __init__(self, run: LMRun, pairs: list[PreferencePair] | None = None):
        self.run, self.a, self.cfg = run, run.a, run.cfg
        self.model, self.tok, self.device = run.model, run.tok, run.device
        self.pairs = pairs  # None: from algo.data_file or the task, at the start of train()
        self.pair_stats: dict = {}
        self.eos_id = run.tok.eos_token_id if run.tok.eos_token_id is not None else run.eos_ids[0]

    @classmethod
    def build(cls, cfg: DictConfig, run_dir: Path) -> LMRun:
        """The preference file first (a malformed one fails before any weights load), then the run."""
        pairs = data_file_pairs(cfg, run_dir, "preferences.pt")
        _, dtype, task, tokenizer, model = load_run_parts(cfg)
        run = LMRun(cfg, run_dir, model, tokenizer, task, compute_dtype=dtype)
        return run.attach(cls(run, pairs=pairs))

    @staticmethod
    def models_held(algo) -> tuple[int, str]:
        return 1, "policy (reference log-probs computed once, cached)"

    def parameters(self):
        return list(self.model.parameters())

    # the examples and reference log-probs are cached in preferences.pt: no state of its own in the checkpoint

    # ---- data and reference ------------------------------------------------------------------

    @property
    def cache_path(self) -> Path:
        return self.run.run_dir / "preferences.pt"

    def logps(self, rows) -> torch.Tensor:
        """log π(y|x) of (prompt ids, completion ids) rows under the current policy, no gradient."""
        return response_logps(self.model, rows, self.tok.pad_token_id, self.a.micro_batch_size, self.run.autocast)

    def prepare(self, resuming: bool) -> None:
        """The examples, their mismatched partners and the reference log-probs of both: from the cache when
        resuming, otherwise built and cached."""
        run = self.run
        cached = resuming and self.cache_path.is_file()
        if cached:
            cache = read_checkpoint(self.cache_path, what="the preference cache")  # as data: runs no code
            self.examples = [UnpairedExample(**e) for e in cache["examples"]]
            self.partners, self.pair_stats = cache["partners"], cache["stats"]
            self.ref, self.ref_kl = cache["ref"], cache["ref_kl"]
        else:
            if self.pairs is None:
                with run.phase("setup: pairs", run.times, "pairs_s"):
                    self.pairs, self.pair_stats = pairs_for_run(run)
            self.pair_stats = self.pair_stats or {"pairs": len(self.pairs)}
            self.examples = unpair(self.pairs)
            self.partners = mismatched_partners([e.prompt for e in self.examples], self.cfg.seed)
        self.rows = tokenize_examples(self.tok, self.examples, self.eos_id)
        self.kl_rows = [(self.rows[i][0], self.rows[j][1]) for i, j in enumerate(self.partners)]
        self.desirable = torch.tensor([e.desirable for e in self.examples])
        if cached:
            return
        longest = max(len(p) + len(y) for p, y in self.rows + self.kl_rows)
        limit = context_length(self.cfg.model)
        if longest > limit:
            raise ConfigError(f"a KTO example of {longest} tokens exceeds the context of model={self.cfg.model.name} ({limit} tokens)")
        with run.phase("setup: reference log-probs", run.times, "reference_s"):
            both = self.logps(self.rows + self.kl_rows)  # the starting policy is π_ref
            self.ref, self.ref_kl = both[: len(self.rows)], both[len(self.rows):]
        run.run_dir.mkdir(parents=True, exist_ok=True)
        write_jsonl(run.run_dir / "pairs.jsonl", self.pairs)
        atomic_torch_save({"examples": [e.__dict__ for e in self.examples], "partners": self.partners, "ref": self.ref,
                           "ref_kl": self.ref_kl, "stats": self.pair_stats}, self.cache_path)

    # ---- one KTO step ------------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        a, run = self.a, self.run
        t0 = time.perf_counter()
        run.set_learning_rate()
        idx = epoch_batch(len(self.examples), a.batch_size, run.step, self.cfg.seed)
        B = len(idx)
        z0 = kto_reference_point(self.logps([self.kl_rows[i] for i in idx]), self.ref_kl[idx]).to(self.device)
        sums = dict.fromkeys(("loss", "chosen", "rejected", "logps_chosen", "logps_rejected", "n_chosen", "n_rejected"), 0.0)
        run.opt.zero_grad(set_to_none=True)
        for chunk in idx.split(a.micro_batch_size):
            b = collate_rows([self.rows[i] for i in chunk], self.tok.pad_token_id).to(self.device)
            with run.autocast():
                token_logp, _ = token_logprobs(self.model, b.input_ids, b.attention_mask, b.response_mask.shape[1])
            logps = sequence_logprob(token_logp.float(), b.response_mask)
            desirable = self.desirable[chunk].to(self.device)
            losses, rewards = kto_loss(logps, self.ref[chunk].to(self.device), desirable, z0, a.beta,
                                       a.desirable_weight, a.undesirable_weight)
            loss = losses.sum() / B  # the mean over the step's examples, whatever the micro-batching
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"non-finite KTO loss at step {run.step + 1}")
            loss.backward()
            sums["loss"] += loss.item()
            for side, mask in (("chosen", desirable), ("rejected", ~desirable)):
                sums[side] += rewards[mask].sum().item()
                sums[f"logps_{side}"] += logps.detach()[mask].sum().item()
                sums[f"n_{side}"] += mask.sum().item()
        grad_norm = run.optimizer_step()
        m = {"losses/kto": sums["loss"], "kl": z0.item(), "count/chosen": sums["n_chosen"], "count/rejected": sums["n_rejected"]}
        for side in ("chosen", "rejected"):
            if sums[f"n_{side}"]:  # as TRL, a side absent from the batch is not logged
                m[f"rewards/{side}"] = sums[side] / sums[f"n_{side}"]
                m[f"logps/{side}"] = sums[f"logps_{side}"] / sums[f"n_{side}"]
        if "rewards/chosen" in m and "rewards/rejected" in m:
            m["rewards/margins"] = m["rewards/chosen"] - m["rewards/rejected"]
        m.update({"stats/grad_norm": grad_norm, "stats/optimizer_steps": 1, "charts/learning_rate": run.opt.param_groups[0]["lr"],
                  "perf/update_s": time.perf_counter() - t0})
        run.last_samples = [{"prompt": self.examples[i].prompt[-60:], "completion": self.examples[i].completion,
                             "desirable": self.examples[i].desirable} for i in idx[: self.cfg.log_completions].tolist()]
        return m

    # ---- all training examples, at every evaluation ------------------------------------------

    def example_stats(self) -> dict[str, float]:
        """Over every training example: mean log-probs of the desirable and undesirable ones and their change from π_ref."""
        logps = self.logps(self.rows)
        change, d = logps - self.ref, self.desirable
        return {"logps/chosen": logps[d].mean().item(), "logps/rejected": logps[~d].mean().item(),
                "logps/chosen_change": change[d].mean().item(), "logps/rejected_change": change[~d].mean().item(),
                "rewards/margins": self.a.beta * (change[d].mean() - change[~d].mean()).item()}

    def evaluate_extra(self) -> dict:
        stats = self.example_stats()
        return {"examples": stats, "scalars": {f"train_examples/{k}": v for k, v in stats.items()}}

    def progress_postfix(self, metrics: dict) -> str:
        return (f"loss={metrics['losses/kto']:.3f} kl={metrics['kl']:.2f} "
                f"margin={metrics.get('rewards/margins', float('nan')):.2f} step_s={metrics['perf/step_s']:.1f}")

    def summary_extra(self, s: dict) -> None:
        evals = self.run.evals
        first = next((e for e in evals if e["step"] == 0), None)
        last = self.run.final_eval()  # "after": at the last step, not the last periodic evaluation
        s["pairs"] = self.pair_stats
        s["examples"] = {"desirable": int(self.desirable.sum()), "undesirable": int((~self.desirable).sum())}
        s["train_examples_before"] = first.get("examples") if first else None
        s["train_examples_after"] = last.get("examples") if last else None
        times = self.run.times
        s["seconds_per_step"] = {"update": round(times["update_s"] / max(self.run.step, 1), 3)}
        s["setup_s"] = {"pairs": round(times["pairs_s"], 1), "reference_logprobs": round(times["reference_s"], 1)}

