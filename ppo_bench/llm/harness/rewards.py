"""Verifiable rewards: plain callables ``reward(prompt, completion, **fields) -> float`` (docs/llm.md, "Tasks and rewards").

``fields`` are the task fields of the example (``answer`` always, plus the task's own, e.g. ``a``,
``b`` for addition). Several rewards are summed with weights by :func:`weighted_rewards`; a new
reward is any function with this signature, passed in a task's ``rewards`` mapping.
"""

from __future__ import annotations

import ast
import operator
import re
from collections import Counter
from typing import Callable, Mapping, Sequence

import torch

RewardFn = Callable[..., float]

_INT = re.compile(r"-?\d[\d,]*")
_WORD = re.compile(r"[A-Za-z]+")
_EXPR = re.compile(r"[\d(][\d\s+\-*/().]*")


# ---- answer extraction ---------------------------------------------------------------------------


def last_integer(text: str) -> str | None:
    """The last integer written in the text (thousands separators dropped): the model's final answer."""
    found = _INT.findall(text)
    return found[-1].replace(",", "") if found else None


def last_word(text: str) -> str | None:
    found = _WORD.findall(text)
    return found[-1] if found else None


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def arithmetic_value(expr: str) -> tuple[float, list[int]] | None:
    """Value of an expression of integers, + - * / and parentheses, and the integers it uses; None if not one."""
    try:
        tree = ast.parse(expr.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return None
    used: list[int] = []

    def ev(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
            used.append(node.value)
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise ZeroDivisionError
            return _OPS[type(node.op)](left, right)
        raise ValueError("not plain arithmetic")

    try:
        return ev(tree), used
    except (ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


def last_expression(text: str) -> str | None:
    """The last stretch of the text that is an arithmetic expression with at least one operator."""
    found = [m.group().strip() for m in _EXPR.finditer(text)]
    found = [f for f in found if any(op in f for op in "+-*/")]
    return found[-1] if found else None


# ---- rewards -------------------------------------------------------------------------------------


def integer_answer_correct(prompt: str, completion: str, answer: str, **_) -> float:
    """1 if the last integer in the completion equals the answer (exact match), else 0."""
    return float(last_integer(completion) == answer)


def integer_answer_only(prompt: str, completion: str, **_) -> float:
    """Format reward: 1 if the completion is just an integer (an optional final period allowed)."""
    return float(re.fullmatch(r"\s*-?\d[\d,]*\.?\s*", completion) is not None)


def word_answer_correct(prompt: str, completion: str, answer: str, **_) -> float:
    """1 if the last word in the completion is the answer, letter for letter."""
    return float(last_word(completion) == answer)


def word_answer_only(prompt: str, completion: str, **_) -> float:
    return float(re.fullmatch(r"\s*[\"']?[A-Za-z]+[\"']?\.?\s*", completion) is not None)


def countdown_correct(prompt: str, completion: str, numbers: Sequence[int], target: int, **_) -> float:
    """1 if the last expression in the completion uses each given number exactly once and equals the target."""
    expr = last_expression(completion)
    result = arithmetic_value(expr) if expr else None
    if result is None:
        return 0.0
    value, used = result
    return float(Counter(used) == Counter(numbers) and abs(value - target) < 1e-6)


def countdown_expression_only(prompt: str, completion: str, target: int, **_) -> float:
    text = re.sub(rf"\s*=\s*{target}\s*\.?\s*$", "", completion.strip())
    return float(bool(text) and arithmetic_value(text) is not None)


# ---- combination ---------------------------------------------------------------------------------


def weighted_rewards(
    fns: Mapping[str, RewardFn],
    weights: Mapping[str, float],
    prompts: Sequence[str],
    completions: Sequence[str],
    fields: Sequence[dict],
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """r = Σ_k w_k r_k(prompt, completion, fields); returns the total and each reward function's values."""
    per_fn = {
        name: torch.tensor([float(fns[name](p, c, **f)) for p, c, f in zip(prompts, completions, fields)])
        for name in weights
    }
    total = torch.zeros(len(completions))
    for name, w in weights.items():
        total += float(w) * per_fn[name]
    return total, per_fn
