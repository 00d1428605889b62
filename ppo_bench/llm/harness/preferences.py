"""Preference pairs (docs/llm.md, "DPO"): read from the ecosystem's JSONL, or built from a task by the policy's own samples;
unpaired into desirable and undesirable examples for KTO; tokenized into the rows ``batches.collate`` batches.

JSONL: one object per line with non-empty string fields ``prompt``, ``chosen``, ``rejected`` (TRL's
"standard" preference format); the prompt is the exact text the model continues, the responses follow it.
Task pairs: the policy samples ``num_samples`` completions per training prompt; the task's exact-match
reward splits them into correct (chosen) and incorrect (rejected) on-policy pairs; a prompt with no
correct sample pairs the reference answer against the model's own wrong one (the fallback).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from ppo_bench.common.atomic import atomic_write_text
from ppo_bench.common.errors import ConfigError
from ppo_bench.llm.harness.sampling import generate

FIELDS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class PreferencePair:
    prompt: str  # the text the model continues (a task prompt already in its chat template)
    chosen: str  # y⁺
    rejected: str  # y⁻
    source: str = "file"  # file | on_policy | fallback


def read_jsonl(path: str | Path, option: str = "algo.data_file") -> list[PreferencePair]:
    """Every record of a preference file; a malformed one is a ConfigError naming the file and line (``option``:
    how the user named the file)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{option}={path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{e.object[e.start]:02x}); save the file as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"{option}={path}: cannot be read ({e.strerror})") from None
    pairs = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise ConfigError(f"{path}:{n}: a record must be a JSON object with {', '.join(FIELDS)}")
        for k in FIELDS:
            if k not in rec:
                raise ConfigError(f"{path}:{n}: missing field {k!r} (need {', '.join(FIELDS)})")
            if not isinstance(rec[k], str) or not rec[k]:
                raise ConfigError(f"{path}:{n}: field {k!r} must be a non-empty string (conversational lists are not supported)")
            if not rec[k].isascii() and any(0xD800 <= ord(c) <= 0xDFFF for c in rec[k]):  # JSON's "\ud800" escapes
                raise ConfigError(f"{path}:{n}: field {k!r} holds invalid Unicode (a lone surrogate, "
                                  f"\\u{next(ord(c) for c in rec[k] if 0xD800 <= ord(c) <= 0xDFFF):04x}), which no "
                                  "text is made of; fix the file")
        pairs.append(PreferencePair(rec["prompt"], rec["chosen"], rec["rejected"], rec.get("source", "file")))
    if not pairs:
        raise ConfigError(f"{path}: no preference records")
    return pairs


def data_file_pairs(cfg, run_dir: Path, cached: str) -> list[PreferencePair] | None:
    """``algo.data_file``'s pairs, read before any weights load (a malformed file fails first); None without a data
    file, or where the file is gone but the run resumes from its own folder's copy of the pairs it trained on
    (``cached``, a file of the run folder), which its ``prepare`` reads."""
    f = cfg.algo.data_file
    if not f:
        return None
    if cfg.resume and not Path(f).expanduser().exists() and (Path(run_dir) / cached).is_file():
        return None
    return read_jsonl(f)


def write_jsonl(path: str | Path, pairs: Sequence[PreferencePair]) -> None:
    atomic_write_text(Path(path), "".join(json.dumps(asdict(p), ensure_ascii=False) + "\n" for p in pairs))


@dataclass(frozen=True)
class UnpairedExample:
    """One completion of a prompt with a binary label: KTO's data (TRL's "unpaired preference" format)."""

    prompt: str
    completion: str
    desirable: bool  # y⁺ (True) or y⁻ (False)
    source: str = "file"


def unpair(pairs: Sequence[PreferencePair]) -> list[UnpairedExample]:
    """Each pair as two examples, its chosen desirable and its rejected undesirable (TRL's ``unpair_preference_dataset``)."""
    out = []
    for p in pairs:
        out += [UnpairedExample(p.prompt, p.chosen, True, p.source), UnpairedExample(p.prompt, p.rejected, False, p.source)]
    return out


