"""One comparison of the methods (docs/llm.md, "The comparison of the methods"): PPO with the verifier's reward, RLHF
(a reward model, then PPO with it), GRPO, DPO and four of its variants, and KTO, on one task and model with the same
wall-clock budget each, over several seeds, then evaluated alike (``ppo-bench-llm-eval``) and reported as means with
95% confidence intervals (Student's t over the seeds, ``scripts/llm_intervals.py``). A tool that exercises ppo-bench
as a user does. The next sitting's command and what it costs on the 2-core machine:

    python scripts/llm_comparison.py --plan        ~10 min: calibrates (3 steps of every method), prints the budget and hours
    python scripts/llm_comparison.py               ~4 h: 9 methods x 3 seeds, budget sized for >= 20 updates each, 2 at a time
    python scripts/llm_comparison.py --methods grpo ppo rlhf --seeds 0 1 2 3 4    a subset, five seeds
    python scripts/llm_comparison.py --budget-min 15                       a fixed budget instead of the sized one
    python scripts/llm_comparison.py --report-only                         only rewrite the results from what is there
    python scripts/llm_comparison.py --model tiny --in-process --budget-min 0.05 --seeds 0 1   seconds: the tiny model (tests)

Killed, it is relaunched with the same command and continues: the pairs, the calibration, finished runs and evaluations
are kept, an interrupted run resumes from its last checkpoint.

Stages, each resumable:
  pairs        per seed, the preference pairs of every preference method (the DPO family, KTO, RLHF's reward model),
               sampled from the starting model as ``algo=dpo`` builds them (``pairs_seed<k>.jsonl``); the time this took
               is charged to each of those methods
  sizing       without ``--budget-min``: a calibration run of every method (``scripts/llm_sizing.py``) measures its step
               time, and the budget is the time the slowest needs for ``--min-updates`` updates, times ``--margin``;
               the plan (``sizing.json``) is kept, and a comparison longer than ``--max-hours`` is refused in one line
  training     one run per method and seed, two for RLHF (the reward model, then PPO scoring with it), each bounded by what
               is left of the budget: ``max_wall_s`` = budget − the time charged before the run (the pairs; RLHF's
               reward-model run, which gets ``--rm-share`` of the budget, by default its measured share of RLHF's need);
               ``setup_in_wall=true`` charges a run's own setup (its reference pass); the periodic held-out evaluations
               are not charged (``eval.in_wall=false``) and come every quarter of the budget
  evaluation   ``ppo-bench-llm-eval`` of each final policy against the starting model, every method's greedy answers
               also scored by the same seed's RLHF reward model; what depends on the reference alone is computed once
  report       ``comparison.md`` (mean and 95% CI of every column over the seeds, the command on top, readings worked
               out from the intervals: a difference whose interval holds 0 is said to be within the noise),
               ``comparison.json`` (the same, and every seed's row) and ``comparison.png``
Each run and evaluation is a process of its own (``--jobs`` at a time), so that the peak memory of a method is its
own; ``--in-process`` runs everything in this process. Hydra overrides for every run may follow the options (e.g.
device=cuda). ``scripts/llm_stabilisers.py`` and ``scripts/llm_grpo_fast.py`` run other sets of methods through the
same stages.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import math
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ppo_bench.common.atomic import atomic_write_bytes, atomic_write_text, read_json
from ppo_bench.common.errors import ConfigError, NonFiniteLoss, OneLineArgumentParser, run_command
from ppo_bench.common.machine import peak_rss_mb
from ppo_bench.common.paths import LLM_CONF_DIR
from ppo_bench.llm.evaluate_run import evaluate_run
from ppo_bench.llm.harness.config import register_configs, run_name
from ppo_bench.llm.harness.models import require
from ppo_bench.llm.harness.preferences import pairs_for_run, write_jsonl
from ppo_bench.llm.harness.registry import lm_algorithm
from ppo_bench.llm.harness.run import LMRun, load_run_parts
from ppo_bench.llm.launch import train_from_config, validate

if __package__ in (None, ""):  # run as a file (python scripts/...): the repository root makes `scripts` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.llm_intervals import difference, fmt_difference, fmt_interval, interval, verdict  # noqa: E402
from scripts.llm_sizing import plan_line, size_budget  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Method:
    label: str
    overrides: tuple[str, ...]  # Hydra overrides of its (last) run, before the comparison's own
    pairs: bool = False  # trains on the shared preference pairs (and is charged their build time)
    reward_model: tuple[str, ...] | None = None  # RLHF: the overrides of the reward-model run trained first


DPO_EXPERIMENT = "+experiment=dpo_addition"
RM_OVERRIDES = ("algo=reward_model", "model.freeze_embeddings=true", "algo.batch_size=16", "algo.micro_batch_size=8",
                "algo.lr=1e-5", "algo.eval_fraction=0.2")
# the reference experiments' settings, with cheaper steps where the settings allow (issue 33: every method >= 20
# updates in a budget that keeps 9 methods x 3 seeds near 4 hours): PPO 8 prompts per rollout (16 in its reference run),
# GRPO 8 completions per prompt (12), KTO 16 examples per step (32: DPO's 16 pairs are 32 sequences too)
PPO_CHEAP = ("+experiment=ppo_addition", "algo.prompts_per_step=8")
METHODS: dict[str, Method] = {
    "ppo": Method("PPO (verifier)", PPO_CHEAP),
    "rlhf": Method("RLHF (reward model + PPO)", PPO_CHEAP, pairs=True, reward_model=RM_OVERRIDES),
    "grpo": Method("GRPO", ("+experiment=grpo_addition", "algo.num_generations=8")),
    "dpo": Method("DPO (sigmoid)", (DPO_EXPERIMENT, "algo.loss=sigmoid"), pairs=True),
    "ipo": Method("IPO", (DPO_EXPERIMENT, "algo.loss=ipo"), pairs=True),
    "dpo_sft": Method("DPO + SFT", (DPO_EXPERIMENT, "algo.loss=dpo_sft"), pairs=True),
    "dpop": Method("DPO-P", (DPO_EXPERIMENT, "algo.loss=dpop"), pairs=True),
    "asymmetric": Method("asymmetric β⁺/β⁻", (DPO_EXPERIMENT, "algo.loss=asymmetric"), pairs=True),
    "kto": Method("KTO", ("+experiment=kto_addition", "algo.batch_size=16"), pairs=True),
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
CALIBRATION_N_EVAL = 16  # held-out problems of a calibration run (its final evaluation measures the greedy cost)


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
    budget_s: float | None  # None: sized from a calibration run (sizing.json)
    rm_share: float | None  # None: RLHF's measured share (or 1/2 with a fixed budget)
    model: str
    seeds: list[int]
    runs: Path  # run_root: the runs are <runs>/<name>/<method>/seed<k>
    out: Path
    jobs: int = 2
    in_process: bool = False
    read_only: bool = False  # --report-only: read the runs and evaluations, train and evaluate nothing
    pair_prompts: int = 128
    pair_samples: int = 4
    extra: list[str] = field(default_factory=list)  # Hydra overrides for every run
    pairs: dict = field(default_factory=dict)  # seed -> pairs_seed<k>.json once built
    catalogue: dict[str, Method] = field(default_factory=lambda: METHODS)
    name: str = "comparison"  # the folder under run_root, and the results' file stem
    title: str = "PPO, RLHF, GRPO, DPO's variants and KTO on 2-digit addition"
    readings: Callable | None = None  # (comparison, aggregated methods, reference) -> markdown; None: the comparison's
    min_updates: int = 20
    margin: float = 1.15
    max_hours: float = 4.0
    rm_min_steps: int = 5
    calibration_steps: int = 3
    periodic_evals: int = 3
    sizing: dict | None = None
    own_schedule: bool = False  # the methods keep their algo.steps and learning-rate schedule (else: constant, bounded by the budget)

    @property
    def work(self) -> Path:
        return self.runs / self.name

    def pairs_file(self, seed: int) -> Path:
        return self.work / f"pairs_seed{seed}.jsonl"

    @property
    def stem(self) -> str:
        return self.name if self.model == "smollm2" else f"{self.name}_{self.model}"

    @property
    def uses_pairs(self) -> bool:
        return any(self.catalogue[k].pairs for k in self.methods)

    def run_overrides(self, key: str, algo: str, remaining_s: float | None, seed: int, calibration: bool = False) -> list[str]:
        """The comparison's overrides of one run: its folder, what is left of the budget, the evaluations, the model.
        A calibration run (``calibration``) has a step count instead of a budget and evaluates only at its end."""
        o = [f"run_root={self.runs}", f"seed={seed}", "setup_in_wall=true", "eval.in_wall=false", "eval.before=false",
             "eval.every=0", "eval.periodic_n=50", "torch_threads=1", "checkpoint_every=5", "save_model=false",
             "progress=never"] + ([] if self.own_schedule else ["algo.lr_schedule=constant"])
        if calibration:
            o += [f"run_name={self.name}/calibration/{key}", f"algo.steps={self.calibration_steps}", "resume=false",
                  f"task.n_eval={CALIBRATION_N_EVAL}"]
        else:
            every = (self.budget_s or 60.0) / (self.periodic_evals + 1)
            # no final evaluation by the harness but where it is the figure read (a reward model's pair accuracy):
            # ppo-bench-llm-eval scores the same greedy answers on the same problems, and more
            o += [*([] if algo == "reward_model" else ["eval.after=false"]),
                  f"run_name={self.name}/{key}/seed{seed}", *([] if self.own_schedule else ["algo.steps=100000"]),
                  f"max_wall_s={max(remaining_s or 0.0, 1e-3):.3f}",  # a budget spent before the run starts leaves it no step
                  f"eval.every_s={every:.3f}"]
        if self.model == "tiny":
            o += [*TINY, *TINY_ALGO[algo]]
            if calibration:
                o += [f"task.n_eval={CALIBRATION_N_EVAL}"]
        return o + self.extra

    def pair_overrides(self, seed: int) -> list[str]:
        o = [DPO_EXPERIMENT, f"seed={seed}", f"algo.num_prompts={self.pair_prompts}", f"algo.num_samples={self.pair_samples}",
             "torch_threads=1", "progress=never"]
        if self.model == "tiny":
            o += [*TINY, "algo.max_completion_length=8"]
        return o + self.extra


def build_pairs(c: Comparison, seed: int) -> dict:
    """One seed's preference pairs (``pairs_seed<k>.jsonl``) and the seconds their sampling took (``pairs_seed<k>.json``),
    as ``algo=dpo`` builds them from the task (``preferences.pairs_for_run``); reused when built under the same settings."""
    cfg = compose_cfg(c.pair_overrides(seed))
    settings = json.loads(json.dumps({"model": OmegaConf.to_container(cfg.model, resolve=True),
                                      "task": OmegaConf.to_container(cfg.task, resolve=True), "seed": cfg.seed,
                                      **{k: cfg.algo[k] for k in PAIR_KEYS}}))
    meta_file, pairs_file = c.work / f"pairs_seed{seed}.json", c.pairs_file(seed)
    meta = read_json(meta_file)
    if c.read_only and (meta is None or not pairs_file.is_file()):
        raise ConfigError(f"{pairs_file}: the preference pairs were not sampled yet (run without --report-only)")
    if meta is not None and pairs_file.is_file():
        if meta["settings"] != settings:
            differ = sorted(k for k in settings if settings[k] != meta["settings"].get(k))
            raise ConfigError(f"{pairs_file} was sampled with other settings ({', '.join(differ)}); "
                              "use another --run-root, or delete it to sample the pairs again")
        return meta
    _, dtype, task, tok, model = load_run_parts(cfg)
    run = LMRun(cfg, c.work / "pairs" / f"seed{seed}", model, tok, task, compute_dtype=dtype)
    t = time.perf_counter()
    pairs, stats = pairs_for_run(run)
    seconds = time.perf_counter() - t
    write_jsonl(pairs_file, pairs)
    meta = {"seconds": round(seconds, 1), "stats": stats, "settings": settings, "peak_rss_mb": peak_rss_mb()}
    atomic_write_text(meta_file, json.dumps(meta, indent=2) + "\n")
    del run, model
    gc.collect()
    return meta


def method_stages(c: Comparison, key: str, seed: int, budget_s: float | None, calibration: bool = False) -> dict:
    """Train, resume or skip one method's run(s) for one seed (a calibration run with ``calibration``); what the
    report reads of them."""
    m = c.catalogue[key]
    tag = f"calibration_{key}" if calibration else f"{key}_seed{seed}"
    log = c.work / "logs" / f"{tag}.log"
    pairs_meta = c.pairs.get(seed if not calibration else c.seeds[0])
    charged = pairs_meta["seconds"] if m.pairs else 0.0
    data = [f"algo.data_file={c.pairs_file(seed if not calibration else c.seeds[0])}"] if m.pairs else []
    stages, extra, rm_run = [], [], None
    if m.reward_model is not None:
        share = c.rm_share if c.rm_share is not None else 0.5
        rm_budget = None if calibration else (budget_s or 0.0) * share - charged
        rm_over = [*m.reward_model, *data, *c.run_overrides(f"{key}_reward_model", "reward_model", rm_budget, seed, calibration),
                   "save_model=true"]
        rm_run = train_stage(rm_over, log, c.in_process, c.read_only and not calibration)
        charged += rm_run["wall_s"] + rm_run["eval_s"]
        stages.append(rm_run)
        extra = [f"algo.reward_model={Path(rm_run['run_dir']) / 'model'}"]
    algo = algo_of(m.overrides)
    own_data = [] if m.reward_model is not None else data  # RLHF's PPO reads no pairs: its reward model did
    remaining = None if calibration else (budget_s or 0.0) - charged
    run = train_stage([*m.overrides, *own_data, *extra, *c.run_overrides(key, algo, remaining, seed, calibration)], log,
                      c.in_process, c.read_only and not calibration)
    stages.append(run)
    n_models, held = lm_algorithm(run["config"]["algo"]["name"]).models_held(run["config"]["algo"])
    peaks = [s.get("peak_rss_mb") for s in stages]
    setup = run.get("setup_s")
    return {
        "method": key, "seed": seed, "label": m.label, "run_dir": run["run_dir"], "steps": run["steps"],
        "updates": run.get("updates"), "stopped_by": run.get("stopped_by"), "charged_before_s": round(charged, 1),
        "run_wall_s": run["wall_s"], "wall_s": round(charged + run["wall_s"], 1), "eval_s": run.get("eval_s"),
        "setup_s": round(sum(setup.values()), 1) if isinstance(setup, dict) else 0.0,
        "warmup_steps": run.get("value_warmup_steps", 0) or 0,
        "peak_rss_mb": max((p for p in peaks if p is not None), default=None),
        "periodic_n": min(run["config"]["eval"]["periodic_n"] or run["n_eval"], run["n_eval"]),
        "models_held": n_models, "models": held + (" (the reward model trained first: 1 LM)" if rm_run else ""),
        "curve": [{"wall_s": round(charged + e["wall_s"], 1), "accuracy": e["accuracy"], "n": e["n"]}
                  for e in run["evals"] if e.get("wall_s") is not None and e.get("accuracy") is not None],
        "reward_model_run": None if rm_run is None else {"run_dir": rm_run["run_dir"], "steps": rm_run["steps"], "wall_s": rm_run["wall_s"],
                                                         "pair_accuracy": rm_run.get("acc_after"), "pairs": rm_run.get("pairs")},
        "pairs_s": pairs_meta["seconds"] if m.pairs and pairs_meta else None,
        "train_pairs_after": run.get("train_pairs_after") or run.get("train_examples_after"),
    }


def evaluate_method(c: Comparison, row: dict, reward_model: str | None, n: int | None = None, tag: str | None = None) -> dict:
    """``ppo-bench-llm-eval`` of a method's final policy (skipped when its file matches the run and reward model)."""
    tag = tag or f"{row['method']}_seed{row['seed']}"
    path = c.work / "evaluations" / f"{tag}.json"
    old = read_json(path)
    if old and old.get("steps") == row["steps"] and old.get("wall_s") == row["run_wall_s"] and \
            (old.get("reward_model") or {}).get("path") == reward_model:
        return old
    if c.read_only:
        raise StageFailed(f"{path}: no evaluation of the run as it stands (not evaluated yet)")
    cache = c.work / ("reference" if n is None else "calibration/reference")
    args = {"reference_cache": cache, "reward_model": reward_model, "threads": 1, "n": n}
    if c.in_process:
        atomic_write_text(path, json.dumps(evaluate_run(row["run_dir"], **args), indent=2) + "\n")
    else:
        argv = [row["run_dir"], "--json", str(path), "--reference-cache", str(cache), "--threads", "1"]
        argv += ["--reward-model", reward_model] if reward_model else []
        argv += ["--n", str(n)] if n else []
        run_process([sys.executable, "-m", "ppo_bench.llm.evaluate_run", *argv], c.work / "logs" / f"{tag}.log")
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


