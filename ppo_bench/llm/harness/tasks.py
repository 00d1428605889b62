"""Verifiable tasks generated from a seed, each with a held-out evaluation split (docs/llm.md, "Tasks and rewards").

A task turns a random generator into :class:`Example` s (a question, its answer, and the fields its
rewards read), holds out ``n_eval`` problems chosen by ``split_seed`` that training never samples,
and names its reward callables. A new task is one class decorated ``@register_task`` (here, or in a module of one's
own named in ``extensions``) plus one file in a ``conf_llm/task/`` folder; its options are ``TaskConfig``'s.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from ppo_bench.common.errors import ConfigError
from ppo_bench.llm.harness import rewards as R


@dataclass(frozen=True)
class Example:
    question: str  # the user message
    answer: str  # a reference answer (exact-match target, or one valid solution)
    fields: dict[str, Any] = field(default_factory=dict)  # passed to every reward as keyword arguments

    def reward_fields(self) -> dict[str, Any]:
        return {"answer": self.answer, **self.fields}


TASKS: dict[str, type["Task"]] = {}


def register_task(cls: type["Task"]) -> type["Task"]:
    """Class decorator: the task ``task.name=<cls.name>`` builds."""
    if cls.name in TASKS and TASKS[cls.name] is not cls:
        raise ValueError(f"task {cls.name!r} registered twice: {TASKS[cls.name].__module__} and {cls.__module__}")
    TASKS[cls.name] = cls
    return cls


class Task:
    """Base class: subclasses define ``key``/``problem`` and the task's rewards."""

    name: ClassVar[str]
    default_template: ClassVar[str]
    rewards: ClassVar[dict[str, Callable[..., float]]]

    def __init__(self, cfg):
        self.cfg = cfg
        self.template = cfg.template or self.default_template
        rng = random.Random(cfg.split_seed)
        held: dict[Any, Example] = {}
        for _ in range(cfg.n_eval * 1000):
            if len(held) == cfg.n_eval:
                break
            key = self.random_key(rng)
            held.setdefault(key, self.example(key))
        if len(held) < cfg.n_eval:
            raise ConfigError(f"task.n_eval={cfg.n_eval} is more problems than task {self.name} can hold out")
        self._held_out_keys = set(held)
        self._eval = list(held.values())

    # -- per task
    @classmethod
    def validate(cls, cfg) -> None:
        """Raise ConfigError for task options out of range (before anything is built)."""

    @classmethod
    def space_size(cls, cfg) -> int:
        raise NotImplementedError

    def random_key(self, rng: random.Random):
        raise NotImplementedError

    def example(self, key) -> Example:
        raise NotImplementedError

    # -- shared
    def eval_split(self) -> list[Example]:
        """The held-out problems, in a fixed order."""
        return list(self._eval)

    def sample_train(self, rng: random.Random, n: int) -> list[Example]:
        """n training problems, never one of the held-out ones."""
        out = []
        while len(out) < n:
            key = self.random_key(rng)
            if key not in self._held_out_keys:
                out.append(self.example(key))
        return out

    def accuracy_reward(self) -> Callable[..., float]:
        """The exact-match reward; greedy accuracy on the held-out split is its mean."""
        return self.rewards["correct"]


def _check_n_eval(cfg, size: int) -> None:
    # at most half the problem space is held out, so training still sees a varied set
    if cfg.n_eval > size // 2:
        raise ConfigError(f"task.n_eval={cfg.n_eval} is too large for task {cfg.name} ({size} distinct problems); allowed: 1..{size // 2}")


@register_task
class Addition(Task):
    """a + b with two operands of exactly ``digits`` digits; the answer is the sum."""

    name = "addition"
    default_template = "What is {a} + {b}?"
    rewards = {"correct": R.integer_answer_correct, "format": R.integer_answer_only}

    @classmethod
    def validate(cls, cfg) -> None:
        if not isinstance(cfg.digits, int) or not 1 <= cfg.digits <= 9:
            raise ConfigError(f"task.digits={cfg.digits} must be an integer in 1..9")
        _check_n_eval(cfg, cls.space_size(cfg))

    @classmethod
    def space_size(cls, cfg) -> int:
        lo, hi = cls._range(cfg.digits)
        return (hi - lo + 1) ** 2

    @staticmethod
    def _range(digits: int) -> tuple[int, int]:
        return (0 if digits == 1 else 10 ** (digits - 1)), 10**digits - 1

    def random_key(self, rng):
        lo, hi = self._range(self.cfg.digits)
        return rng.randint(lo, hi), rng.randint(lo, hi)

    def example(self, key) -> Example:
        a, b = key
        return Example(self.template.format(a=a, b=b), str(a + b), {"a": a, "b": b})


