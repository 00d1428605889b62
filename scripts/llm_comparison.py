"""One comparison of the methods (docs/llm.md, "The comparison of the methods"): PPO with the verifier's reward, RLHF
(a reward model, then PPO with it), GRPO, DPO and four of its variants, and KTO, on one task and model with the same
wall-clock budget each, then evaluated alike (``ppo-bench-llm-eval``). A tool that exercises ppo-bench as a user does:

    python scripts/llm_comparison.py                           SmolLM2-135M-Instruct on 2-digit addition, 10 minutes per method
    python scripts/llm_comparison.py --budget-min 20 --jobs 1
    python scripts/llm_comparison.py --methods grpo dpo kto    a subset
    python scripts/llm_comparison.py --model tiny --budget-min 0.05 --in-process   seconds: the tiny model (tests)
    python scripts/llm_comparison.py --report-only             only rewrite the results from what is there

Stages, each resumable (a relaunch skips what is finished and continues an interrupted run from its checkpoint):
  pairs        the preference pairs of every preference method (the DPO family, KTO, RLHF's reward model), sampled
               once from the starting model as ``algo=dpo`` builds them (``pairs.jsonl``); the time this took is
               charged to each of those methods
  training     one run per method, two for RLHF (the reward model, then PPO scoring with it), each bounded by what is
               left of the budget: ``max_wall_s`` = budget − the time charged before the run (the pairs; RLHF's
               reward-model run, which gets ``--rm-share`` of the budget); ``setup_in_wall=true`` charges a run's
               own setup (its reference pass); the periodic held-out evaluations are not charged
               (``eval.in_wall=false``) and come every quarter of the budget (``eval.every_s``)
  evaluation   ``ppo-bench-llm-eval`` of each final policy against the starting model, every method's greedy answers
               also scored by RLHF's reward model; what depends on the reference alone is computed once
  report       ``comparison.md`` (a row per method, the command on top), ``comparison.json`` and ``comparison.png``
               (held-out accuracy against the wall-clock time charged, one line per method)
Each run and evaluation is a process of its own (``--jobs`` at a time), so that the peak memory of a method is its
own; ``--in-process`` runs everything in this process (then the peak is the whole process's). Hydra overrides for every
run may follow the options (e.g. device=cuda).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import gc
import io

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ppo_bench.common.atomic import atomic_write_bytes, atomic_write_text, read_json
from ppo_bench.common.errors import ConfigError, NonFiniteLoss, OneLineArgumentParser
from ppo_bench.common.machine import peak_rss_mb
from ppo_bench.common.paths import LLM_CONF_DIR
from ppo_bench.llm.evaluate_run import evaluate_run
from ppo_bench.llm.harness.config import register_configs, run_name
from ppo_bench.llm.harness.models import require
from ppo_bench.llm.harness.preferences import pairs_for_run, write_jsonl
from ppo_bench.llm.harness.registry import lm_algorithm
from ppo_bench.llm.harness.run import LMRun, load_run_parts
from ppo_bench.llm.launch import train_from_config, validate

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Method:
    label: str
    overrides: tuple[str, ...]  # Hydra overrides of its (last) run, before the comparison's own
    pairs: bool = False  # trains on the shared preference pairs (and is charged their build time)
    reward_model: tuple[str, ...] | None = None  # RLHF: the overrides of the reward-model run trained first


DPO_EXPERIMENT = "+experiment=dpo_addition"
METHODS: dict[str, Method] = {
    "ppo": Method("PPO (verifier)", ("+experiment=ppo_addition",)),
    "rlhf": Method("RLHF (reward model + PPO)", ("+experiment=ppo_addition",), pairs=True,
                   reward_model=("algo=reward_model", "model.freeze_embeddings=true", "algo.batch_size=16",
                                 "algo.micro_batch_size=8", "algo.lr=1e-5", "algo.eval_fraction=0.2")),
    "grpo": Method("GRPO", ("+experiment=grpo_addition",)),
    "dpo": Method("DPO (sigmoid)", (DPO_EXPERIMENT, "algo.loss=sigmoid"), pairs=True),
    "ipo": Method("IPO", (DPO_EXPERIMENT, "algo.loss=ipo"), pairs=True),
    "dpo_sft": Method("DPO + SFT", (DPO_EXPERIMENT, "algo.loss=dpo_sft"), pairs=True),
    "dpop": Method("DPO-P", (DPO_EXPERIMENT, "algo.loss=dpop"), pairs=True),
    "asymmetric": Method("asymmetric β⁺/β⁻", (DPO_EXPERIMENT, "algo.loss=asymmetric"), pairs=True),
    "kto": Method("KTO", ("+experiment=kto_addition",), pairs=True),
}

# --model tiny: the random tiny model and small batches, so that the whole comparison takes seconds
TINY = ("model=tiny", "task.n_eval=8", "eval.batch_size=8", "eval.max_new_tokens=8", "eval.periodic_n=4")
TINY_ALGO = {
    "grpo": ("algo.prompts_per_step=2", "algo.num_generations=2", "algo.max_completion_length=8", "algo.micro_batch_size=4"),
    "ppo": ("algo.prompts_per_step=4", "algo.minibatch_size=4", "algo.micro_batch_size=4", "algo.max_completion_length=8"),
    "dpo": ("algo.batch_size=4", "algo.micro_batch_size=4"),
    "kto": ("algo.batch_size=8", "algo.micro_batch_size=8"),
    "reward_model": ("algo.batch_size=4", "algo.micro_batch_size=4", "algo.eval_fraction=0.25"),
}


def algo_of(overrides) -> str:
    """The algorithm a method's overrides select (``algo=...`` or the experiment's)."""
    for o in overrides:
        if o.startswith("algo="):
            return o.split("=", 1)[1]
        if o.startswith("+experiment="):
            return o.split("=", 1)[1].split("_addition")[0]
    return "grpo"


# ---- running a stage ---------------------------------------------------------------------------------


class StageFailed(RuntimeError):
    pass


COMPOSE_LOCK = threading.Lock()  # Hydra's compose API keeps global state: one composition at a time


def compose_cfg(overrides: list[str]):
    """The resolved config of ``ppo-bench-llm <overrides>``; Hydra's and OmegaConf's complaints as one ConfigError line."""
    register_configs()
    try:
        with COMPOSE_LOCK, initialize_config_dir(str(LLM_CONF_DIR), version_base="1.3"):
            return compose("config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise ConfigError(f"{first} (overrides: {' '.join(overrides)})") from None


def train_stage(overrides: list[str], log: Path, in_process: bool, read_only: bool = False) -> dict:
    """One ``ppo-bench-llm`` run (trained, resumed or skipped when finished; only read with ``read_only``); its summary."""
    cfg = compose_cfg(overrides)  # a bad override fails here, in one line, before any process starts
    run_dir = Path(cfg.run_root) / run_name(cfg)
    if read_only:
        pass
    elif in_process:
        train_from_config(cfg)
    else:
        run_process([sys.executable, "-m", "ppo_bench.llm.cli", *overrides], log)
    summary = read_json(run_dir / "summary.json")
    if summary is None:
        raise StageFailed(f"{run_dir}: no summary.json" + (" (not trained yet)" if read_only else f" after training (see {log})"))
    return {**summary, "run_dir": str(run_dir)}


def run_process(argv: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(argv)}\n")
        f.flush()
        r = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if r.returncode != 0:
        lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
        raise StageFailed(f"exit code {r.returncode}: {lines[-1] if lines else ''} (log: {log})")


# ---- the stages --------------------------------------------------------------------------------------

PAIR_KEYS = ("num_prompts", "num_samples", "pairs_per_prompt", "temperature", "max_completion_length", "answer_template")


@dataclass
class Comparison:
    methods: list[str]
    budget_s: float
    rm_share: float
    model: str
    seed: int
    runs: Path  # run_root: the runs are <runs>/comparison/<method>/seed<k>
    out: Path
    jobs: int = 2
    in_process: bool = False
    read_only: bool = False  # --report-only: read the runs and evaluations, train and evaluate nothing
    pair_prompts: int = 128
    pair_samples: int = 4
    extra: list[str] = field(default_factory=list)  # Hydra overrides for every run
    pairs: dict | None = None  # pairs.json once built

    @property
    def work(self) -> Path:
        return self.runs / "comparison"

    @property
    def pairs_file(self) -> Path:
        return self.work / "pairs.jsonl"

    @property
    def stem(self) -> str:
        return "comparison" if self.model == "smollm2" else f"comparison_{self.model}"

    def run_overrides(self, key: str, algo: str, remaining_s: float) -> list[str]:
        """The comparison's overrides of one run: its folder, what is left of the budget, the evaluations, the model."""
        o = [f"run_root={self.runs}", f"run_name=comparison/{key}/seed{self.seed}", f"seed={self.seed}",
             f"max_wall_s={max(remaining_s, 1e-3):.3f}",  # a budget spent before the run starts leaves it no step
             "setup_in_wall=true", "eval.in_wall=false", "eval.before=false", "eval.every=0",
             f"eval.every_s={self.budget_s / 4:.3f}", "eval.periodic_n=50", "torch_threads=1", "checkpoint_every=5",
             "save_model=false", "progress=never", "algo.steps=100000", "algo.lr_schedule=constant"]
        if self.model == "tiny":
            o += [*TINY, *TINY_ALGO[algo]]
        return o + self.extra

    def pair_overrides(self) -> list[str]:
        o = [DPO_EXPERIMENT, f"seed={self.seed}", f"algo.num_prompts={self.pair_prompts}", f"algo.num_samples={self.pair_samples}",
             "torch_threads=1", "progress=never"]
        if self.model == "tiny":
            o += [*TINY, "algo.max_completion_length=8"]
        return o + self.extra


