"""Tasks (held-out splits, determinism) and rewards (plain callables, weighted sums)."""

import random

import pytest
from omegaconf import OmegaConf

from ppo_bench.common.errors import ConfigError
from ppo_bench.llm.harness import rewards as R
from ppo_bench.llm.harness.config import TaskConfig
from ppo_bench.llm.harness.tasks import make_task, render_prompt


def task_cfg(**kw):
    return OmegaConf.structured(TaskConfig(**kw))


@pytest.mark.parametrize("name", ["addition", "reverse", "countdown"])
def test_eval_split_is_fixed_and_disjoint_from_training(name):
    task = make_task(task_cfg(name=name, n_eval=50))
    again = make_task(task_cfg(name=name, n_eval=50))
    held = task.eval_split()
    assert len(held) == 50 and held == again.eval_split()
    held_q = {e.question for e in held}
    train = task.sample_train(random.Random(0), 500)
    assert not held_q & {e.question for e in train}
    # every held-out answer is right by the task's own reward
    for e in held:
        assert task.rewards["correct"](e.question, e.answer, **e.reward_fields()) == 1.0


def test_addition_problems():
    task = make_task(task_cfg(name="addition", digits=2, n_eval=10))
    for e in task.sample_train(random.Random(1), 100):
        a, b = e.fields["a"], e.fields["b"]
        assert 10 <= a <= 99 and 10 <= b <= 99 and e.answer == str(a + b)
        assert e.question == f"What is {a} + {b}?"


def test_addition_rewards_read_the_final_answer():
    f = {"answer": "122"}
    assert R.integer_answer_correct("", "59 + 63 = 122.", **f) == 1.0
    assert R.integer_answer_correct("", "The answer is 122", **f) == 1.0
    assert R.integer_answer_correct("", "122 is wrong, it is 121", **f) == 0.0
    assert R.integer_answer_correct("", "no number", **f) == 0.0
    assert R.integer_answer_correct("", "1,122", answer="1122") == 1.0
    assert R.integer_answer_only("", " 122.", **f) == 1.0
    assert R.integer_answer_only("", "It is 122", **f) == 0.0


def test_reverse_and_countdown_rewards():
    assert R.word_answer_correct("", 'The reversed word is "olleh".', answer="olleh") == 1.0
    assert R.word_answer_correct("", "hello", answer="olleh") == 0.0
    f = {"numbers": [3, 7, 4], "target": 25}
    assert R.countdown_correct("", "3 * 7 + 4 = 25", **f) == 1.0
    assert R.countdown_correct("", "(7 - 3) * 4 + 9", **f) == 0.0  # 9 was not given
    assert R.countdown_correct("", "7 * 4 - 3", **f) == 1.0
    assert R.countdown_correct("", "3 + 7 + 4", **f) == 0.0  # wrong value
    assert R.countdown_correct("", "__import__('os')", **f) == 0.0
    assert R.countdown_correct("", "4 / (7 - 7) + 3", **f) == 0.0  # division by zero is just wrong
    assert R.countdown_expression_only("", "3 * 7 + 4 = 25", **f) == 1.0


def test_rewards_are_summed_with_weights():
    fns = {"correct": R.integer_answer_correct, "format": R.integer_answer_only}
    total, per = R.weighted_rewards(fns, {"correct": 1.0, "format": 0.25}, ["q"] * 3,
                                    ["42", "so 42", "41"], [{"answer": "42"}] * 3)
    assert per["correct"].tolist() == [1, 1, 0] and per["format"].tolist() == [1, 0, 1]
    assert total.tolist() == [1.25, 1.0, 0.25]
    # any callable with the signature is a reward
    total, _ = R.weighted_rewards({"len": lambda p, c, **_: len(c)}, {"len": 2.0}, ["q"], ["abc"], [{}])
    assert total.tolist() == [6.0]


def test_bad_task_options():
    with pytest.raises(ConfigError, match="task.n_eval"):
        make_task(task_cfg(name="addition", digits=1, n_eval=80))  # 100 problems: at most 50 held out
    with pytest.raises(ConfigError, match="task.digits"):
        make_task(task_cfg(name="addition", digits=0))
    with pytest.raises(ConfigError, match="offers: correct, format"):
        make_task(task_cfg(name="addition", rewards={"bleu": 1.0}))


def test_prompt_rendering(char_tok):
    assert render_prompt(char_tok, "What is 1 + 2?", chat=False) == "What is 1 + 2?"
    assert render_prompt(char_tok, "What is 1 + 2?") == "Q: What is 1 + 2?\nA: "
    assert render_prompt(char_tok, "x", system_prompt="Be brief.") == "Be brief.\nQ: x\nA: "
