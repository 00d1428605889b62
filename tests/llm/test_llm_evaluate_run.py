"""ppo-bench-llm-eval: each figure on a case worked by hand or by a brute-force loop, on tiny runs trained here;
bad input as one line and exit code 2."""

import json
import math

import pytest
import torch

from ppo_bench.llm.harness.evaluate import kl_to_reference, perplexity, preference_figures, win_rate
from ppo_bench.llm.evaluate_run import evaluate_run, main
from ppo_bench.llm.harness.models import load_model, load_tokenizer, tiny_model
from ppo_bench.llm.harness.batches import collate
from ppo_bench.llm.harness.preferences import PreferencePair, tokenize_pairs, write_jsonl
from ppo_bench.llm.harness.reward_models import pair_scores
from ppo_bench.llm.harness.sampling import generate
from ppo_bench.llm.harness.tasks import make_task, render_prompt
from ppo_bench.llm.launch import build_trainer

torch.set_num_threads(1)


# ---- the figures by hand -----------------------------------------------------------------------------


def test_win_rate_by_hand():
    # wins at 0 and 4 (only the policy right), a loss at 3 (only the reference), ties at 1 and 2
    res = win_rate([1.0, 0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0, 0.0])
    assert res == {"wins": 2, "ties": 2, "losses": 1, "win_rate": (2 + 2 / 2) / 5}
    with pytest.raises(ValueError):
        win_rate([1.0], [1.0, 0.0])


def test_perplexity_by_hand():
    # two responses: 1 token at log-prob −2, 3 tokens summing to −4: exp(6 / 4)
    assert perplexity(torch.tensor([-2.0, -4.0]), [1, 3]) == pytest.approx(math.exp(1.5))


def test_preference_figures_by_hand():
    pc, pr = torch.tensor([-1.0, -5.0]), torch.tensor([-3.0, -2.0])
    rc, rr = torch.tensor([-2.0, -4.0]), torch.tensor([-2.0, -2.5])
    # log-ratios: y⁺ 1 and −1, y⁻ −1 and 0.5; pair 1 ranked right, pair 2 wrong
    got = preference_figures(pc, pr, rc, rr)
    assert got == pytest.approx({"accuracy": 0.5, "margin": (2.0 - 1.5) / 2, "chosen_change": 0.0, "rejected_change": -0.25})
    # reference-free: log π alone ranks (−1 > −3 right, −5 > −2 wrong); margins 2 and −3
    free = preference_figures(pc, pr, rc, rr, reference_free=True)
    assert free["accuracy"] == 0.5 and free["margin"] == pytest.approx(-0.5)
    # a tie is not a win: the starting policy ranks nothing
    assert preference_figures(rc, rr, rc, rr)["accuracy"] == 0.0


@pytest.fixture(scope="module")
def two_models(char_tok):
    a = tiny_model(char_tok, hidden=32, layers=2, heads=2, context=128, seed=0).eval()
    b = tiny_model(char_tok, hidden=32, layers=2, heads=2, context=128, seed=1).eval()
    return a, b


def test_kl_to_reference_against_a_brute_force_loop(two_models, char_tok):
    policy, reference = two_models
    torch.manual_seed(0)
    comp = generate(policy, char_tok, ["Q: 1+2?\nA: ", "Q: What is 40 + 2?\nA: "], n=2, max_new_tokens=5, temperature=1.0,
                    eos_ids=[char_tok.eos_token_id])
    exact, k1 = kl_to_reference(policy, reference, comp, micro_batch_size=3)
    P = comp.prompt_ids.shape[1]
    for row in range(comp.input_ids.shape[0]):
        keep = comp.prompt_mask[row].bool()
        prompt = comp.prompt_ids[row][keep].tolist()
        n = int(comp.completion_mask[row].sum())
        completion = comp.input_ids[row, P:P + n].tolist()
        ids = torch.tensor([prompt + completion])
        with torch.no_grad():
            lp = torch.log_softmax(policy(input_ids=ids).logits[0].float(), -1)
            lr = torch.log_softmax(reference(input_ids=ids).logits[0].float(), -1)
        want_exact = want_k1 = 0.0
        for t, token in enumerate(completion):  # position len(prompt) + t − 1 predicts completion token t
            pos = len(prompt) + t - 1
            want_exact += (lp[pos].exp() * (lp[pos] - lr[pos])).sum().item()
            want_k1 += (lp[pos, token] - lr[pos, token]).item()
        assert exact[row].item() == pytest.approx(want_exact, abs=1e-4)
        assert k1[row].item() == pytest.approx(want_k1, abs=1e-4)
    assert (exact > 0).all()
    same_exact, same_k1 = kl_to_reference(policy, policy, comp)
    assert same_exact.abs().max() == 0 and same_k1.abs().max() == 0