def build_pairs(c: Comparison) -> dict:
    """The shared preference pairs (``pairs.jsonl``) and the seconds their sampling took (``pairs.json``), as
    ``algo=dpo`` builds them from the task (``preferences.pairs_for_run``); reused when built under the same settings."""
    cfg = compose_cfg(c.pair_overrides())
    settings = json.loads(json.dumps({"model": OmegaConf.to_container(cfg.model, resolve=True),
                                      "task": OmegaConf.to_container(cfg.task, resolve=True), "seed": cfg.seed,
                                      **{k: cfg.algo[k] for k in PAIR_KEYS}}))
    meta = read_json(c.work / "pairs.json")
    if c.read_only and (meta is None or not c.pairs_file.is_file()):
        raise ConfigError(f"{c.pairs_file}: the preference pairs were not sampled yet (run without --report-only)")
    if meta is not None and c.pairs_file.is_file():
        if meta["settings"] != settings:
            differ = sorted(k for k in settings if settings[k] != meta["settings"].get(k))
            raise ConfigError(f"{c.pairs_file} was sampled with other settings ({', '.join(differ)}); "
                              "use another --run-root, or delete it to sample the pairs again")
        return meta
    _, dtype, task, tok, model = load_run_parts(cfg)
    run = LMRun(cfg, c.work / "pairs", model, tok, task, compute_dtype=dtype)
    t = time.perf_counter()
    pairs, stats = pairs_for_run(run)
    seconds = time.perf_counter() - t
    write_jsonl(c.pairs_file, pairs)
    meta = {"seconds": round(seconds, 1), "stats": stats, "settings": settings, "peak_rss_mb": peak_rss_mb()}
    atomic_write_text(c.work / "pairs.json", json.dumps(meta, indent=2) + "\n")
    del run, model
    gc.collect()
    return meta