@register_task
class Reverse(Task):
    """Reverse a random lower-case word, letter by letter."""

    name = "reverse"
    default_template = 'Reverse the word "{word}". Write only the reversed word.'
    rewards = {"correct": R.word_answer_correct, "format": R.word_answer_only}

    @classmethod
    def validate(cls, cfg) -> None:
        if not (isinstance(cfg.min_len, int) and isinstance(cfg.max_len, int) and 2 <= cfg.min_len <= cfg.max_len <= 32):
            raise ConfigError(f"task.min_len={cfg.min_len}, task.max_len={cfg.max_len}: need 2 <= min_len <= max_len <= 32")
        _check_n_eval(cfg, cls.space_size(cfg))

    @classmethod
    def space_size(cls, cfg) -> int:
        return sum(26**n for n in range(cfg.min_len, cfg.max_len + 1))

    def random_key(self, rng):
        n = rng.randint(self.cfg.min_len, self.cfg.max_len)
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))

    def example(self, key) -> Example:
        return Example(self.template.format(word=key), key[::-1], {"word": key})


@register_task
class Countdown(Task):
    """Combine the given numbers (each once) with + - * / into an expression equal to the target."""

    name = "countdown"
    default_template = "Using the numbers {numbers_text}, each exactly once, and only + - * / and parentheses, write an expression equal to {target}."
    rewards = {"correct": R.countdown_correct, "format": R.countdown_expression_only}
    MAX_NUMBER = 20

    @classmethod
    def validate(cls, cfg) -> None:
        if not isinstance(cfg.numbers, int) or not 2 <= cfg.numbers <= 6:
            raise ConfigError(f"task.numbers={cfg.numbers} must be an integer in 2..6")
        _check_n_eval(cfg, cls.space_size(cfg))

    @classmethod
    def space_size(cls, cfg) -> int:
        return cls.MAX_NUMBER**cfg.numbers  # a lower bound on (numbers, target) pairs

    def random_key(self, rng):
        while True:
            nums = [rng.randint(1, self.MAX_NUMBER) for _ in range(self.cfg.numbers)]
            expr = str(nums[0])
            for x in nums[1:]:
                op = rng.choice("+-*")
                expr = f"({expr} {op} {x})" if op != "*" else f"{expr} * {x}"
            value, _ = R.arithmetic_value(expr)
            if value > 0 and value == int(value):
                return tuple(nums), int(value), expr

    def example(self, key) -> Example:
        nums, target, expr = key
        text = ", ".join(map(str, nums))
        return Example(self.template.format(numbers_text=text, target=target), expr, {"numbers": list(nums), "target": target})

    def sample_train(self, rng, n):
        held = {(k[0], k[1]) for k in self._held_out_keys}
        out = []
        while len(out) < n:
            key = self.random_key(rng)
            if (key[0], key[1]) not in held:
                out.append(self.example(key))
        return out


def make_task(cfg) -> Task:
    if cfg.name not in TASKS:
        raise ConfigError(f"task.name={cfg.name!r} is not one of: {', '.join(sorted(TASKS))}")
    unknown = [k for k in cfg.rewards if k not in TASKS[cfg.name].rewards]
    if unknown:
        raise ConfigError(f"task.rewards has {unknown[0]!r}; task {cfg.name} offers: {', '.join(TASKS[cfg.name].rewards)}")
    TASKS[cfg.name].validate(cfg)
    return TASKS[cfg.name](cfg)


def render_prompt(tokenizer, question: str, chat: bool = True, system_prompt: str | None = None) -> str:
    """The text the model continues: the chat template with a generation prompt, or the bare question."""
    if not chat:
        return question
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