# ---- sizing the budget from a calibration run ------------------------------------------------------------------


def sizing_settings(c: Comparison) -> dict:
    """What a calibration measured under: the methods' settings, the machine's share per run, the sizing's knobs."""
    return {"methods": {k: list(c.catalogue[k].overrides) + list(c.catalogue[k].reward_model or ()) for k in c.methods},
            "model": c.model, "extra": c.extra, "jobs": c.jobs, "min_updates": c.min_updates, "margin": c.margin,
            "rm_min_steps": c.rm_min_steps, "calibration_steps": c.calibration_steps, "seeds": len(c.seeds),
            "pair_prompts": c.pair_prompts, "pair_samples": c.pair_samples}


def calibrate_and_size(c: Comparison) -> dict:
    """The plan (``sizing.json``, reused while its settings hold): every method's calibration run, ``c.jobs`` at a time,
    one evaluation of a calibration run, then ``llm_sizing.size_budget``."""
    settings = json.loads(json.dumps(sizing_settings(c)))
    stored = read_json(c.work / "sizing.json")
    if stored is not None and stored.get("settings") == settings:
        return stored
    if c.read_only:
        raise ConfigError(f"{c.work / 'sizing.json'}: no budget sized yet (run without --report-only, or give --budget-min)")
    t = time.perf_counter()
    done = in_pool(c, lambda k: method_stages(c, k, c.seeds[0], None, calibration=True), c.methods)
    failed = [f"{k}: {e}" for k, (_, e) in zip(c.methods, done) if e]
    if failed:
        raise ConfigError(f"the calibration run failed: {failed[0]}")
    rows = {k: r for k, (r, _) in zip(c.methods, done)}
    first = next(k for k in c.methods if c.catalogue[k].reward_model is None) if any(
        c.catalogue[k].reward_model is None for k in c.methods) else c.methods[0]
    res = evaluate_method(c, rows[first], None, n=CALIBRATION_N_EVAL, tag=f"calibration_{first}")
    # (an evaluation written before its parts were recorded: all of it counted per problem, an overestimate)
    parts = res.get("seconds_by_part") or {"loading": 0.0, "reference": 0.0, "policy": res["seconds"]}
    eval_pp, reference_pp = parts["policy"] / CALIBRATION_N_EVAL, parts["reference"] / CALIBRATION_N_EVAL
    calibration = {}
    for k, r in rows.items():
        own = r["run_wall_s"] - r["setup_s"]
        cal = {"step_s": own / max(r["steps"], 1), "update_rate": max(r["updates"] or 0, 1) / max(r["steps"], 1),
               "setup_s": r["setup_s"], "warmup_steps": r["warmup_steps"], "pairs_s": r["pairs_s"] or 0.0}
        if r["reward_model_run"]:
            cal["rm_step_s"] = r["reward_model_run"]["wall_s"] / max(r["reward_model_run"]["steps"], 1)
        calibration[k] = cal
    greedy = sorted(r["eval_s"] / CALIBRATION_N_EVAL for r in rows.values() if r.get("eval_s"))
    greedy_pp = greedy[len(greedy) // 2] if greedy else eval_pp
    n_eval = compose_cfg(c.run_overrides(first, algo_of(c.catalogue[first].overrides), 1.0, c.seeds[0])).task.n_eval
    pairs_s = max((m["seconds"] for m in c.pairs.values()), default=0.0) if c.uses_pairs else 0.0
    plan = size_budget(calibration, min_updates=c.min_updates, margin=c.margin, rm_min_steps=c.rm_min_steps,
                       seeds=len(c.seeds), jobs=c.jobs, periodic_evals=c.periodic_evals, periodic_n=50, n_eval=n_eval,
                       greedy_s_per_problem=greedy_pp, eval_s_per_problem=eval_pp, eval_fixed_s=parts["loading"],
                       reference_s_per_problem=reference_pp, calibration_s=time.perf_counter() - t, pairs_s=pairs_s)
    plan.update({"settings": settings, "calibration": calibration, "greedy_s_per_problem": greedy_pp,
                 "eval_s_per_problem": eval_pp, "eval_fixed_s": parts["loading"], "reference_s_per_problem": reference_pp,
                 "calibration_s": round(time.perf_counter() - t, 1)})
    atomic_write_text(c.work / "sizing.json", json.dumps(plan, indent=2) + "\n")
    return plan


# ---- the report --------------------------------------------------------------------------------------


def fmt(x, digits: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def subset_accuracy(correct: list | None, n: int) -> float | None:
    return None if not correct else sum(v > 0 for v in correct[:n]) / min(n, len(correct))


def ev(r: dict) -> dict:
    return r.get("evaluation") or {}


def per_step(r: dict) -> float | None:
    return r["run_wall_s"] / r["steps"] if r.get("steps") else None


# every column of the table: its key, its header, how a seed's row gives its value, the digits shown
COLUMNS = (
    ("accuracy", "held-out accuracy", lambda r: ev(r)["accuracy"]["policy"], 3),
    ("win_rate", "win rate vs reference", lambda r: (ev(r).get("win_rate") or {}).get("win_rate"), 3),
    ("preference_accuracy", "preference accuracy", lambda r: (ev(r).get("preferences") or {}).get("accuracy"), 3),
    ("rm_score", "reward-model score", lambda r: (ev(r).get("reward_model") or {}).get("policy_score"), 2),
    ("perplexity", "perplexity of the answers", lambda r: ev(r)["perplexity"]["policy"], 2),
    ("kl", "KL to reference", lambda r: (ev(r).get("kl_to_reference") or {}).get("exact"), 2),
    ("length", "completion length", lambda r: ev(r)["completion_length"]["policy"], 1),
    ("steps", "steps", lambda r: r["steps"], 1),
    ("updates", "updates", lambda r: r.get("updates"), 1),
    ("step_s", "s per step", per_step, 1),
    ("wall_s", "wall time (s)", lambda r: r["wall_s"], 0),
    ("peak_rss_mb", "peak RSS (MB)", lambda r: r.get("peak_rss_mb"), 0),
)
PAIR_COLUMNS = (
    ("chosen_change", "Δ log π(y⁺)", lambda r: (ev(r).get("preferences") or {}).get("chosen_change"), 2),
    ("rejected_change", "Δ log π(y⁻)", lambda r: (ev(r).get("preferences") or {}).get("rejected_change"), 2),
    ("margin", "margin (nats)", lambda r: (ev(r).get("preferences") or {}).get("margin"), 2),
)


def aggregate(c: Comparison, rows: list[dict]) -> dict[str, dict]:
    """Per method, over its evaluated seeds: mean and 95% CI of every column, every seed's value kept."""
    out = {}
    for key in c.methods:
        mine = [r for r in rows if r["method"] == key]
        done = [r for r in mine if r.get("evaluation") and not r.get("error")]
        cols = {k: interval([get(r) for r in done]) for k, _, get, _ in COLUMNS + PAIR_COLUMNS}
        out[key] = {"method": key, "label": c.catalogue[key].label, "seeds": [r["seed"] for r in done], "columns": cols,
                    "models_held": done[0]["models_held"] if done else None, "models": done[0]["models"] if done else None,
                    "errors": [f"seed {r['seed']}: {r['error']}" for r in mine if r.get("error")]}
    return out


def table(agg: dict[str, dict], reference: dict | None) -> str:
    head = ("| method | seeds | " + " | ".join(h for _, h, _, _ in COLUMNS) + " | LMs held |\n"
            "|---|---:|" + "---:|" * len(COLUMNS) + "---|\n")
    lines = []
    if reference:
        lines.append(f"| starting model (the reference) | — | {fmt(reference['accuracy'])} | — | — | {fmt(reference['rm_score'], 2)} | "
                     f"{fmt(reference['perplexity'], 2)} | 0 | {fmt(reference['length'], 1)} |" + " — |" * 6)
    for a in agg.values():
        if not a["seeds"]:
            lines.append(f"| {a['label']} | 0 | failed: {'; '.join(a['errors']) or 'no evaluation'} |" + " |" * len(COLUMNS))
            continue
        cells = [fmt_interval(a["columns"][k], d) for k, _, _, d in COLUMNS]
        failed = f" ({len(a['errors'])} failed)" if a["errors"] else ""
        lines.append(f"| {a['label']} | {len(a['seeds'])}{failed} | " + " | ".join(cells) + f" | {a['models_held']}: {a['models']} |")
    return head + "\n".join(lines) + "\n"


def pairs_table(agg: dict[str, dict]) -> str:
    head = "| method | " + " | ".join(h for _, h, _, _ in PAIR_COLUMNS) + " | preference accuracy |\n|---|" + "---:|" * (len(PAIR_COLUMNS) + 1) + "\n"
    lines = [f"| {a['label']} | " + " | ".join(fmt_interval(a["columns"][k], d) for k, _, _, d in PAIR_COLUMNS)
             + f" | {fmt_interval(a['columns']['preference_accuracy'])} |" for a in agg.values() if a["columns"]["chosen_change"].n]
    return head + "\n".join(lines) + "\n"


def pairs_intro(evaluated: list[dict]) -> str:
    pref = next((x["preferences"] for x in evaluated if x.get("preferences")), None)
    if pref is None:
        return "No held-out pairs: the starting model got every held-out problem right."
    return (f"{pref['pairs']} pairs: {pref['source']}. Δ log π = log π − log π_ref summed over the response (nats), mean over "
            "the pairs; the margin is the mean of Δ log π(y⁺) − Δ log π(y⁻); each cell the mean over the seeds and its 95% CI.")


def mean_rows(agg: dict[str, dict]) -> dict[str, dict]:
    """Each method as one row of its means, in a seed row's shape (what ``evaluation_reading`` reads)."""
    out = {}
    for k, a in agg.items():
        if not a["seeds"]:
            continue
        m = {key: a["columns"][key].mean for key in a["columns"]}
        out[k] = {"label": a["label"], "evaluation": {
            "accuracy": {"policy": m["accuracy"]}, "preferences": {"accuracy": m["preference_accuracy"]},
            "reward_model": {"policy_score": m["rm_score"]}, "win_rate": {"win_rate": m["win_rate"]},
            "perplexity": {"policy": m["perplexity"]}, "kl_to_reference": {"exact": m["kl"]}}}
    return out


def against_start(agg: dict[str, dict], reference: dict | None) -> str:
    """Which methods end above, within the noise of, or below the starting model's held-out accuracy; beside each one
    below it, what was measured of it (its KL to the start, its answers' length, its steps)."""
    if not reference or reference.get("accuracy") is None:
        return ""
    start = reference["accuracy"]
    groups: dict[str, list[str]] = {"higher": [], "within the noise": [], "lower": [], "unknown": []}
    for a in agg.values():
        if not a["seeds"]:
            continue
        d = difference(a["columns"]["accuracy"].values, start)
        text = f"{a['label']} ({fmt_difference(d)})"
        if verdict(d) == "lower":
            col = a["columns"]
            text += (f": measured beside it, KL to the start {fmt_interval(col['kl'], 2)} nats, completion length "
                     f"{fmt_interval(col['length'], 1)} tokens (the start's {fmt(reference.get('length'), 1)}), "
                     f"{fmt_interval(col['updates'], 1)} updates")
        groups[verdict(d)].append(text)
    names = {"higher": "above it", "within the noise": "within the noise of it", "lower": "below it",
             "unknown": "one seed, no interval"}
    parts = [f"{names[g]}: " + "; ".join(v) for g, v in groups.items() if v]
    return (f"**Against the starting model** (held-out accuracy {fmt(start)}; each method's difference from it, mean and 95% CI "
            "over the seeds) — " + " — ".join(parts) + ".")


def comparison_readings(c: Comparison, agg: dict[str, dict], reference: dict | None) -> str:
    """Sentences on the comparison's questions (docs/llm.md: is GRPO cheaper than PPO, what DPO does to the chosen and
    rejected log-probs, how a preference-trained model scores), every difference read from its 95% CI."""
    by = {k: a for k, a in agg.items() if a["seeds"]}
    out = [s for s in [against_start(agg, reference)] if s]
    if "grpo" in by and ("ppo" in by or "rlhf" in by):
        g = by["grpo"]["columns"]
        parts = []
        for k in ("ppo", "rlhf"):
            if k not in by:
                continue
            o = by[k]["columns"]
            acc, step, peak = (difference(g[col].values, o[col].values) for col in ("accuracy", "step_s", "peak_rss_mb"))
            acc_word = {"higher": "higher than", "lower": "lower than", "within the noise": "within the noise of",
                        "unknown": "compared on one seed with"}[verdict(acc)]
            step_word = {"higher": "longer", "lower": "shorter", "within the noise": "as long within the noise",
                         "unknown": "compared on one seed"}[verdict(step)]
            peak_word = {"higher": "higher", "lower": "lower", "within the noise": "the same within the noise",
                         "unknown": "compared on one seed"}[verdict(peak)]
            parts.append(f"GRPO's accuracy is {acc_word} {by[k]['label']}'s ({fmt_difference(acc)}), its step {step_word} "
                         f"({fmt_difference(step, 1)} s), its peak memory {peak_word} ({fmt_difference(peak, 0)} MB), "
                         f"holding {by[k]['models_held'] - by['grpo']['models_held']} LM(s) fewer")
        out.append("**Is GRPO cheaper than PPO?** At equal wall-clock budget, " + "; ".join(parts) + ".")
    moved, pushed = [], []
    words = {"higher": "rose", "lower": "fell", "within the noise": "did not move beyond the noise", "unknown": "moved (one seed)"}
    for k, a in by.items():
        col = a["columns"]
        if k in ("ppo", "rlhf", "grpo") or not col["chosen_change"].n:
            continue
        ch, rj = difference(col["chosen_change"].values, 0.0), difference(col["rejected_change"].values, 0.0)
        moved.append(f"{a['label']}: y⁺ {words[verdict(ch)]} ({fmt_difference(ch, 2)}), y⁻ {words[verdict(rj)]} ({fmt_difference(rj, 2)})")
        # per seed: how far y⁻ fell beyond what y⁺ rose
        excess = [-j - max(cv, 0.0) for cv, j in zip(col["chosen_change"].values, col["rejected_change"].values)]
        if verdict(difference(excess, 0.0)) == "higher":
            pushed.append(a["label"])
    if moved:
        out.append("**What does preference training do to the chosen and rejected log-probabilities?** On the held-out pairs "
                   "(change from the starting model, nats, mean and 95% CI over the seeds): " + "; ".join(moved)
                   + f". The rejected answer fell by more than the chosen one rose, beyond the noise, in {len(pushed)} of "
                   f"{len(moved)}" + (f" ({', '.join(pushed)})" if pushed else "") + ": there the margin grows mostly by pushing y⁻ down.")
    means = mean_rows(agg)
    if means:
        out.append("**How should a preference-trained model be evaluated?** Over the means of the seeds: "
                   + evaluation_reading(means, reference))
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


def plot(c: Comparison, rows: list[dict], agg: dict[str, dict], reference_correct: list | None, png: Path) -> None:
    """Held-out accuracy (the first ``eval.periodic_n`` problems) against the wall-clock time charged, one thin line per
    seed and a colour per method; at the end, the mean accuracy on all held-out problems with its 95% CI."""
    require("matplotlib", hint="pip install -e '.[analysis]'", what="plotting")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, key in enumerate(c.methods):
        colour = plt.cm.tab10(i % 10)
        mine = [r for r in rows if r["method"] == key and r.get("evaluation")]  # a run too short for a periodic
        # evaluation still has its line: from the start to its final evaluation
        for j, r in enumerate(mine):
            n_sub = r["periodic_n"]
            points = [(0.0, subset_accuracy(reference_correct, n_sub))] if reference_correct else []
            points += [(p["wall_s"] / 60, p["accuracy"]) for p in r["curve"] if p["n"] == n_sub]
            points.append((r["wall_s"] / 60, subset_accuracy(r["evaluation"]["correct"]["policy"], n_sub)))
            ax.plot(*zip(*points), lw=1.0, alpha=0.45, color=colour, label=agg[key]["label"] if j == 0 else None)
        acc, wall = agg[key]["columns"]["accuracy"], agg[key]["columns"]["wall_s"]
        if acc.mean is not None:
            err = None if acc.lo is None else [[acc.mean - acc.lo], [acc.hi - acc.mean]]
            ax.errorbar([wall.mean / 60], [acc.mean], yerr=err, fmt="o", ms=5, capsize=3, color=colour, zorder=3)
    if c.budget_s:
        ax.axvline(c.budget_s / 60, color="grey", ls="--", lw=1)
        ax.annotate("budget", (c.budget_s / 60, 0.97), textcoords="offset points", xytext=(4, 0), fontsize=8, color="grey")
    ax.set(xlabel="wall-clock time charged to the method (minutes)", ylabel="greedy exact-match accuracy, held out",
           ylim=(0, 1), title="Held-out accuracy against time (lines: each seed on the periodic subset; dots: mean and 95% CI, all)")
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
    agg = aggregate(c, rows)
    model = "SmolLM2-135M-Instruct" if c.model == "smollm2" else f"the {c.model} model"
    budget = f"{c.budget_s / 60:.3g} minutes each" if c.budget_s else "no budget yet"
    sized = ""
    if c.sizing:
        sized = (" The budget was sized from a calibration run on this machine (`scripts/llm_sizing.py`): "
                 + plan_line(c.sizing, {k: c.catalogue[k].label for k in c.catalogue}, c.jobs) + ".")
    pairs = [m["stats"] for m in c.pairs.values()]
    md = [f"# {c.title} ({model}), {budget}, seeds {', '.join(map(str, c.seeds))}", "",
          f"Command: `{command}`", "",
          f"Every method trained with the same wall-clock budget of {fmt(c.budget_s, 0)} s per seed, one torch thread, the "
          "settings of its row in the script (the reference experiments, conf_llm/experiment/*_addition.yaml"
          + (", with their own learning-rate schedules" if c.own_schedule else ", with a constant learning rate")
          + f"), and was then evaluated by `ppo-bench-llm-eval` on {reference['n_eval'] if reference else '—'} "
          "held-out problems against the starting model. Each cell is the mean over the seeds and its 95% confidence interval "
          "(Student's t with n − 1 degrees of freedom: with 3–5 seeds a bootstrap has too few distinct resamples); a "
          "difference is read from Welch's interval, and one whose interval holds 0 is said to be within the noise. Wall "
          "time is what the method was charged: its training loop and setup"
          + (f", plus the preference pairs for the methods that train on them (sampled per seed: "
             f"{', '.join(str(p.get('pairs')) for p in pairs)} pairs, of which {', '.join(str(p.get('on_policy')) for p in pairs)} "
             "on-policy)" if pairs else "") + " and, for RLHF, its reward model; periodic evaluations are not charged." + sized, "",
          table(agg, reference), "",
          "Columns: held-out accuracy is greedy exact match; the win rate counts a problem won when only the method is right, "
          "lost when only the starting model is, half otherwise; preference accuracy is the share of held-out pairs (the reference "
          "answer against the starting model's wrong greedy answer) whose implied reward log π − log π_ref ranks y⁺ first; the "
          "reward-model score is the same seed's RLHF reward model on the method's greedy answers; perplexity is of the held-out "
          "reference answers; KL is Σ_t KL(π‖π_ref) over completions sampled at temperature 1 (nats per sequence); completion "
          "length in tokens; an update is a step that changed the policy; peak RSS is the training process's"
          + (" — here all in one process (--in-process), so it is not per method" if c.in_process else "") + ".", "",
          "## Held-out pairs: what each method did to log π(y⁺) and log π(y⁻)", "", pairs_intro(evaluated), "", pairs_table(agg), "",
          "## Readings", "", (c.readings or comparison_readings)(c, agg, reference), "",
          f"Figure: {c.stem}.png (held-out accuracy against the wall-clock time charged).", ""]
    c.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(c.out / f"{c.stem}.md", "\n".join(md))
    keep = [{k: v for k, v in r.items() if k != "evaluation"} | {"evaluation": {k: v for k, v in (r.get("evaluation") or {}).items() if k != "correct"}}
            for r in rows]
    methods = {k: {**a, "columns": {col: i.as_dict() for col, i in a["columns"].items()}} for k, a in agg.items()}
    atomic_write_text(c.out / f"{c.stem}.json", json.dumps({
        "command": command, "budget_s": c.budget_s, "model": c.model, "seeds": c.seeds, "interval": "95% Student's t over seeds",
        "sizing": c.sizing, "pairs": {str(k): v for k, v in c.pairs.items()},
        "reference": reference, "methods": methods, "rows": keep}, indent=2) + "\n")
    plot(c, rows, agg, reference["correct"] if reference else None, c.out / f"{c.stem}.png")


# ---- the command -------------------------------------------------------------------------------------


def check_configs(c: Comparison) -> None:
    """Every run's config composed and validated before anything starts: a bad override fails in one line at once."""
    seed = c.seeds[0]
    data = [f"algo.data_file={c.pairs_file(seed)}"]
    for key in c.methods:
        m = c.catalogue[key]
        if m.reward_model is not None:
            validate(compose_cfg([*m.reward_model, *data, *c.run_overrides(f"{key}_reward_model", "reward_model", 60.0, seed)]))
        own = data if m.pairs and m.reward_model is None else []
        # RLHF's PPO names the reward model its first run will save (validate checks the name, not the folder)
        rm = [f"algo.reward_model={c.work / f'{key}_reward_model' / f'seed{seed}' / 'model'}"] if m.reward_model else []
        validate(compose_cfg([*m.overrides, *own, *rm, *c.run_overrides(key, algo_of(m.overrides), 60.0, seed)]))


def prepare(c: Comparison) -> None:
    """The first seed's pairs, then the budget (sized from a calibration run unless given), then the other seeds' pairs;
    a sized comparison longer than ``c.max_hours`` is refused (ConfigError) before any of its runs starts."""
    check_configs(c)
    if c.uses_pairs:
        c.pairs[c.seeds[0]] = build_pairs(c, c.seeds[0])
    if c.budget_s is None:
        c.sizing = calibrate_and_size(c)
        c.budget_s = c.sizing["budget_s"]
        if c.rm_share is None:
            c.rm_share = c.sizing["rm_share"]
        labels = {k: c.catalogue[k].label for k in c.catalogue}
        if c.sizing["total_s"] > c.max_hours * 3600 and not c.read_only:
            raise ConfigError(f"the comparison would take about {c.sizing['total_s'] / 3600:.2f} h of the machine, more than "
                              f"--max-hours {c.max_hours:g}: {plan_line(c.sizing, labels, c.jobs)}; run fewer --methods or "
                              "--seeds, more --jobs, or raise --max-hours")
    if c.uses_pairs:
        for seed in c.seeds[1:]:
            c.pairs[seed] = build_pairs(c, seed)


def run(c: Comparison, command: str, plan_only: bool = False) -> int:
    """Pairs, sizing, training, evaluation, report; a run that fails is reported in its row and in one line on stderr."""
    prepare(c)
    if plan_only:
        labels = {k: c.catalogue[k].label for k in c.catalogue}
        print(plan_line(c.sizing, labels, c.jobs) if c.sizing else f"budget {c.budget_s / 60:.1f} min per method (given)")
        return 0
    items = [(key, seed) for seed in c.seeds for key in c.methods]
    trained = in_pool(c, lambda item: method_stages(c, item[0], item[1], c.budget_s), items)
    rows = []
    for (key, seed), (row, error) in zip(items, trained):
        rows.append(row if row is not None else {"method": key, "seed": seed, "label": c.catalogue[key].label, "error": error})
    reward_models = {r["seed"]: str(Path(r["reward_model_run"]["run_dir"]) / "model") for r in rows if r.get("reward_model_run")}
    todo = [r for r in rows if not r.get("error")]
    # the first evaluation alone: it computes what depends on the reference, which the others then read
    done = in_pool(c, lambda r: evaluate_method(c, r, reward_models.get(r["seed"])), todo[:1]) + \
        in_pool(c, lambda r: evaluate_method(c, r, reward_models.get(r["seed"])), todo[1:])
    for r, (res, error) in zip(todo, done):
        r["evaluation"], r["error"] = res, error
    write_report(c, rows, command)
    failed = [r for r in rows if r.get("error")]
    for r in failed:
        print(f"error: {r['label']} (seed {r['seed']}): {r['error']}", file=sys.stderr, flush=True)
    print(f"wrote {c.out / (c.stem + '.md')}, {c.stem}.json and {c.stem}.png")
    return 1 if failed else 0


def common_arguments(ap: argparse.ArgumentParser, seeds: list[int], budget_help: str) -> None:
    """The options every comparison-like script shares (this one, llm_stabilisers.py, llm_grpo_fast.py)."""
    ap.add_argument("--seeds", nargs="+", type=int, default=seeds, metavar="K", help=f"training seeds (default {' '.join(map(str, seeds))})")
    ap.add_argument("--budget-min", type=float, default=None, help=budget_help)
    ap.add_argument("--min-updates", type=int, default=20, help="sized budget: updates the slowest method must take (default 20)")
    ap.add_argument("--margin", type=float, default=1.15, help="sized budget: the slowest method's need times this (default 1.15)")
    ap.add_argument("--max-hours", type=float, default=4.0, help="refuse a sized comparison longer than this (default 4)")
    ap.add_argument("--calibration-steps", type=int, default=3, help="steps of each method's calibration run (default 3)")
    ap.add_argument("--rm-share", type=float, default=None,
                    help="RLHF: share of its budget for the pairs and the reward model (default: its measured share, 1/2 with --budget-min)")
    ap.add_argument("--jobs", type=int, default=2, help="runs and evaluations at a time, one process and one thread each (default 2)")
    ap.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2", help="tiny: the random test model, a check in seconds")
    ap.add_argument("--pair-prompts", type=int, default=128, help="training prompts the preference pairs are sampled on (default 128)")
    ap.add_argument("--pair-samples", type=int, default=4, help="completions sampled per prompt for the pairs (default 4)")
    ap.add_argument("--run-root", default="runs/llm", help="runs go to RUN_ROOT/<name>/<method>/seed<k> (default runs/llm)")
    ap.add_argument("--out", default=str(ROOT / "results" / "llm"), help="where the .md, .json and .png go (default results/llm)")
    ap.add_argument("--in-process", action="store_true", help="run and evaluate in this process, one at a time (peak memory then not per method)")
    ap.add_argument("--report-only", action="store_true", help="only rewrite the results from the finished runs and evaluations")
    ap.add_argument("--plan", action="store_true", help="only size the budget (calibrating when needed) and print the plan")


def parse(ap: OneLineArgumentParser, argv: list[str], catalogue: dict[str, Method]):
    """(args, Hydra overrides) with every option checked: ap.error (one line, exit code 2) otherwise."""
    args, extra = ap.parse_known_args(argv)
    # nargs="+" also swallows Hydra overrides written after --methods (`--methods grpo algo.lr=1e-5`)
    extra += [x for x in args.methods if "=" in x]
    args.methods = [x for x in args.methods if "=" not in x]
    unknown = [m for m in args.methods if m not in catalogue]
    bad_extra = [x for x in extra if "=" not in x or x.startswith("-")]
    if unknown or not args.methods:
        ap.error(f"--methods: unknown {', '.join(unknown) or '(none given)'} (allowed: {', '.join(catalogue)})")
    if bad_extra:
        ap.error(f"unrecognised arguments: {' '.join(bad_extra)} (Hydra overrides for every run look like key=value)")
    if args.budget_min is not None and not (math.isfinite(args.budget_min) and args.budget_min > 0):
        ap.error(f"--budget-min={args.budget_min} must be > 0")
    if args.rm_share is not None and not 0 < args.rm_share < 1:
        ap.error(f"--rm-share={args.rm_share} must lie in (0, 1)")
    if not (math.isfinite(args.margin) and args.margin >= 1):
        ap.error(f"--margin={args.margin} must be >= 1")
    if not (math.isfinite(args.max_hours) and args.max_hours > 0):
        ap.error(f"--max-hours={args.max_hours} must be > 0")
    if len(set(args.seeds)) != len(args.seeds) or any(s < 0 for s in args.seeds):
        ap.error(f"--seeds {' '.join(map(str, args.seeds))}: distinct integers >= 0")
    for name, low in (("jobs", 1), ("pair_prompts", 1), ("pair_samples", 2), ("min_updates", 1), ("calibration_steps", 1)):
        if getattr(args, name) < low:
            ap.error(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= {low}")
    return args, extra


def comparison_from(args, extra: list[str], catalogue: dict[str, Method], **kw) -> Comparison:
    return Comparison(methods=list(dict.fromkeys(args.methods)), budget_s=None if args.budget_min is None else args.budget_min * 60,
                      rm_share=args.rm_share, model=args.model, seeds=list(args.seeds), runs=Path(args.run_root).resolve(),
                      out=Path(args.out), jobs=args.jobs, in_process=args.in_process, pair_prompts=args.pair_prompts,
                      pair_samples=args.pair_samples, extra=extra, read_only=args.report_only, catalogue=catalogue,
                      min_updates=args.min_updates, margin=args.margin, max_hours=args.max_hours,
                      calibration_steps=args.calibration_steps, **kw)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = OneLineArgumentParser(prog="llm_comparison.py", description=__doc__.split("\n\n")[0],
                               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), metavar="M", help=f"a subset of: {', '.join(METHODS)}")
    common_arguments(ap, [0, 1, 2], "wall-clock minutes per method and seed (default: sized from a calibration run)")

    def body() -> int:
        args, extra = parse(ap, argv, METHODS)
        c = comparison_from(args, extra, METHODS)
        return run(c, " ".join(["python scripts/llm_comparison.py", *argv]), plan_only=args.plan)

    return run_command(body)  # an error a user caused: one line, exit code 2


if __name__ == "__main__":
    sys.exit(main())