def train_method(c: Comparison, key: str) -> dict:
    """Train, resume or skip one method's run(s); what the report reads of them."""
    m = METHODS[key]
    log = c.work / "logs" / f"{key}.log"
    charged = c.pairs["seconds"] if m.pairs else 0.0
    data = [f"algo.data_file={c.pairs_file}"] if m.pairs else []
    stages, extra, rm_run = [], [], None
    if m.reward_model is not None:
        rm_over = [*m.reward_model, *data, *c.run_overrides(f"{key}_reward_model", "reward_model", c.budget_s * c.rm_share - charged),
                   "save_model=true"]
        rm_run = train_stage(rm_over, log, c.in_process, c.read_only)
        charged += rm_run["wall_s"] + rm_run["eval_s"]
        stages.append(rm_run)
        extra = [f"algo.reward_model={Path(rm_run['run_dir']) / 'model'}"]
    algo = algo_of(m.overrides)
    own_data = [] if m.reward_model is not None else data  # RLHF's PPO reads no pairs: its reward model did
    run = train_stage([*m.overrides, *own_data, *extra, *c.run_overrides(key, algo, c.budget_s - charged)], log, c.in_process,
                      c.read_only)
    stages.append(run)
    n_models, held = lm_algorithm(run["config"]["algo"]["name"]).models_held(run["config"]["algo"])
    peaks = [s.get("peak_rss_mb") for s in stages]
    return {
        "method": key, "label": m.label, "run_dir": run["run_dir"], "steps": run["steps"], "updates": run.get("updates"),
        "stopped_by": run.get("stopped_by"), "charged_before_s": round(charged, 1), "run_wall_s": run["wall_s"],
        "wall_s": round(charged + run["wall_s"], 1), "peak_rss_mb": max((p for p in peaks if p is not None), default=None),
        "periodic_n": min(run["config"]["eval"]["periodic_n"] or run["n_eval"], run["n_eval"]),
        "models_held": n_models, "models": held + (" (the reward model trained first: 1 LM)" if rm_run else ""),
        "curve": [{"wall_s": round(charged + e["wall_s"], 1), "accuracy": e["accuracy"], "n": e["n"]}
                  for e in run["evals"] if e.get("wall_s") is not None and e.get("accuracy") is not None],
        "reward_model_run": None if rm_run is None else {"run_dir": rm_run["run_dir"], "steps": rm_run["steps"], "wall_s": rm_run["wall_s"],
                                                         "pair_accuracy": rm_run.get("acc_after"), "pairs": rm_run.get("pairs")},
        "pairs_s": c.pairs["seconds"] if m.pairs else None,
        "train_pairs_after": run.get("train_pairs_after") or run.get("train_examples_after"),
    }


