"""PPO's step for language models (``algo=ppo``): rollout, KL-shaped rewards, GAE, μ epochs of minibatches.

The four models of RLHF-style PPO:
  policy     the LM being trained
  value      a linear head on the policy's last hidden state, sharing its trunk (as trlx's
             value-head models do): a separate value model would double every forward and backward
             pass and the weights plus Adam state on a 2-core CPU; the price is that the value loss
             (weighted by ``vf_coef``) also moves the trunk the policy uses
  reference  a frozen copy of the starting policy (not loaded when kl_coef = 0 and β is not adapted)
  reward     the task's verifier, or a reward model (``algo.reward_model``: a reward_model run's model/,
             scored through ``harness.reward_models``)
One step:
  rollout    one completion per prompt from π_θold (``algo.prompts_per_step`` prompts)
  score      the sequence reward of each completion
  old pass   log π_θold, V_old per response token (no gradient); log π_ref
  rewards    r_t = −β·k1 per token + the score at the last token (``loss.kl_shaped_rewards``)
  GAE        over response tokens only (``loss.response_gae``), advantages whitened
  update     ``algo.ppo_epochs`` passes over the rollout in minibatches of ``algo.minibatch_size``
             completions, one AdamW step each, on the clipped surrogate + c1 · clipped value loss
  β          fixed, or Ziegler et al. 2019's adaptive controller after each rollout
Stabilisers (config switches, off by default; docs/llm.md, "Stabilising PPO"): ``value_warmup_steps`` rollouts that
train the value head alone on the frozen trunk's hidden states before the policy moves (OpenRLHF's
``freezing_actor_steps``); ``value_init=reward_model``, the value head starting as the reward model's head (InstructGPT
initialises its value model from the reward model; here only the head, the trunk being the policy's); ``reward_norm``,
sequence scores normalised by the running mean and std of every score seen; ``vf_lr``, the value head's own step size.
Metrics use TRL's PPOTrainer names (objective/kl, objective/scores, objective/rlhf_reward,
policy/approxkl_avg, policy/clipfrac_avg, loss/policy_avg, loss/value_avg, val/clipfrac_avg, ...).
Evaluation, checkpoints and the rest of the run are the harness's (``harness.run.LMRun``). The class is
``PPOTrainer`` (TRL's name); the RL engine's PPO is ``ppo_bench.rl.algorithms.ppo.PPO``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from ppo_bench.common.errors import NonFiniteLoss
from ppo_bench.common.losses import kl_k1, masked_standardize
from ppo_bench.llm.algorithms.ppo.config import PPOConfig
from ppo_bench.llm.algorithms.ppo.loss import (RunningMoments, adaptive_kl_coef, kl_shaped_rewards, normalised_scores,
                                               ppo_token_loss, response_gae)
from ppo_bench.llm.harness.logprobs import token_logprobs, token_logprobs_and_hidden, token_logprobs_and_values
from ppo_bench.llm.harness.models import load_model
from ppo_bench.llm.harness.registry import LMAlgorithm, register_lm_algorithm
from ppo_bench.llm.harness.reward_models import batch_scores, load_reward_model
from ppo_bench.llm.harness.rewards import weighted_rewards
from ppo_bench.llm.harness.run import LMRun, load_run_parts
from ppo_bench.llm.harness.sampling import generate

VALUE_HEAD_FILE = "value_head.pt"


def value_head(model) -> torch.nn.Linear:
    """V(s_t) = w·h_t + b on the trunk's last hidden state, starting at 0 everywhere."""
    head = torch.nn.Linear(model.config.hidden_size, 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return head.to(next(model.parameters()).device)


@register_lm_algorithm("ppo", config=PPOConfig)
class PPOTrainer(LMAlgorithm):
    label = "PPO"
    phases = ("generation_s", "reward_s", "logprobs_s", "update_s")

    def __init__(self, run: LMRun, ref_model=None, reward_model=None):
        self.run, self.a = run, run.a
        self.ref = ref_model
        self.reward_model = reward_model  # (frozen LM, head) or None: the task's verifier
        self.value_head = value_head(run.model)
        if self.a.value_init == "reward_model":  # V(s_t) = the reward model's w·h_t on the policy's own hidden states
            with torch.no_grad():
                self.value_head.weight.copy_(reward_model[1].weight)
        self.kl_coef = float(self.a.kl_coef)
        self.score_moments = RunningMoments()
        self.reward_fns = dict(run.task.rewards)
        self.weights = {k: float(v) for k, v in run.cfg.task.rewards.items()}
        if reward_model is not None:
            self.label = "PPO (reward model)"

    @classmethod
    def build(cls, cfg: DictConfig, run_dir: Path) -> LMRun:
        a = cfg.algo
        device, dtype, task, tokenizer, model = load_run_parts(cfg, a.max_completion_length)
        reward_model = load_reward_model(a.reward_model, tokenizer, device, dtype) if a.reward_model else None
        ref = load_model(cfg.model, tokenizer, device, dtype, seed=cfg.seed, trainable=False) if cls.needs_reference(a) else None
        run = LMRun(cfg, run_dir, model, tokenizer, task, compute_dtype=dtype)
        return run.attach(cls(run, ref_model=ref, reward_model=reward_model))

    @staticmethod
    def needs_reference(algo) -> bool:
        return algo["kl_coef"] > 0 or algo["adaptive_kl"]

    @classmethod
    def models_held(cls, algo) -> tuple[int, str]:
        ref, rm = cls.needs_reference(algo), bool(algo.get("reward_model"))
        parts = ["policy + value head"] + (["reference"] if ref else []) + (["reward model"] if rm else ["verifier"])
        return 1 + int(ref) + int(rm), ", ".join(parts)

    def parameters(self):
        return [*self.run.model.parameters(), *self.value_head.parameters()]

    def param_groups(self) -> list[dict]:
        if self.a.vf_lr is None:
            return [{"params": self.parameters()}]
        return [{"params": list(self.run.model.parameters())},
                {"params": list(self.value_head.parameters()), "lr": self.a.vf_lr, "base_lr": self.a.vf_lr}]

    def state_dict(self) -> dict:
        return {"value_head": self.value_head.state_dict(), "kl_coef": self.kl_coef,
                "score_moments": self.score_moments.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.value_head.load_state_dict(state["value_head"])
        self.kl_coef = state["kl_coef"]
        self.score_moments = RunningMoments(**state.get("score_moments", {}))

    def save_extra(self, folder: Path) -> None:
        torch.save(self.value_head.state_dict(), folder / VALUE_HEAD_FILE)

    def progress_postfix(self, metrics: dict) -> str:
        return (f"score={metrics['objective/scores']:.3f} kl={metrics['objective/kl']:.3f} "
                f"step_s={metrics['perf/step_s']:.1f}")

    def summary_extra(self, summary: dict) -> None:
        summary["kl_coef_final"] = self.kl_coef
        summary["value_warmup_steps"] = min(self.a.value_warmup_steps, self.run.step)  # steps in which the policy did not move
        summary["reward"] = "reward model: " + str(self.a.reward_model) if self.a.reward_model else "verifier"

    @torch.no_grad()
    def scores(self, comp, prompts, examples) -> tuple[torch.Tensor, dict]:
        """The sequence reward of each completion: the reward model's r(q, o), or the task's verifier."""
        if self.reward_model is None:
            fields = [e.reward_fields() for e in examples]
            return weighted_rewards(self.reward_fns, self.weights, prompts, comp.texts, fields)
        model, head = self.reward_model
        scores = batch_scores(model, head, comp.as_batch(), self.a.micro_batch_size, self.run.autocast)
        return scores, {"reward_model": scores}

    @torch.no_grad()
    def old_pass(self, ids, am, C):
        """log π_θold, V_old, log π_ref and the trunk's last hidden states (the value head's input: what a value-only
        warm-up step trains the head on) of every completion token, micro-batched, no gradient."""
        run, a = self.run, self.a
        logp, values, ref = (torch.zeros(ids.shape[0], C, device=ids.device) for _ in range(3))
        hidden = torch.zeros(ids.shape[0], C, self.value_head.in_features, device=ids.device)
        with run.autocast():
            for chunk in torch.arange(ids.shape[0], device=ids.device).split(a.micro_batch_size):
                lp, h, _ = token_logprobs_and_hidden(run.model, ids[chunk], am[chunk], C, a.temperature)
                logp[chunk], hidden[chunk] = lp.float(), h
                values[chunk] = self.value_head(h).squeeze(-1).float()
                if self.ref is not None:
                    ref[chunk] = token_logprobs(self.ref, ids[chunk], am[chunk], C, a.temperature)[0].float()
        if self.ref is None:
            ref = logp.clone()  # β = 0 and not adapted: no KL term
        return logp, values, ref, hidden

    def train_step(self) -> dict[str, float]:
        run, a = self.run, self.a
        t0 = time.perf_counter()
        examples = run.task.sample_train(run.rng, a.prompts_per_step)
        prompts = [run.prompt(e) for e in examples]
        with run.autocast():
            comp = generate(run.model, run.tok, prompts, n=1, max_new_tokens=a.max_completion_length,
                            temperature=a.temperature, eos_ids=run.eos_ids)
        t1 = time.perf_counter()
        scores, per_fn = self.scores(comp, prompts, examples)
        if a.truncated == "zero":  # a completion cut off before its EOS has given no final answer
            finished = (~comp.truncated).float().cpu()
            scores, per_fn = scores * finished, {k: v * finished for k, v in per_fn.items()}
        raw_scores = scores
        scores = normalised_scores(scores, self.score_moments, a.reward_norm)
        t2 = time.perf_counter()

        ids, am = comp.input_ids, comp.attention_mask
        mask = comp.completion_mask.float()
        N, C = ids.shape[0], mask.shape[1]
        old_logp, old_values, ref_logp, hidden = self.old_pass(ids, am, C)
        # value-only warm-up (OpenRLHF's freezing_actor_steps): the policy's log-probs are the old ones (ρ = 1, no
        # gradient) and the value head reads the trunk's hidden states without gradient, so neither the policy nor the
        # trunk it shares with the value head moves; only the head learns
        warmup = run.step < a.value_warmup_steps
        rewards, non_score = kl_shaped_rewards(old_logp, ref_logp, scores.to(run.device), mask, self.kl_coef)
        adv, returns = response_gae(rewards, old_values, mask, a.gamma, a.lam)
        if a.whiten_advantages:
            adv = masked_standardize(adv, mask, dim=None) * mask
        t3 = time.perf_counter()

        run.set_learning_rate()
        eps_high = a.epsilon_high if a.epsilon_high is not None else a.epsilon
        sums = dict.fromkeys(("policy", "value", "clipfrac", "value_clipfrac", "approxkl", "ratio", "entropy", "tokens"), 0.0)
        grad_norm, optimizer_steps = float("nan"), 0
        shuffle = torch.Generator().manual_seed(run.cfg.seed * 1_000_003 + run.step)  # a resumed run repeats it
        for epoch in range(a.ppo_epochs):
            for mb in torch.randperm(N, generator=shuffle).to(run.device).split(a.minibatch_size):
                run.opt.zero_grad(set_to_none=True)
                n_tokens = mask[mb].sum().clamp(min=1.0)
                for chunk in mb.split(a.micro_batch_size):
                    if warmup:
                        logp, values, entropy = old_logp[chunk], self.value_head(hidden[chunk]).squeeze(-1), None
                    else:
                        with run.autocast():
                            logp, values, entropy = token_logprobs_and_values(
                                run.model, self.value_head, ids[chunk], am[chunk], C, a.temperature, with_entropy=(epoch == 0))
                    loss, st = ppo_token_loss(
                        logp, old_logp[chunk], values.float(), old_values[chunk], returns[chunk], adv[chunk], mask[chunk],
                        eps_low=a.epsilon, eps_high=eps_high, value_clip=a.value_clip, vf_coef=a.vf_coef, n_tokens=n_tokens)
                    if not torch.isfinite(loss):
                        raise NonFiniteLoss(f"non-finite PPO loss at step {run.step + 1}")
                    loss.backward()
                    for k in ("policy", "value"):
                        sums[k] += st[k].item() / math.ceil(N / a.minibatch_size) / a.ppo_epochs
                    for k in ("clipfrac", "value_clipfrac", "approxkl", "ratio"):
                        sums[k] += st[k].item()
                    sums["tokens"] += mask[chunk].sum().item()
                    if entropy is not None:
                        sums["entropy"] += (entropy * mask[chunk]).sum().item()
                grad_norm = run.optimizer_step()
                optimizer_steps += 1
        t4 = time.perf_counter()

        kl_per_sequence = (kl_k1(old_logp, ref_logp) * mask).sum(1)
        kl_coef = self.kl_coef
        if a.adaptive_kl:
            self.kl_coef = adaptive_kl_coef(self.kl_coef, kl_per_sequence.mean().item(), a.kl_target, a.kl_horizon, N)
        tok = max(sums["tokens"], 1.0)
        n_tok = max(mask.sum().item(), 1.0)
        lengths = comp.lengths.float()
        non_score_per_sequence = non_score.sum(1).cpu()
        m = {
            "objective/scores": raw_scores.mean().item(),
            "objective/kl": kl_per_sequence.mean().item(),
            "objective/kl_coef": kl_coef,
            "objective/non_score_reward": non_score_per_sequence.mean().item(),
            "objective/rlhf_reward": (scores + non_score_per_sequence).mean().item(),
            **{f"rewards/{k}/mean": v.mean().item() for k, v in per_fn.items()},
            "loss/policy_avg": sums["policy"],
            "loss/value_avg": sums["value"],
            "policy/approxkl_avg": sums["approxkl"] / tok,
            "policy/clipfrac_avg": sums["clipfrac"] / tok,
            "policy/frozen": float(warmup),
            "val/clipfrac_avg": sums["value_clipfrac"] / tok,
            "val/ratio": sums["ratio"] / tok,
            "val/mean": ((old_values * mask).sum() / n_tok).item(),
            "returns/mean": ((returns * mask).sum() / n_tok).item(),
            "stats/grad_norm": grad_norm,
            "charts/learning_rate_value": run.opt.param_groups[-1]["lr"],
            "stats/optimizer_steps": optimizer_steps,
            "stats/completion_length/mean": lengths.mean().item(),
            "stats/completion_truncated": comp.truncated.float().mean().item(),
            "charts/learning_rate": run.opt.param_groups[0]["lr"],
            "perf/generation_s": t1 - t0,
            "perf/reward_s": t2 - t1,
            "perf/logprobs_s": t3 - t2,
            "perf/update_s": t4 - t3,
        }
        if not warmup:
            m["policy/entropy_avg"] = sums["entropy"] / n_tok
        if a.reward_norm != "none":
            m["objective/scores_normalised"] = scores.mean().item()
            m["objective/scores_running_mean"] = self.score_moments.mean
            m["objective/scores_running_std"] = self.score_moments.std
        run.last_samples = [{"prompt": examples[i].question, "completion": comp.texts[i], "score": round(raw_scores[i].item(), 3)}
                            for i in range(min(N, run.cfg.log_completions))]
        return m