# ---- a trained run, evaluated ------------------------------------------------------------------------

TINY = ["model=tiny", "task.n_eval=6", "eval.every=0", "eval.batch_size=6", "eval.max_new_tokens=4", "torch_threads=1",
        "model.tiny_hidden=32", "model.tiny_heads=2"]


def planted_pairs(n=12):
    """Digits preferred over letters after a question: a preference a random tiny model does not hold."""
    return [PreferencePair(f"Q: What is {a} + {a + 3}?\nA: ", str(2 * a + 3), "abc"[a % 3] * (1 + a % 2)) for a in range(n)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A DPO run (weights in checkpoint.pt only) and a reward-model run (model/ with its head), on planted pairs."""
    from hydra import compose, initialize_config_dir

    from ppo_bench.common.paths import LLM_CONF_DIR
    from ppo_bench.llm.harness.config import register_configs

    register_configs()
    root = tmp_path_factory.mktemp("eval_runs")
    write_jsonl(root / "prefs.jsonl", planted_pairs())

    def cfg(*overrides):
        with initialize_config_dir(str(LLM_CONF_DIR), version_base="1.3"):
            return compose("config", overrides=[f"run_root={root}/runs", "progress=never", *TINY, *overrides])

    dpo = build_trainer(cfg("algo=dpo", f"algo.data_file={root}/prefs.jsonl", "algo.steps=12", "algo.batch_size=6",
                            "algo.micro_batch_size=3", "algo.lr=3e-3", "algo.beta=0.5", "save_model=false"))
    dpo_summary = dpo.train()
    rm = build_trainer(cfg("algo=reward_model", f"algo.data_file={root}/prefs.jsonl", "algo.steps=12", "algo.batch_size=6",
                           "algo.lr=3e-3", "algo.eval_fraction=0.25"))
    rm.train()
    return {"root": root, "dpo": dpo, "dpo_summary": dpo_summary, "rm": rm}


def brute_force_perplexity(model, tok, cfg, n) -> float:
    """exp(mean NLL) of the held-out answers + EOS, one unpadded sequence and one token at a time."""
    task = make_task(cfg.task)
    nll, tokens = 0.0, 0
    for e in task.eval_split()[:n]:
        prompt = tok(render_prompt(tok, e.question, cfg.task.chat, cfg.task.system_prompt), add_special_tokens=False).input_ids
        answer = tok(e.answer, add_special_tokens=False).input_ids + [tok.eos_token_id]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([prompt + answer])).logits[0].float(), -1)
        for t, token in enumerate(answer):
            nll -= logp[len(prompt) + t - 1, token].item()
            tokens += 1
    return math.exp(nll / tokens)


def test_evaluation_of_a_dpo_run(runs, tmp_path):
    dpo, summary = runs["dpo"], runs["dpo_summary"]
    res = evaluate_run(dpo.run_dir, pairs_file=str(runs["root"] / "prefs.jsonl"), kl_samples=2, reference_cache=tmp_path / "cache")
    assert res["weights"] == "checkpoint.pt" and res["algo"] == "dpo" and res["steps"] == 12 and res["n_eval"] == 6
    # greedy accuracy: the same decoding as the run's own final evaluation
    assert res["accuracy"]["policy"] == summary["acc_after"] and res["accuracy"]["reference"] == summary["acc_before"]
    assert res["win_rate"] == win_rate(res["correct"]["policy"], res["correct"]["reference"])
    # preference accuracy on the planted (training) pairs: DPO's own reward accuracy over them, by the same ranking
    after = summary["train_pairs_after"]
    assert res["preferences"]["accuracy"] == pytest.approx(after["rewards/accuracies"])
    assert res["preferences"]["chosen_change"] == pytest.approx(after["logps/chosen_change"], abs=1e-3)
    assert res["preferences"]["rejected_change"] == pytest.approx(after["logps/rejected_change"], abs=1e-3)
    assert res["preferences"]["accuracy"] >= 0.9 and res["preferences"]["pairs"] == 12
    # perplexity of the held-out answers, after (the trained policy) and before (the starting model)
    tok = load_tokenizer(dpo.cfg.model)
    assert res["perplexity"]["policy"] == pytest.approx(brute_force_perplexity(dpo.model.eval(), tok, dpo.cfg, 6), rel=1e-4)
    reference = load_model(dpo.cfg.model, tok, torch.device("cpu"), torch.float32, seed=dpo.cfg.seed, trainable=False)
    assert res["perplexity"]["reference"] == pytest.approx(brute_force_perplexity(reference, tok, dpo.cfg, 6), rel=1e-4)
    assert res["kl_to_reference"]["sequences"] == 12 and res["kl_to_reference"]["exact"] > 0
    assert res["reward_model"] is None and res["completion_length"]["policy"] > 0
    # the reference's side was kept and is read back: the same figures
    assert len(list((tmp_path / "cache").glob("reference_*.json"))) == 1
    again = evaluate_run(dpo.run_dir, pairs_file=str(runs["root"] / "prefs.jsonl"), kl_samples=2, reference_cache=tmp_path / "cache")
    for key in ("accuracy", "perplexity", "preferences", "kl_to_reference", "win_rate"):
        assert again[key] == res[key], key


def test_default_pairs_are_the_references_wrong_answers(runs):
    res = evaluate_run(runs["dpo"].run_dir, kl_samples=0)
    wrong = sum(v <= 0 for v in res["correct"]["reference"])
    assert res["preferences"]["pairs"] == wrong and res["kl_to_reference"] is None
    assert "gets wrong" in res["preferences"]["source"]


def test_reward_model_figures(runs):
    rm = runs["rm"]
    res = evaluate_run(rm.run_dir, pairs_file=str(runs["root"] / "prefs.jsonl"))
    assert res["weights"] == "model/" and res["accuracy"]["policy"] is None and res["preferences"] is None
    figures = res["reward_model"]
    # by hand: the trained head on the last hidden state of each response, y⁺ against y⁻
    tok = rm.tok
    batch = collate(tokenize_pairs(tok, planted_pairs(), tok.eos_token_id), tok.pad_token_id)
    with torch.no_grad():
        chosen, rejected = pair_scores(rm.model.eval(), rm.algorithm.head, batch)
    assert figures["pair_accuracy"] == pytest.approx((chosen > rejected).float().mean().item())
    assert figures["pair_margin"] == pytest.approx((chosen - rejected).mean().item(), abs=1e-4)
    assert figures["pair_accuracy"] >= 0.9
    # any run scored by that reward model: its greedy answers get a score
    scored = evaluate_run(runs["dpo"].run_dir, reward_model=str(rm.run_dir / "model"), kl_samples=0)
    assert set(scored["reward_model"]) >= {"policy_score", "reference_score", "answer_score", "pair_accuracy"}


def test_the_command_writes_the_json_and_reports_bad_input_in_one_line(runs, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main([str(runs["dpo"].run_dir), "--json", str(out), "--kl-samples", "1"]) == 0
    assert json.loads(out.read_text())["n_eval"] == 6
    assert "held-out accuracy" in capsys.readouterr().out

    not_lm = tmp_path / "mujoco_run"
    not_lm.mkdir()
    (not_lm / "config.yaml").write_text("env:\n  id: Hopper-v5\nalgo:\n  name: ppo\n")
    no_weights = tmp_path / "fresh_run"
    no_weights.mkdir()
    (no_weights / "config.yaml").write_text((runs["dpo"].run_dir / "config.yaml").read_text())
    bad_pairs = tmp_path / "bad.jsonl"
    bad_pairs.write_text('{"prompt": "x", "chosen": "y"}\n')
    for argv, message in [([str(tmp_path / "nowhere")], "no such run folder"),
                          ([str(not_lm)], "is not a ppo-bench-llm run folder"),
                          ([str(tmp_path)], "is not a ppo-bench-llm run folder"),
                          ([str(no_weights)], "holds no trained weights"),
                          ([str(runs["dpo"].run_dir), "--pairs", str(bad_pairs)], "bad.jsonl:1: missing field 'rejected'"),
                          ([str(runs["dpo"].run_dir), "--reward-model", str(tmp_path)], "no reward_head.pt there"),
                          ([str(runs["dpo"].run_dir), "--n", "0"], "--n=0 must be >= 1")]:
        assert main(argv) == 2, argv
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(err) == 1 and message in err[0], (argv, err)
