"""``ppo-bench-llm-eval``: the evaluation of a trained LM run against the model it started from (docs/llm.md,
"Evaluating a trained run").

    ppo-bench-llm-eval RUN_DIR [--json PATH] [--n N] [--pairs FILE] [--reward-model DIR] [--kl-samples K]
    python -m ppo_bench.llm.evaluate_run RUN_DIR ...        the same, without the console script

The run's policy (its ``model/`` folder, else the weights of its ``checkpoint.pt``) and its reference (the
starting model its config names), on the first N of the task's held-out problems (default: all of them):

  accuracy       greedy exact-match accuracy of policy and reference, and the win rate against the reference's
                 answers: per problem a win when only the policy is right, a loss when only the reference is, a tie
                 otherwise; win rate = (wins + ties / 2) / n
  preferences    preference accuracy on held-out pairs: the share of pairs whose implied reward
                 β (log π − log π_ref) ranks y⁺ over y⁻ (every β > 0 ranks alike; β log π for a reference-free DPO
                 run), its mean margin in nats, and the mean change of log π(y⁺) and log π(y⁻) from the reference.
                 The pairs: ``--pairs FILE`` (JSONL prompt/chosen/rejected), else every held-out problem the
                 reference gets wrong: the reference answer (y⁺) against the reference's greedy answer (y⁻)
  reward model   where there is one (the run's own for ``algo=reward_model``, PPO's ``algo.reward_model``, or
                 ``--reward-model DIR``): its pair accuracy on the same pairs and its mean score of the policy's and
                 the reference's greedy answers
  perplexity     exp(mean NLL per token) of the held-out reference answers (answer + EOS) under policy and reference
  KL             over ``--kl-samples`` completions per held-out prompt sampled from the policy at temperature 1, the
                 mean sequence KL Σ_t KL(π(·|s_t) ‖ π_ref(·|s_t)) (exact over the vocabulary at each position) and
                 its k1 estimate Σ_t log π(o_t) − log π_ref(o_t)
  length         mean greedy completion length (tokens up to the first EOS) and the share cut off, policy and reference

A reward-model run generates nothing: it gets the reward-model figures only. Writes RUN_DIR/evaluation.json (or
``--json PATH``). What depends on the reference alone (its greedy answers and perplexity, the default pairs and
their reference log-probs) is kept under ``--reference-cache DIR`` when given, so that the runs of one model and
task share it. A missing folder, a folder that is not an LM run or holds no weights, a malformed pairs file: one
line on stderr, exit code 2.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

import ppo_bench.llm.algorithms  # noqa: F401 — registers the built-in algorithms (a run names one)
from ppo_bench.common.atomic import atomic_write_text, read_json
from ppo_bench.common.errors import ConfigError, OneLineArgumentParser, check_writable, run_command
from ppo_bench.common.extensions import import_extensions
from ppo_bench.common.run_folder import CHECKPOINT, read_checkpoint
from ppo_bench.llm.harness.batches import collate_rows
from ppo_bench.llm.harness.evaluate import greedy_eval, kl_to_reference, perplexity, preference_figures, win_rate
from ppo_bench.llm.harness.logprobs import response_logps
from ppo_bench.llm.harness.models import (MODEL_SOURCES, eos_token_ids, is_lora, load_model, load_tokenizer,
                                          resolve_device, resolve_dtype, with_lora)
from ppo_bench.llm.harness.preferences import PreferencePair, read_jsonl, tokenize_pairs
from ppo_bench.llm.harness.registry import LM_ALGORITHMS
from ppo_bench.llm.harness.reward_models import HEAD_FILE, batch_scores, load_reward_model, score_head
from ppo_bench.llm.harness.run import check_lm_state
from ppo_bench.llm.harness.sampling import generate
from ppo_bench.llm.harness.tasks import TASKS, make_task, render_prompt

EVAL_FILE = "evaluation.json"


def locate_run(run_dir: str | Path) -> tuple[Path, DictConfig, str]:
    """(folder, its resolved config, where its weights are: "model" or "checkpoint"), or a ConfigError."""
    folder = Path(run_dir).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such run folder")
    try:
        cfg = OmegaConf.load(folder / "config.yaml")
    except Exception:  # missing, unreadable or not YAML
        cfg = None
    if isinstance(cfg, DictConfig):
        import_extensions(OmegaConf.select(cfg, "extensions") or ())  # the algorithm (or task) of one's own it names
    if not (isinstance(cfg, DictConfig) and OmegaConf.select(cfg, "algo.name") in LM_ALGORITHMS
            and OmegaConf.select(cfg, "model.name") in MODEL_SOURCES and OmegaConf.select(cfg, "task.name") in TASKS):
        raise ConfigError(f"{folder} is not a ppo-bench-llm run folder (its config.yaml must name a model, a task and "
                          f"algo.name one of: {', '.join(sorted(LM_ALGORITHMS))})")
    if (folder / "model" / "config.json").is_file():
        return folder, cfg, "model"
    if (folder / "checkpoint.pt").is_file():
        return folder, cfg, "checkpoint"
    raise ConfigError(f"{folder} holds no trained weights yet (neither model/ nor checkpoint.pt)")


def reward_model_path(cfg: DictConfig, folder: Path, given: str | None) -> str | None:
    """The reward model that scores this run: ``--reward-model``, else the run's own (a reward-model run's
    ``model/``, PPO's ``algo.reward_model``), else none."""
    if cfg.algo.name == "reward_model":
        return None  # the run is the reward model
    path = given or OmegaConf.select(cfg, "algo.reward_model")
    if path and not (Path(path).expanduser() / HEAD_FILE).is_file():
        raise ConfigError(f"reward model {path}: no {HEAD_FILE} there (the model/ folder of a finished algo=reward_model run)")
    return path


