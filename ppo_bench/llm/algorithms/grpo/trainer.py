"""GRPO's step (``algo=grpo``): sample G completions per prompt, reward them, update the policy μ times.

One step (DeepSeekMath Alg. 1, one outer iteration with the reference fixed at the start):
  generation  → G samples per prompt from π_θold with the KV cache
  rewards     → Σ_k w_k r_k, group-normalised advantages (``ppo_bench.common.losses.group_advantages``)
  log-probs   → log π_θold (only when μ > 1; otherwise ρ = exp(logp − logp.detach())) and log π_ref (β > 0)
  update      → μ AdamW steps on −J_GRPO (``loss.grpo_loss``), micro-batched with gradient accumulation
A step in which every group's rewards are equal has no learning signal: with β = 0 it takes no
update (``stats/optimizer_steps`` 0), and the summary counts the steps that did. Each phase is timed
under ``perf/``. Evaluation, checkpoints and the rest of the run are the harness's (``harness.run.LMRun``).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from ppo_bench.common.errors import NonFiniteLoss
from ppo_bench.common.losses import equal_reward_groups, group_advantages
from ppo_bench.llm.algorithms.grpo.config import GRPOConfig
from ppo_bench.llm.algorithms.grpo.loss import grpo_loss
from ppo_bench.llm.harness.logprobs import token_logprobs
from ppo_bench.llm.harness.models import load_model
from ppo_bench.llm.harness.registry import LMAlgorithm, register_lm_algorithm
from ppo_bench.llm.harness.rewards import weighted_rewards
from ppo_bench.llm.harness.run import LMRun, load_run_parts
from ppo_bench.llm.harness.sampling import generate


@torch.no_grad()
def completion_logprobs(run: LMRun, model, ids, am, rows, n_completion, temperature: float, micro_batch: int) -> torch.Tensor:
    """log-probs of the completion tokens of ``rows`` (others left 0), micro-batched, no gradient."""
    out = torch.zeros(ids.shape[0], n_completion, device=ids.device)
    with run.autocast():
        for chunk in rows.split(micro_batch):
            out[chunk] = token_logprobs(model, ids[chunk], am[chunk], n_completion, temperature)[0].float()
    return out


@register_lm_algorithm("grpo", config=GRPOConfig)
class GRPOTrainer(LMAlgorithm):
    label = "GRPO"
    phases = ("generation_s", "reward_s", "logprobs_s", "update_s")

    def __init__(self, run: LMRun, ref_model=None, reward_fns=None):
        self.run, self.a, self.ref = run, run.a, ref_model
        self.reward_fns = dict(reward_fns or run.task.rewards)
        self.weights = {k: float(v) for k, v in run.cfg.task.rewards.items()}

    @classmethod
    def build(cls, cfg: DictConfig, run_dir: Path) -> LMRun:
        device, dtype, task, tokenizer, model = load_run_parts(cfg, cfg.algo.max_completion_length)
        ref = load_model(cfg.model, tokenizer, device, dtype, seed=cfg.seed, trainable=False) if cfg.algo.beta > 0 else None
        run = LMRun(cfg, run_dir, model, tokenizer, task, compute_dtype=dtype)
        return run.attach(cls(run, ref_model=ref))

    @staticmethod
    def models_held(algo) -> tuple[int, str]:
        ref = algo["beta"] > 0
        return 1 + int(ref), ", ".join(["policy"] + (["reference"] if ref else []) + ["verifier"])

    def parameters(self):
        return list(self.run.model.parameters())

    def progress_postfix(self, metrics: dict) -> str:
        return f"reward={metrics['rewards/mean']:.3f} step_s={metrics['perf/step_s']:.1f}"

    def train_step(self) -> dict[str, float]:
        run, a, G = self.run, self.a, self.a.num_generations
        model = run.model
        t0 = time.perf_counter()
        examples = run.task.sample_train(run.rng, a.prompts_per_step)
        prompts = [run.prompt(e) for e in examples]
        with run.autocast():
            comp = generate(model, run.tok, prompts, n=G, max_new_tokens=a.max_completion_length,
                            temperature=a.temperature, eos_ids=run.eos_ids, top_k=a.top_k, top_p=a.top_p)
        t1 = time.perf_counter()

        rep_prompts = [p for p in prompts for _ in range(G)]
        fields = [e.reward_fields() for e in examples for _ in range(G)]
        rewards, per_fn = weighted_rewards(self.reward_fns, self.weights, rep_prompts, comp.texts, fields)
        if a.truncated == "zero":  # a completion cut off before its EOS has given no final answer
            finished = (~comp.truncated).float().cpu()
            rewards, per_fn = rewards * finished, {k: v * finished for k, v in per_fn.items()}
        adv = group_advantages(rewards, G, a.scale_rewards, a.adv_eps).to(run.device)
        t2 = time.perf_counter()

        ids, am, mask = comp.input_ids, comp.attention_mask, comp.completion_mask
        if a.truncated == "mask":  # DAPO's overlong filtering: truncated completions take no part in the loss
            mask = mask * (~comp.truncated).long().unsqueeze(1)
        n_seqs, n_tokens, C = ids.shape[0], int(mask.sum()), mask.shape[1]
        rows = torch.arange(n_seqs, device=run.device)
        if a.skip_zero_advantage and a.beta == 0:
            rows = rows[adv != 0]  # exact: these rows' loss terms are identically 0 (no KL term either)
        rows = rows[mask[rows].sum(1) > 0]  # fully masked rows contribute nothing
        old_logp = completion_logprobs(run, model, ids, am, rows, C, a.temperature, a.micro_batch_size) if a.num_iterations > 1 else None
        ref_logp = completion_logprobs(run, self.ref, ids, am, rows, C, a.temperature, a.micro_batch_size) if a.beta > 0 else None
        t3 = time.perf_counter()

        run.set_learning_rate()
        sums = {"loss": 0.0, "entropy": 0.0, "clip_low": 0.0, "clip_high": 0.0, "kl": 0.0, "tokens": 0.0, "ratio_max": 1.0}
        grad_norm, optimizer_steps = float("nan"), 0
        for it in range(a.num_iterations):
            if len(rows) == 0:
                break  # no group had a learning signal: no update (an Adam step on zero gradients would only replay momentum)
            run.opt.zero_grad(set_to_none=True)
            for chunk in rows.split(a.micro_batch_size):
                with run.autocast():
                    logp, entropy = token_logprobs(model, ids[chunk], am[chunk], C, a.temperature, with_entropy=(it == 0))
                old = old_logp[chunk] if old_logp is not None else logp.detach()
                loss, st = grpo_loss(logp, old, ref_logp[chunk] if ref_logp is not None else None, adv[chunk], mask[chunk],
                                          eps_low=a.epsilon, eps_high=a.epsilon_high if a.epsilon_high is not None else a.epsilon,
                                          beta=a.beta, loss_type=a.loss_type, n_seqs=n_seqs, n_tokens=n_tokens,
                                          max_len=a.max_completion_length)
                if not torch.isfinite(loss):
                    raise NonFiniteLoss(f"non-finite GRPO loss at step {run.step + 1}")
                loss.backward()
                if it == a.num_iterations - 1:
                    sums["loss"] += loss.item()
                    for k in ("clip_low", "clip_high", "kl", "tokens"):
                        sums[k] += st[k].item()
                    sums["ratio_max"] = max(sums["ratio_max"], st["ratio_max"].item())
                if entropy is not None:
                    sums["entropy"] += (entropy * mask[chunk]).sum().item()
            grad_norm = run.optimizer_step()
            optimizer_steps += 1
        t4 = time.perf_counter()

        lengths = comp.lengths.float()
        zero_std = equal_reward_groups(rewards, G)  # exactly the groups whose advantages are 0
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
            "stats/optimizer_steps": optimizer_steps,
            "stats/completion_length/mean": lengths.mean().item(),
            "stats/completion_length/min": lengths.min().item(),
            "stats/completion_length/max": lengths.max().item(),
            "stats/completion_truncated": comp.truncated.float().mean().item(),
            "charts/learning_rate": run.opt.param_groups[0]["lr"],
            "perf/generation_s": t1 - t0,
            "perf/reward_s": t2 - t1,
            "perf/logprobs_s": t3 - t2,
            "perf/update_s": t4 - t3,
            "perf/generated_tokens_per_s": lengths.sum().item() / max(t1 - t0, 1e-9),
        }
        if len(rows):
            m["losses/entropy"] = sums["entropy"] / max(mask[rows].sum().item(), 1.0)
        if a.beta > 0:
            m["stats/kl"] = sums["kl"] / tok
        run.last_samples = [
            {"prompt": examples[i // G].question, "completion": comp.texts[i], "reward": round(rewards[i].item(), 3)}
            for i in range(0, min(len(comp.texts), run.cfg.log_completions * G), G)
        ]
        return m