@torch.no_grad()
def pairs_from_task(
    model,
    tokenizer,
    examples: Sequence,
    prompts: Sequence[str],
    correct: Callable[..., float],
    *,
    num_samples: int,
    pairs_per_prompt: int = 1,
    temperature: float = 1.0,
    max_new_tokens: int = 32,
    answer_template: str = "{answer}",
    eos_ids: list[int] | None = None,
    rng: random.Random | None = None,
    batch_prompts: int = 16,
) -> tuple[list[PreferencePair], dict[str, float]]:
    """On-policy pairs (a correct sample over an incorrect one), else the reference answer over an incorrect
    sample; a prompt whose samples were all correct gives no pair. Returns the pairs and their counts."""
    rng = rng or random.Random(0)
    pairs: list[PreferencePair] = []
    n_correct = n_total = 0
    for start in range(0, len(prompts), batch_prompts):
        pr = list(prompts[start : start + batch_prompts])
        out = generate(model, tokenizer, pr, n=num_samples, max_new_tokens=max_new_tokens, temperature=temperature, eos_ids=eos_ids)
        for i, prompt in enumerate(pr):
            ex = examples[start + i]
            texts = out.texts[i * num_samples : (i + 1) * num_samples]
            good, bad = [], []
            for t in dict.fromkeys(texts):  # distinct samples, in sampling order
                (good if correct(prompt, t, **ex.reward_fields()) > 0 else bad).append(t)
            n_correct += sum(correct(prompt, t, **ex.reward_fields()) > 0 for t in texts)
            n_total += len(texts)
            rng.shuffle(good)
            rng.shuffle(bad)
            if good and bad:
                pairs += [PreferencePair(prompt, g, b, "on_policy") for g, b in zip(good, bad)][:pairs_per_prompt]
            elif bad:
                answer = answer_template.format(answer=ex.answer)
                pairs += [PreferencePair(prompt, answer, b, "fallback") for b in bad[:pairs_per_prompt]]
    stats = {
        "pairs": len(pairs),
        "on_policy": sum(p.source == "on_policy" for p in pairs),
        "fallback": sum(p.source == "fallback" for p in pairs),
        "sample_accuracy": n_correct / max(n_total, 1),
    }
    return pairs, stats


def tokenize_pairs(tokenizer, pairs: Sequence[PreferencePair], eos_id: int) -> list[tuple[list[int], list[int], list[int]]]:
    """(prompt ids, chosen ids + EOS, rejected ids + EOS) per pair; prompt and responses tokenized apart, as TRL does."""
    out = []
    for p in pairs:
        enc = lambda s: tokenizer(s, add_special_tokens=False).input_ids  # noqa: E731
        out.append((enc(p.prompt), enc(p.chosen) + [eos_id], enc(p.rejected) + [eos_id]))
    return out


def tokenize_examples(tokenizer, examples: Sequence[UnpairedExample], eos_id: int) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids + EOS) per unpaired example, tokenized apart as ``tokenize_pairs`` does."""
    enc = lambda s: tokenizer(s, add_special_tokens=False).input_ids  # noqa: E731
    return [(enc(e.prompt), enc(e.completion) + [eos_id]) for e in examples]


def pairs_for_run(run) -> tuple[list[PreferencePair], dict]:
    """The pairs of a DPO, KTO or reward-model run (``run.LMRun``): its ``algo.data_file``, or sampled from
    its policy on the task's training prompts; and their statistics."""
    a, cfg = run.a, run.cfg
    if a.data_file:
        pairs = read_jsonl(a.data_file)
        return pairs, {"pairs": len(pairs)}
    examples = run.task.sample_train(random.Random(cfg.seed + 1), a.num_prompts)
    with run.autocast():
        pairs, stats = pairs_from_task(
            run.model, run.tok, examples, [run.prompt(e) for e in examples], run.task.accuracy_reward(),
            num_samples=a.num_samples, pairs_per_prompt=a.pairs_per_prompt, temperature=a.temperature,
            max_new_tokens=a.max_completion_length, answer_template=a.answer_template, eos_ids=run.eos_ids,
            rng=random.Random(cfg.seed + 2))
    if not pairs:
        raise ConfigError(f"task {cfg.task.name}: every one of the policy's {a.num_samples} samples was correct on all "
                          f"{a.num_prompts} prompts, so no preference pair could be built (raise algo.num_prompts)")
    return pairs, stats


def epoch_batch(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """The pairs of one step: consecutive slices of a per-epoch permutation of n (a function of the step,
    so a resumed run repeats it)."""
    out = []
    for k in range(step * batch_size, step * batch_size + batch_size):
        epoch, pos = divmod(k, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        out.append(int(perm[pos]))
    return torch.tensor(out)