def load_trained(folder: Path, weights: str, reference, tok, device):
    """(the trained LM, its reward head or None, the checkpoint's step or None): from ``model/`` or ``checkpoint.pt``."""
    if weights == "model":
        mcfg = OmegaConf.create({"name": "hf", "path": str(folder / "model"), "freeze_embeddings": False, "gguf_cache": False})
        model = load_model(mcfg, tok, device, torch.float32, trainable=False)
        head = None
        if (folder / "model" / HEAD_FILE).is_file():
            head = score_head(model)
            head.load_state_dict(torch.load(folder / "model" / HEAD_FILE, map_location=device, weights_only=True))
        return model, head, None
    path = folder / CHECKPOINT
    state = read_checkpoint(path, check_lm_state)  # as data: a foreign file runs no code
    model = copy.deepcopy(reference)
    mcfg = OmegaConf.create(state.get("config", {}).get("model", {}))
    if mcfg.get("lora_r", 0) > 0:  # a LoRA run's checkpoint holds the base weights and the adapters: merge them
        model = with_lora(model, mcfg)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:  # weights of another model
        raise ConfigError(f"{path} holds weights of another model than the run's config.yaml names "
                          f"({str(e).splitlines()[0][:160]})") from None
    if is_lora(model):
        model = model.merge_and_unload()
    head = None
    if isinstance(state.get("algorithm"), dict) and "head" in state["algorithm"]:
        head = score_head(model)
        head.load_state_dict(state["algorithm"]["head"])
    return model, head, state.get("step")


def cache_key(settings: dict) -> str:
    """A digest of the settings (those whose name starts with "_" are callables, not settings)."""
    plain = {k: v for k, v in settings.items() if not k.startswith("_")}
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


def held_out_pairs(examples, prompts, greedy: dict, answer_template: str):
    """The default held-out pairs: for every problem the reference gets wrong, the reference answer (y⁺) against the
    reference's own greedy answer (y⁻)."""
    return [PreferencePair(p, answer_template.format(answer=e.answer), text, "reference_error")
            for e, p, text, ok in zip(examples, prompts, greedy["texts"], greedy["correct"]) if ok <= 0]


def reference_side(reference, tok, examples, prompts, answer_rows, file_pairs, settings: dict, gen: dict, autocast,
                   cache_dir: str | Path | None) -> dict:
    """What depends on the reference alone: its greedy answers, its perplexity of the reference answers, the held-out
    pairs (from a file, or built from its wrong answers) and their reference log-probs. Read from, or written to,
    ``cache_dir`` when given."""
    path = Path(cache_dir) / f"reference_{cache_key(settings)}.json" if cache_dir else None
    side = read_json(path) if path is not None else None  # a damaged cache is computed again
    if side is not None:
        side["pairs"] = [PreferencePair(**p) for p in side["pairs"]]
        return side
    with autocast():
        greedy = greedy_eval(reference, tok, examples, prompts, {"correct": settings["_correct"]}, keep=True, **gen)
    answer_logps = response_logps(reference, answer_rows, tok.pad_token_id, gen["batch_size"], autocast)
    pairs = file_pairs if file_pairs is not None else held_out_pairs(examples, prompts, greedy, settings["answer_template"])
    rows = tokenize_pairs(tok, pairs, settings["eos_id"])
    side = {
        "greedy": {k: greedy[k] for k in ("accuracy", "completion_length", "truncated", "correct", "texts", "completion_ids")},
        "perplexity": perplexity(answer_logps, [len(y) for _, y in answer_rows]),
        "pairs": pairs,
        "pairs_ref_chosen": response_logps(reference, [(p, c) for p, c, _ in rows], tok.pad_token_id, gen["batch_size"], autocast).tolist(),
        "pairs_ref_rejected": response_logps(reference, [(p, r) for p, _, r in rows], tok.pad_token_id, gen["batch_size"], autocast).tolist(),
    }
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({**side, "pairs": [asdict(p) for p in pairs],
                                            "settings": {k: v for k, v in settings.items() if not k.startswith("_")}}, default=str))
    return side