def evaluate_method(c: Comparison, row: dict, reward_model: str | None) -> dict:
    """``ppo-bench-llm-eval`` of a method's final policy (skipped when its file matches the run and reward model)."""
    path = c.work / "evaluations" / f"{row['method']}.json"
    old = read_json(path)
    if old and old.get("steps") == row["steps"] and old.get("wall_s") == row["run_wall_s"] and \
            (old.get("reward_model") or {}).get("path") == reward_model:
        return old
    if c.read_only:
        raise StageFailed(f"{path}: no evaluation of the run as it stands (not evaluated yet)")
    args = {"reference_cache": c.work / "reference", "reward_model": reward_model, "threads": 1}
    if c.in_process:
        atomic_write_text(path, json.dumps(evaluate_run(row["run_dir"], **args), indent=2) + "\n")
    else:
        argv = [row["run_dir"], "--json", str(path), "--reference-cache", str(args["reference_cache"]), "--threads", "1"]
        argv += ["--reward-model", reward_model] if reward_model else []
        run_process([sys.executable, "-m", "ppo_bench.llm.evaluate_run", *argv], c.work / "logs" / f"{row['method']}.log")
    res = read_json(path)
    if res is None:
        raise StageFailed(f"{path} was not written")
    return res


def in_pool(c: Comparison, fn, items: list) -> list:
    """fn(item) for every item, ``c.jobs`` at a time; a failed stage, a config error or (in process) a non-finite loss
    becomes that item's error, and the others go on."""
    def guarded(item):
        try:
            return fn(item), None
        except (StageFailed, ConfigError, NonFiniteLoss) as e:
            return None, str(e)

    if c.in_process or c.jobs == 1:
        return [guarded(i) for i in items]
    with ThreadPoolExecutor(max_workers=c.jobs) as pool:
        return list(pool.map(guarded, items))


# ---- the report --------------------------------------------------------------------------------------


