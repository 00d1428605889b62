"""What stabilises PPO, RLHF and KTO on 2-digit addition (docs/llm.md, "Stabilising PPO"): each switch against its
group's baseline, with seeds, through the comparison's stages (``scripts/llm_comparison.py``: preference pairs per
seed, a budget sized from a calibration run so that every variant takes at least ``--min-updates`` updates,
``ppo-bench-llm-eval``, means and 95% CIs over the seeds), read as "higher / lower than the baseline / within the
noise". The next sitting's commands and what they cost on the 2-core machine (2 runs at a time):

    python scripts/llm_stabilisers.py --group ppo --plan     ~6 min: calibrates and prints the budget and hours
    python scripts/llm_stabilisers.py --group ppo            ~2.5 h: 6 variants x 3 seeds  -> results/llm/stabilisers_ppo.*
    python scripts/llm_stabilisers.py --group rlhf           ~2.5 h: 4 variants x 3 seeds  -> results/llm/stabilisers_rlhf.*
    python scripts/llm_stabilisers.py --group kto            ~2 h:   4 variants x 3 seeds  -> results/llm/stabilisers_kto.*
    python scripts/llm_stabilisers.py --group ppo --model tiny --in-process --budget-min 0.05 --seeds 0 1   seconds

Killed, the same command continues where it stopped. A switch becomes a default (conf_llm/algo/*.yaml, the
experiments, the comparison's rows) only where its accuracy is higher than the baseline's beyond the noise.

The variants (each the baseline plus the overrides named):
  ppo   PPO with the verifier, the comparison's settings (8 prompts per rollout, 2 epochs, β = 0.05, lr 3e-5 constant):
        value-only warm-up (5 rollouts, the value head at lr 1e-4: OpenRLHF's freezing_actor_steps), running reward
        normalisation, the adaptive KL controller (Ziegler et al. 2019: target 3 nats, horizon 80 sequences so that
        K_β = 8/80 = 0.1 per rollout, the paper's), a smaller step (lr 1e-5), and all four together
  rlhf  RLHF (reward model on the seed's pairs, then PPO): the value head from the reward model's (InstructGPT),
        that with the warm-up, and every stabiliser together
  kto   KTO (Ethayarajh et al. 2024): λ_D = 1.33 (the top of eq. 8's [1, 4/3] for equal counts), β = 0.5, lr 1e-6
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ppo_bench.common.errors import OneLineArgumentParser, run_command
if __package__ in (None, ""):  # run as a file (python scripts/...): the repository root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.llm_comparison import (PPO_CHEAP, RM_OVERRIDES, Comparison, Method, against_start,  # noqa: E402
                                    common_arguments, comparison_from, parse, run)
from scripts.llm_intervals import difference, fmt_difference, fmt_interval, verdict  # noqa: E402

WARMUP = ("algo.value_warmup_steps=5", "algo.vf_lr=1e-4")
NORM = ("algo.reward_norm=running",)
ADAPTIVE = ("algo.adaptive_kl=true", "algo.kl_target=3.0", "algo.kl_horizon=80")
SMALL_STEP = ("algo.lr=1e-5",)
KTO = ("+experiment=kto_addition", "algo.batch_size=16")

GROUPS: dict[str, dict[str, Method]] = {
    "ppo": {
        "ppo": Method("PPO (baseline)", PPO_CHEAP),
        "ppo_warmup": Method("+ value warm-up", PPO_CHEAP + WARMUP),
        "ppo_reward_norm": Method("+ reward normalisation", PPO_CHEAP + NORM),
        "ppo_adaptive_kl": Method("+ adaptive KL", PPO_CHEAP + ADAPTIVE),
        "ppo_small_step": Method("+ smaller step", PPO_CHEAP + SMALL_STEP),
        "ppo_all": Method("+ all four", PPO_CHEAP + WARMUP + NORM + ADAPTIVE + SMALL_STEP),
    },
    "rlhf": {
        "rlhf": Method("RLHF (baseline)", PPO_CHEAP, pairs=True, reward_model=RM_OVERRIDES),
        "rlhf_value_init": Method("+ value head from the reward model", PPO_CHEAP + ("algo.value_init=reward_model",),
                                  pairs=True, reward_model=RM_OVERRIDES),
        "rlhf_value_init_warmup": Method("+ that and value warm-up", PPO_CHEAP + ("algo.value_init=reward_model",) + WARMUP,
                                         pairs=True, reward_model=RM_OVERRIDES),
        "rlhf_all": Method("+ every stabiliser", PPO_CHEAP + ("algo.value_init=reward_model",) + WARMUP + NORM + ADAPTIVE
                           + SMALL_STEP, pairs=True, reward_model=RM_OVERRIDES),
    },
    "kto": {
        "kto": Method("KTO (baseline: β 0.1, λ_D = λ_U = 1, lr 5e-6)", KTO, pairs=True),
        "kto_desirable": Method("λ_D = 1.33", KTO + ("algo.desirable_weight=1.33",), pairs=True),
        "kto_beta": Method("β = 0.5", KTO + ("algo.beta=0.5",), pairs=True),
        "kto_small_step": Method("lr 1e-6", KTO + ("algo.lr=1e-6",), pairs=True),
    },
}


def ablation_readings(c: Comparison, agg: dict[str, dict], reference: dict | None) -> str:
    """Each variant against the group's baseline (its first method): held-out accuracy and KL to the start, Welch's
    95% interval of the difference, and which switches the measurements support."""
    base_key = c.methods[0]
    base = agg[base_key]
    out = [s for s in [against_start(agg, reference)] if s]
    if not base["seeds"]:
        return "\n\n".join(out + [f"The baseline ({base['label']}) has no evaluated seed: nothing to compare against."]) + "\n"
    lines, better = [], []
    for key, a in agg.items():
        if key == base_key or not a["seeds"]:
            continue
        acc = difference(a["columns"]["accuracy"].values, base["columns"]["accuracy"].values)
        kl = difference(a["columns"]["kl"].values, base["columns"]["kl"].values)
        v = verdict(acc)
        word = {"higher": "higher than the baseline's", "lower": "lower than the baseline's",
                "within the noise": "within the noise of the baseline's", "unknown": "against the baseline's on one seed"}[v]
        lines.append(f"- **{a['label']}**: accuracy {fmt_interval(a['columns']['accuracy'])}, {word} "
                     f"({fmt_difference(acc)}); KL to the start {fmt_difference(kl, 2)} nats against the baseline's")
        if v == "higher":
            better.append(a["label"])
    out.append(f"**Each switch against the baseline** ({base['label']}: accuracy {fmt_interval(base['columns']['accuracy'])}, "
               "mean and 95% CI over the seeds; differences by Welch's interval):\n\n" + "\n".join(lines))
    out.append("**What the measurements support as a default:** "
               + (", ".join(better) + ": higher than the baseline beyond the noise." if better else
                  "no switch raised the accuracy beyond the noise; the defaults stay as they are."))
    return "\n\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = OneLineArgumentParser(prog="llm_stabilisers.py", description=__doc__.split("\n\n")[0],
                               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--group", choices=tuple(GROUPS), required=True, help="which ablation: ppo, rlhf or kto")
    ap.add_argument("--methods", nargs="+", default=None, metavar="M", help="a subset of the group's variants (its baseline first)")
    common_arguments(ap, [0, 1, 2], "wall-clock minutes per variant and seed (default: sized from a calibration run)")
    command = " ".join(["python scripts/llm_stabilisers.py", *argv])

    def body() -> int:
        pre, _ = ap.parse_known_args(argv)
        catalogue = GROUPS[pre.group]
        args, extra = parse(ap, argv if pre.methods is not None else [*argv, "--methods", *catalogue], catalogue)
        c = comparison_from(args, extra, catalogue, name=f"stabilisers_{args.group}", readings=ablation_readings,
                            title=f"Stabilising {args.group.upper()} on 2-digit addition: each switch against the baseline")
        return run(c, command, plan_only=args.plan)

    return run_command(body)  # an error a user caused: one line, exit code 2


if __name__ == "__main__":
    sys.exit(main())