def evaluate_run(run_dir: str | Path, *, n: int | None = None, pairs_file: str | None = None, reward_model: str | None = None,
                 kl_samples: int = 1, reference_cache: str | Path | None = None, device: str | None = None,
                 threads: int | None = None, seed: int = 0, answer_template: str = "{answer}") -> dict:
    """Every figure of the module docstring for one run folder, as a dict (see ``main`` for the file)."""
    t0 = time.perf_counter()
    folder, cfg, weights = locate_run(run_dir)

    file_pairs = read_jsonl(pairs_file, option="--pairs") if pairs_file else None
    rm_path = reward_model_path(cfg, folder, reward_model)
    if n is not None and n < 1:
        raise ConfigError(f"--n={n} must be >= 1")
    if kl_samples < 0:
        raise ConfigError(f"--kl-samples={kl_samples} must be >= 0 (0: no KL)")
    if "{answer}" not in answer_template:
        raise ConfigError(f"--answer-template={answer_template!r} must contain {{answer}}")

    threads = threads if threads is not None else cfg.get("torch_threads", 0)
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device or cfg.get("device", "cpu"))
    dtype = resolve_dtype(cfg.get("dtype", "auto"), dev)

    def autocast():
        return torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32)

    task = make_task(cfg.task)
    tok = load_tokenizer(cfg.model)
    examples = task.eval_split()[: n or None]
    prompts = [render_prompt(tok, e.question, cfg.task.chat, cfg.task.system_prompt) for e in examples]
    reference = load_model(cfg.model, tok, dev, torch.float32, seed=cfg.seed, trainable=False)
    eos_ids = eos_token_ids(reference, tok)
    eos_id = tok.eos_token_id if tok.eos_token_id is not None else eos_ids[0]
    enc = lambda s: tok(s, add_special_tokens=False).input_ids  # noqa: E731
    answer_rows = [(enc(p), enc(answer_template.format(answer=e.answer)) + [eos_id]) for e, p in zip(examples, prompts)]
    gen = {"batch_size": cfg.eval.batch_size, "max_new_tokens": cfg.eval.max_new_tokens, "eos_ids": eos_ids}
    pairs_source = (f"{pairs_file} (sha256 {hashlib.sha256(Path(pairs_file).expanduser().read_bytes()).hexdigest()[:16]})"
                    if pairs_file else "held-out problems the reference gets wrong: the answer (y+) against its greedy answer (y-)")
    settings = {"model": OmegaConf.to_container(cfg.model), "task": OmegaConf.to_container(cfg.task), "seed": cfg.seed,
                "n": len(examples), **{k: v for k, v in gen.items() if k != "eos_ids"}, "answer_template": answer_template,
                "pairs": pairs_source, "dtype": str(dtype), "device": dev.type, "eos_id": eos_id,
                "_correct": task.accuracy_reward()}
    t_loaded = time.perf_counter()
    ref = reference_side(reference, tok, examples, prompts, answer_rows, file_pairs, settings, gen, autocast, reference_cache)
    t_reference = time.perf_counter()

    policy, head, step = load_trained(folder, weights, reference, tok, dev)
    rm = None
    if cfg.algo.name == "reward_model":
        if head is None:
            raise ConfigError(f"{folder}: a reward-model run without its reward head (model/reward_head.pt or the checkpoint's)")
        rm, policy = (policy, head), None
    elif rm_path:
        rm = load_reward_model(rm_path, tok, dev, dtype)

    t_policy = time.perf_counter()
    summary = read_json(folder / "summary.json") or {}
    ref_greedy = ref["greedy"]
    out: dict = {
        "run_dir": str(folder), "algo": cfg.algo.name, "label": summary.get("algo", cfg.algo.name), "model": cfg.model.name,
        "task": cfg.task.name, "weights": "model/" if weights == "model" else "checkpoint.pt",
        "steps": summary.get("steps", step), "wall_s": summary.get("wall_s"), "n_eval": len(examples),
        "accuracy": {"policy": None, "reference": ref_greedy["accuracy"]}, "win_rate": None,
        "completion_length": {"policy": None, "reference": ref_greedy["completion_length"]},
        "truncated": {"policy": None, "reference": ref_greedy["truncated"]},
        "perplexity": {"policy": None, "reference": ref["perplexity"], "answers": len(answer_rows),
                       "tokens": sum(len(y) for _, y in answer_rows), "answer_template": answer_template},
        "kl_to_reference": None, "preferences": None, "reward_model": None,
        "correct": {"policy": None, "reference": ref_greedy["correct"]},
    }
    pair_rows = tokenize_pairs(tok, ref["pairs"], eos_id)
    chosen_rows, rejected_rows = [(p, c) for p, c, _ in pair_rows], [(p, r) for p, _, r in pair_rows]
    policy_greedy = None
    if policy is not None:
        with autocast():
            policy_greedy = greedy_eval(policy, tok, examples, prompts, {"correct": task.accuracy_reward()}, keep=True, **gen)
        out["accuracy"]["policy"] = policy_greedy["accuracy"]
        out["completion_length"]["policy"] = policy_greedy["completion_length"]
        out["truncated"]["policy"] = policy_greedy["truncated"]
        out["correct"]["policy"] = policy_greedy["correct"]
        out["win_rate"] = win_rate(policy_greedy["correct"], ref_greedy["correct"])
        logps = response_logps(policy, answer_rows, tok.pad_token_id, gen["batch_size"], autocast)
        out["perplexity"]["policy"] = perplexity(logps, [len(y) for _, y in answer_rows])
        if pair_rows:
            reference_free = cfg.algo.name == "dpo" and cfg.algo.get("loss") == "reference_free"
            out["preferences"] = {
                **preference_figures(response_logps(policy, chosen_rows, tok.pad_token_id, gen["batch_size"], autocast),
                                     response_logps(policy, rejected_rows, tok.pad_token_id, gen["batch_size"], autocast),
                                     torch.tensor(ref["pairs_ref_chosen"]), torch.tensor(ref["pairs_ref_rejected"]), reference_free),
                "pairs": len(pair_rows), "source": pairs_source,
                "ranked_by": "log pi(y|x)" if reference_free else "log pi(y|x) - log pi_ref(y|x)"}
        if kl_samples:
            torch.manual_seed(seed)
            exact, k1, lengths = [], [], []
            for start in range(0, len(prompts), gen["batch_size"]):
                with autocast():
                    comp = generate(policy, tok, prompts[start:start + gen["batch_size"]], n=kl_samples,
                                    max_new_tokens=gen["max_new_tokens"], temperature=1.0, eos_ids=eos_ids)
                e, k = kl_to_reference(policy, reference, comp, min(gen["batch_size"], 8), autocast)
                exact.append(e)
                k1.append(k)
                lengths.append(comp.lengths.float().cpu())
            exact, k1, lengths = torch.cat(exact), torch.cat(k1), torch.cat(lengths)
            out["kl_to_reference"] = {"exact": exact.mean().item(), "k1": k1.mean().item(), "sequences": len(exact),
                                      "temperature": 1.0, "completion_length": lengths.mean().item()}
    if rm is not None:
        model, rm_head = rm

        def mean_score(rows):
            return batch_scores(model, rm_head, collate_rows(rows, tok.pad_token_id).to(dev), gen["batch_size"], autocast).mean().item()

        answer_ids = lambda g: [(enc(p), ids) for p, ids in zip(prompts, g["completion_ids"])]  # noqa: E731
        figures = {"path": str(folder / "model") if cfg.algo.name == "reward_model" else rm_path,
                   "reference_score": mean_score(answer_ids(ref_greedy)), "answer_score": mean_score(answer_rows)}
        if policy_greedy is not None:
            figures["policy_score"] = mean_score(answer_ids(policy_greedy))
        if pair_rows:
            c = batch_scores(model, rm_head, collate_rows(chosen_rows, tok.pad_token_id).to(dev), gen["batch_size"], autocast)
            r = batch_scores(model, rm_head, collate_rows(rejected_rows, tok.pad_token_id).to(dev), gen["batch_size"], autocast)
            figures.update({"pair_accuracy": (c > r).float().mean().item(), "pair_margin": (c - r).mean().item(), "pairs": len(pair_rows)})
        out["reward_model"] = figures
    out["settings"] = {"kl_samples": kl_samples, "seed": seed, "device": dev.type, "dtype": str(dtype),
                       "torch_threads": torch.get_num_threads(), **{k: v for k, v in gen.items() if k != "eos_ids"}}
    t_end = time.perf_counter()
    out["seconds"] = round(t_end - t0, 1)
    # loading (tokenizer, models, the run's weights), the reference's side (0 when read from --reference-cache), and the
    # figures of the run's own model: what an evaluation of another run of the same model costs is the first and last
    out["seconds_by_part"] = {"loading": round((t_loaded - t0) + (t_policy - t_reference), 2),
                              "reference": round(t_reference - t_loaded, 2), "policy": round(t_end - t_policy, 2)}
    out["written"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return out


def report_line(res: dict) -> str:
    fmt = lambda x, d=3: "n/a" if x is None else f"{x:.{d}f}"  # noqa: E731
    acc, pref, kl, rm = res["accuracy"], res["preferences"] or {}, res["kl_to_reference"] or {}, res["reward_model"] or {}
    win = res["win_rate"] or {}
    return (f"{res['label']} ({res['run_dir']}): held-out accuracy {fmt(acc['reference'])} -> {fmt(acc['policy'])} "
            f"(n={res['n_eval']}), win rate {fmt(win.get('win_rate'))}, preference accuracy {fmt(pref.get('accuracy'))}, "
            f"reward-model pair accuracy {fmt(rm.get('pair_accuracy'))}, perplexity of the answers "
            f"{fmt(res['perplexity']['reference'], 2)} -> {fmt(res['perplexity']['policy'], 2)}, KL {fmt(kl.get('exact'), 2)}, "
            f"completion length {fmt(res['completion_length']['reference'], 1)} -> {fmt(res['completion_length']['policy'], 1)}")


def main(argv: list[str] | None = None) -> int:
    ap = OneLineArgumentParser(prog="ppo-bench-llm-eval", description=__doc__.split("\n\n")[0],
                                 epilog="The figures: docs/llm.md, 'Evaluating a trained run'.")
    ap.add_argument("run_dir", help="a ppo-bench-llm run folder (config.yaml and model/ or checkpoint.pt)")
    ap.add_argument("--json", metavar="PATH", help=f"where the results go (default RUN_DIR/{EVAL_FILE})")
    ap.add_argument("--n", type=int, help="evaluate on the first N held-out problems (default: all of the run's task.n_eval)")
    ap.add_argument("--pairs", metavar="FILE", help="held-out preference pairs, JSONL prompt/chosen/rejected "
                                                     "(default: the reference answer against the reference's wrong greedy answer)")
    ap.add_argument("--reward-model", metavar="DIR", help="score with this reward model (the model/ folder of an algo=reward_model run)")
    ap.add_argument("--kl-samples", type=int, default=1, help="completions sampled per held-out prompt for the KL (default 1; 0: none)")
    ap.add_argument("--reference-cache", metavar="DIR", help="keep what depends on the reference alone here, for the next run of the same model and task")
    ap.add_argument("--answer-template", default="{answer}", help="the reference answer's text, for perplexity and the default pairs (default '{answer}')")
    ap.add_argument("--device", choices=("cpu", "cuda", "auto"), help="default: the run's")
    ap.add_argument("--threads", type=int, help="torch threads (default: the run's torch_threads)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the KL samples (default 0)")
    def command() -> int:  # every error a user can cause in one line, exit code 2 (ppo_bench.common.errors)
        args = ap.parse_args(argv)
        folder, _, _ = locate_run(args.run_dir)  # a folder that is no run: said before anything is created
        path = Path(args.json) if args.json else folder / EVAL_FILE
        check_writable(path)  # before the evaluation, whose result would otherwise be lost
        res = evaluate_run(args.run_dir, n=args.n, pairs_file=args.pairs, reward_model=args.reward_model, kl_samples=args.kl_samples,
                           reference_cache=args.reference_cache, device=args.device, threads=args.threads, seed=args.seed,
                           answer_template=args.answer_template)
        atomic_write_text(path, json.dumps(res, indent=2) + "\n")
        print(report_line(res))
        print(f"wrote {path}")
        return 0

    return run_command(command)


if __name__ == "__main__":
    sys.exit(main())