def fmt(x, digits: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def subset_accuracy(correct: list | None, n: int) -> float | None:
    return None if not correct else sum(v > 0 for v in correct[:n]) / min(n, len(correct))


def table(rows: list[dict], reference: dict | None) -> str:
    head = ("| method | held-out accuracy | win rate vs reference | preference accuracy | reward-model score | "
            "perplexity of the answers | KL to reference | completion length | steps | wall time (s) | peak RSS (MB) | LMs held |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
    lines = []
    if reference:
        lines.append(f"| starting model (the reference) | {fmt(reference['accuracy'])} | — | — | {fmt(reference['rm_score'], 2)} | "
                     f"{fmt(reference['perplexity'], 2)} | 0 | {fmt(reference['length'], 1)} | — | — | — | — |")
    for r in rows:
        e = r.get("evaluation")
        if r.get("error") or e is None:
            lines.append(f"| {r['label']} | failed: {r.get('error', 'no evaluation')} |" + " |" * 10)
            continue
        win, pref, kl, rm = e["win_rate"] or {}, e["preferences"] or {}, e["kl_to_reference"] or {}, e["reward_model"] or {}
        lines.append(f"| {r['label']} | {fmt(e['accuracy']['policy'])} | {fmt(win.get('win_rate'))} | {fmt(pref.get('accuracy'))} | "
                     f"{fmt(rm.get('policy_score'), 2)} | {fmt(e['perplexity']['policy'], 2)} | {fmt(kl.get('exact'), 2)} | "
                     f"{fmt(e['completion_length']['policy'], 1)} | {r['steps']} | {r['wall_s']:.0f} | {fmt(r['peak_rss_mb'], 0)} | "
                     f"{r['models_held']}: {r['models']} |")
    return head + "\n".join(lines) + "\n"


def pairs_table(rows: list[dict]) -> str:
    head = ("| method | Δ log π(y⁺) | Δ log π(y⁻) | margin (nats) | preference accuracy |\n"
            "|---|---:|---:|---:|---:|\n")
    lines = []
    for r in rows:
        pref = (r.get("evaluation") or {}).get("preferences") or {}
        if pref:
            lines.append(f"| {r['label']} | {fmt(pref.get('chosen_change'), 2)} | {fmt(pref.get('rejected_change'), 2)} | "
                         f"{fmt(pref.get('margin'), 2)} | {fmt(pref.get('accuracy'))} |")
    return head + "\n".join(lines) + "\n"


def pairs_intro(evaluated: list[dict]) -> str:
    pref = next((x["preferences"] for x in evaluated if x.get("preferences")), None)
    if pref is None:
        return "No held-out pairs: the starting model got every held-out problem right."
    rm = next((x["reward_model"] for x in evaluated if x.get("reward_model")), None)
    return (f"{pref['pairs']} pairs: {pref['source']}. Δ log π = log π − log π_ref summed over the response (nats), mean over "
            "the pairs; the margin is the mean of Δ log π(y⁺) − Δ log π(y⁻)."
            + (f" RLHF's reward model ranks y⁺ first on {fmt(rm.get('pair_accuracy'))} of them." if rm else ""))


def readings(rows: list[dict], reference: dict | None = None) -> str:
    """Sentences on the comparison's three questions (docs/llm.md: is GRPO cheaper than PPO, what DPO does to the
    chosen and rejected log-probs, how a preference-trained model scores), each figure read off the rows above."""
    by = {r["method"]: r for r in rows if r.get("evaluation")}
    out = []
    if "grpo" in by and ("ppo" in by or "rlhf" in by):
        parts = []
        for k in ("grpo", "ppo", "rlhf"):
            if k in by:
                r = by[k]
                parts.append(f"{r['label']} held {r['models_held']} LM(s) ({r['models']}), peaked at {fmt(r['peak_rss_mb'], 0)} MB, "
                             f"took {r['steps']} steps in {r['wall_s']:.0f} s and reached {fmt(r['evaluation']['accuracy']['policy'])}")
        text = "**Is GRPO cheaper than PPO?** " + "; ".join(parts) + "."
        if "ppo" in by:
            g, p = by["grpo"], by["ppo"]
            gs, ps = g["wall_s"] / max(g["steps"], 1), p["wall_s"] / max(p["steps"], 1)
            dm = (g["peak_rss_mb"] or 0) - (p["peak_rss_mb"] or 0)
            text += (f" Per step GRPO took {gs:.0f} s against PPO's {ps:.0f} s ({gs / ps:.2f}×) and held "
                     f"{p['models_held'] - g['models_held']} LM(s) fewer; its peak memory was {abs(dm):.0f} MB "
                     f"{'higher' if dm > 0 else 'lower'}: fewer models "
                     + ("and less memory" if dm <= 0 else "but not less memory (at this size the peak is set by the "
                        "activations and logits of a step, not by the models held)") + ".")
        out.append(text)
    moved, pushed_down = [], 0
    for r in by.values():
        pref = r["evaluation"].get("preferences") or {}
        c, j = pref.get("chosen_change"), pref.get("rejected_change")
        if c is None or r["method"] in ("ppo", "rlhf", "grpo"):
            continue
        how = ("both fell" if c < 0 and j < 0 else "y⁺ rose and y⁻ fell" if c >= 0 > j else "both rose" if c >= 0 and j >= 0 else "y⁺ fell and y⁻ rose")
        moved.append(f"{r['label']}: {how} (Δ log π(y⁺) {c:+.2f}, Δ log π(y⁻) {j:+.2f} nats)")
        pushed_down += j < 0 and -j > max(c, 0)  # y⁻ fell by more than y⁺ rose
    if moved:
        out.append("**What does preference training do to the chosen and rejected log-probabilities?** On the held-out pairs, "
                   + "; ".join(moved) + f". In {pushed_down} of {len(moved)} the rejected answer fell by more than the chosen "
                   "one rose: the margin grows mostly by pushing y⁻ down.")
    out.append("**How should a preference-trained model be evaluated?** " + evaluation_reading(by, reference))
    return "\n\n".join(out) + "\n"


def rank_correlation(x: list[float], y: list[float]) -> float | None:
    """Spearman's ρ: Pearson's correlation of the ranks (ties share their mean rank); None for fewer than 3 pairs or
    a constant side."""
    def ranks(v: list[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(v):
            j = i
            while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    if len(x) < 3:
        return None
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return None if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def evaluation_reading(by: dict[str, dict], reference: dict | None) -> str:
    """How far each held-out measure agrees with the task's accuracy across the methods (Spearman's ρ), and what the
    capability and distance columns add: the figures of the table, read off."""
    acc = {k: r["evaluation"]["accuracy"]["policy"] for k, r in by.items()}
    label = {k: r["label"] for k, r in by.items()}
    measures = {
        "preference accuracy on the held-out pairs": {k: (r["evaluation"].get("preferences") or {}).get("accuracy") for k, r in by.items()},
        "the reward model's score": {k: (r["evaluation"].get("reward_model") or {}).get("policy_score") for k, r in by.items()},
    }
    parts = []
    for name, vals in measures.items():
        keys = [k for k in by if vals[k] is not None and acc[k] is not None]
        rho = rank_correlation([vals[k] for k in keys], [acc[k] for k in keys])
        if rho is None:
            continue
        text = f"{name} orders the {len(keys)} methods as their held-out accuracy does with Spearman's ρ = {rho:+.2f}"
        top = max(keys, key=lambda k: vals[k])
        best = max(keys, key=lambda k: acc[k])
        if top != best:
            text += (f" (highest: {label[top]}, {fmt(vals[top])} with accuracy {fmt(acc[top])}; the most accurate, "
                     f"{label[best]} at {fmt(acc[best])}, has {fmt(vals[best])})")
        parts.append(text)
    sentences = ["Across the methods, " + "; ".join(parts) + "." if parts else
                 "Too few methods were evaluated to compare the measures."]
    ppl = {k: r["evaluation"]["perplexity"]["policy"] for k, r in by.items() if r["evaluation"]["perplexity"]["policy"] is not None}
    if reference and reference.get("perplexity") and ppl:
        ref = reference["perplexity"]
        hi, lo = max(ppl, key=ppl.get), min(ppl, key=ppl.get)
        template = next(iter(by.values()))["evaluation"]["perplexity"].get("answer_template")
        sentences.append(f"The perplexity of the held-out reference answers, {fmt(ref, 2)} for the starting model, went from "
                         f"{fmt(ppl[lo], 2)} ({label[lo]}) to {fmt(ppl[hi], 2)} ({label[hi]}): "
                         f"{sum(v > ref for v in ppl.values())} of {len(ppl)} methods made the correct answers less likely"
                         + (f" as written ('{template}'; a method that changed how it writes an answer makes them less likely without "
                            "losing the skill)" if template else "") + ".")
    kl = {k: (r["evaluation"].get("kl_to_reference") or {}).get("exact") for k, r in by.items()}
    kl = {k: v for k, v in kl.items() if v is not None}
    if kl:
        hi, lo = max(kl, key=kl.get), min(kl, key=kl.get)
        sentences.append(f"The KL to the starting model ranged from {fmt(kl[lo], 2)} ({label[lo]}) to {fmt(kl[hi], 2)} nats "
                         f"per completion ({label[hi]}).")
    sentences.append("So the task's own held-out accuracy (and the win rate, which follows from the same per-problem "
                     "correctness) is the measure; a "
                     "preference or reward-model score stands in for it only as far as its ρ above, and perplexity and KL "
                     "say what the accuracy cost.")
    return " ".join(sentences)


def plot(rows: list[dict], reference_correct: list | None, budget_s: float, png: Path) -> None:
    """Held-out accuracy (the first ``eval.periodic_n`` problems) against the wall-clock time charged, one line per
    method; a cross at the end marks the accuracy on all held-out problems."""
    require("matplotlib", hint="pip install -e '.[analysis]'", what="plotting")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, r in enumerate(rows):
        e = r.get("evaluation")
        if not e or not r.get("curve"):
            continue
        n_sub = r["periodic_n"]
        colour = plt.cm.tab10(i % 10)
        points = [(0.0, subset_accuracy(reference_correct, n_sub))] if reference_correct else []
        points += [(p["wall_s"] / 60, p["accuracy"]) for p in r["curve"] if p["n"] == n_sub]
        points.append((r["wall_s"] / 60, subset_accuracy(e["correct"]["policy"], n_sub)))
        ax.plot(*zip(*points), marker="o", ms=3.5, lw=1.6, color=colour, label=r["label"])
        ax.scatter([r["wall_s"] / 60], [e["accuracy"]["policy"]], marker="x", s=60, color=colour, zorder=3)
    ax.axvline(budget_s / 60, color="grey", ls="--", lw=1)
    ax.annotate("budget", (budget_s / 60, 0.97), textcoords="offset points", xytext=(4, 0), fontsize=8, color="grey")
    ax.set(xlabel="wall-clock time charged to the method (minutes)", ylabel="greedy exact-match accuracy, held out",
           ylim=(0, 1), title="Held-out accuracy against time (lines: the periodic subset; ×: all held-out problems at the end)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(png, buf.getvalue())


def write_report(c: Comparison, rows: list[dict], command: str) -> None:
    evaluated = [r["evaluation"] for r in rows if r.get("evaluation")]
    reference = None
    if evaluated:
        e = evaluated[0]
        rm_ref = next((x["reward_model"]["reference_score"] for x in evaluated if x.get("reward_model")), None)
        reference = {"accuracy": e["accuracy"]["reference"], "perplexity": e["perplexity"]["reference"], "rm_score": rm_ref,
                     "length": e["completion_length"]["reference"], "correct": e["correct"]["reference"], "n_eval": e["n_eval"]}
    model = "SmolLM2-135M-Instruct" if c.model == "smollm2" else f"the {c.model} model"
    pairs = (c.pairs or {}).get("stats", {})
    rm = next((r["reward_model_run"] for r in rows if r.get("reward_model_run")), None)
    md = [f"# PPO, RLHF, GRPO, DPO's variants and KTO on 2-digit addition ({model}), {c.budget_s / 60:g} minutes each", "",
          f"Command: `{command}`", "",
          f"Every method trained with the same wall-clock budget of {c.budget_s:.0f} s, one torch thread, the reference experiments' "
          "settings (conf_llm/experiment/*_addition.yaml) with a constant learning rate, and was then evaluated by `ppo-bench-llm-eval` "
          f"on {reference['n_eval'] if reference else '—'} held-out problems against the starting model. Wall time is what the method "
          "was charged: its training loop and setup, plus"
          + (f" the preference pairs for the methods that train on them ({fmt(c.pairs['seconds'], 0)} s to sample "
             f"{pairs.get('pairs')} pairs: {pairs.get('on_policy')} on-policy, {pairs.get('fallback')} with the reference answer as y⁺)"
             if c.pairs else "") + (f" and, for RLHF, its reward model ({rm['steps']} steps, held-out pair accuracy "
                                    f"{fmt(rm['pair_accuracy'])})" if rm else "") + "; periodic evaluations are not charged.", "",
          table(rows, reference), "",
          "Columns: held-out accuracy is greedy exact match; the win rate counts a problem won when only the method is right, "
          "lost when only the starting model is, half otherwise; preference accuracy is the share of held-out pairs (the reference "
          "answer against the starting model's wrong greedy answer) whose implied reward log π − log π_ref ranks y⁺ first; the "
          "reward-model score is RLHF's reward model on the method's greedy answers; perplexity is of the held-out reference "
          "answers; KL is Σ_t KL(π‖π_ref) over completions sampled at temperature 1 (nats per sequence); completion length in "
          "tokens; peak RSS is the training process's (the largest of a method's processes)"
          + (" — here all in one process (--in-process), so it is not per method" if c.in_process else "") + ".", "",
          "## Held-out pairs: what each method did to log π(y⁺) and log π(y⁻)", "", pairs_intro(evaluated), "", pairs_table(rows), "",
          "## Readings", "", readings(rows, reference), "", f"Figure: {c.stem}.png (held-out accuracy against the wall-clock time charged).", ""]
    c.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(c.out / f"{c.stem}.md", "\n".join(md))
    keep = [{k: v for k, v in r.items() if k != "evaluation"} | {"evaluation": {k: v for k, v in (r.get("evaluation") or {}).items() if k != "correct"}}
            for r in rows]
    atomic_write_text(c.out / f"{c.stem}.json", json.dumps({"command": command, "budget_s": c.budget_s, "model": c.model,
                                                             "pairs": c.pairs, "reference": reference, "rows": keep}, indent=2) + "\n")
    plot(rows, reference["correct"] if reference else None, c.budget_s, c.out / f"{c.stem}.png")


# ---- the command -------------------------------------------------------------------------------------


def check_configs(c: Comparison) -> None:
    """Every run's config composed and validated before anything starts: a bad override fails in one line at once."""
    data = [f"algo.data_file={c.pairs_file}"]
    for key in c.methods:
        m = METHODS[key]
        if m.reward_model is not None:
            validate(compose_cfg([*m.reward_model, *data, *c.run_overrides(f"{key}_reward_model", "reward_model", c.budget_s)]))
        own = data if m.pairs and m.reward_model is None else []
        validate(compose_cfg([*m.overrides, *own, *c.run_overrides(key, algo_of(m.overrides), c.budget_s)]))


def run(c: Comparison, command: str) -> int:
    """Pairs, training, evaluation, report; a method that fails is reported in its row and in one line on stderr."""
    check_configs(c)
    if any(METHODS[k].pairs for k in c.methods):
        c.pairs = build_pairs(c)
    trained = dict(zip(c.methods, in_pool(c, lambda k: train_method(c, k), c.methods)))
    rows = []
    for key in c.methods:
        row, error = trained[key]
        rows.append(row if row is not None else {"method": key, "label": METHODS[key].label, "error": error})
    rm_row = next((r for r in rows if r.get("reward_model_run")), None)
    reward_model = str(Path(rm_row["reward_model_run"]["run_dir"]) / "model") if rm_row else None
    todo = [r for r in rows if not r.get("error")]
    # the first evaluation alone: it computes what depends on the reference, which the others then read
    done = in_pool(c, lambda r: evaluate_method(c, r, reward_model), todo[:1]) + \
        in_pool(c, lambda r: evaluate_method(c, r, reward_model), todo[1:])
    for r, (res, error) in zip(todo, done):
        r["evaluation"], r["error"] = res, error
    write_report(c, rows, command)
    failed = [r for r in rows if r.get("error")]
    for r in failed:
        print(f"error: {r['label']}: {r['error']}", file=sys.stderr, flush=True)
    print(f"wrote {c.out / (c.stem + '.md')}, {c.stem}.json and {c.stem}.png")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = OneLineArgumentParser(prog="llm_comparison.py", description=__doc__.split("\n\n")[0],
                               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), metavar="M", help=f"a subset of: {', '.join(METHODS)}")
    ap.add_argument("--budget-min", type=float, default=10.0, help="wall-clock minutes per method (default 10)")
    ap.add_argument("--rm-share", type=float, default=0.5, help="RLHF: share of its budget for the pairs and the reward model (default 0.5)")
    ap.add_argument("--jobs", type=int, default=2, help="runs and evaluations at a time, one process and one thread each (default 2)")
    ap.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2", help="tiny: the random test model, a check in seconds")
    ap.add_argument("--pair-prompts", type=int, default=128, help="training prompts the preference pairs are sampled on (default 128)")
    ap.add_argument("--pair-samples", type=int, default=4, help="completions sampled per prompt for the pairs (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-root", default="runs/llm", help="runs go to RUN_ROOT/comparison/<method>/seed<k> (default runs/llm)")
    ap.add_argument("--out", default=str(ROOT / "results" / "llm"), help="where comparison.md, .json and .png go (default results/llm)")
    ap.add_argument("--in-process", action="store_true", help="run and evaluate in this process, one at a time (peak memory then not per method)")
    ap.add_argument("--report-only", action="store_true", help="only rewrite the results from the finished runs and evaluations")
    try:
        args, extra = ap.parse_known_args(argv)
        # nargs="+" also swallows Hydra overrides written after --methods (`--methods grpo algo.lr=1e-5`)
        extra += [x for x in args.methods if "=" in x]
        args.methods = [x for x in args.methods if "=" not in x]
        unknown = [m for m in args.methods if m not in METHODS]
        bad_extra = [x for x in extra if "=" not in x or x.startswith("-")]
        if unknown or not args.methods:
            ap.error(f"--methods: unknown {', '.join(unknown) or '(none given)'} (allowed: {', '.join(METHODS)})")
        if bad_extra:
            ap.error(f"unrecognised arguments: {' '.join(bad_extra)} (Hydra overrides for every run look like key=value)")
        if not (math.isfinite(args.budget_min) and args.budget_min > 0):
            ap.error(f"--budget-min={args.budget_min} must be > 0")
        if not 0 < args.rm_share < 1:
            ap.error(f"--rm-share={args.rm_share} must lie in (0, 1)")
        for name, low in (("jobs", 1), ("pair_prompts", 1), ("pair_samples", 2)):
            if getattr(args, name) < low:
                ap.error(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= {low}")
        c = Comparison(methods=list(dict.fromkeys(args.methods)), budget_s=args.budget_min * 60, rm_share=args.rm_share,
                       model=args.model, seed=args.seed, runs=Path(args.run_root).resolve(), out=Path(args.out), jobs=args.jobs,
                       in_process=args.in_process, pair_prompts=args.pair_prompts, pair_samples=args.pair_samples, extra=extra,
                       read_only=args.report_only)
        return run(c, " ".join(["python scripts/llm_comparison.py", *argv]))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
