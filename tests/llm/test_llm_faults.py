"""The LM commands keep the promises of docs "Faults and resume" for their own inputs: a preference file's text is
read exactly or refused in one line naming its line (generated strings, lone surrogates among them);
``ppo-bench-llm-eval`` checks that its output can be written before it evaluates; a run whose preference file is
gone resumes from the pairs its folder holds."""

import json

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ppo_bench.common.errors import ConfigError
from ppo_bench.llm import evaluate_run as evaluate_mod
from ppo_bench.llm.harness.preferences import PreferencePair, read_jsonl, write_jsonl
from ppo_bench.llm.launch import build_trainer

TINY = ["model=tiny", "model.tiny_hidden=32", "model.tiny_heads=2", "task.n_eval=4", "eval.every=0",
        "eval.batch_size=4", "eval.max_new_tokens=4", "algo.max_completion_length=4", "save_model=false",
        "torch_threads=1"]


# a field's text: any characters, in some files lone surrogates among them (what a JSON "\\ud800" escape decodes to)
FIELD = st.text(max_size=6) | st.lists(st.characters() | st.characters(categories=["Cs"]), max_size=6).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(*[FIELD] * 3), min_size=1, max_size=2), st.booleans())
def test_a_preference_file_is_read_exactly_or_refused_naming_its_line(tmp_path_factory, records, ascii_escapes):
    path = tmp_path_factory.mktemp("prefs") / "p.jsonl"
    lines = [json.dumps({"prompt": p, "chosen": c, "rejected": r}, ensure_ascii=ascii_escapes) for p, c, r in records]
    try:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
        pairs = read_jsonl(path)
    except ConfigError as e:
        assert "\n" not in str(e) and str(e).startswith(f"{path}:")
        event("refused: " + ("invalid Unicode" if "Unicode" in str(e) else "not UTF-8" if "UTF-8" in str(e) else
                             "empty field" if "non-empty" in str(e) else "other"))
        return
    event("read")
    kept = [(d["prompt"], d["chosen"], d["rejected"]) for d in map(json.loads, lines)]  # what the file says (a JSON
    # escape of a surrogate pair is the one character it encodes)
    assert [(x.prompt, x.chosen, x.rejected) for x in pairs] == kept
    assert all(s and s.encode("utf-8") for rec in kept for s in rec)  # text, every field: what a tokenizer takes


@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory):
    """A DPO run on a preference file, stopped after its first checkpoint (of 2 steps), as if killed."""
    from hydra import compose, initialize_config_dir

    from ppo_bench.common.paths import LLM_CONF_DIR
    from ppo_bench.llm.harness.config import register_configs

    register_configs()
    root = tmp_path_factory.mktemp("dpo")
    pairs = [PreferencePair(f"Q: {a}?\nA: ", str(a), "x" * (1 + a % 3)) for a in range(6)]
    write_jsonl(root / "prefs.jsonl", pairs)

    def cfg(*overrides):
        with initialize_config_dir(str(LLM_CONF_DIR), version_base="1.3"):
            return compose("config", overrides=[f"run_root={root}/runs", "progress=never", *TINY, "algo=dpo",
                                                f"algo.data_file={root}/prefs.jsonl", "algo.batch_size=2",
                                                "checkpoint_every=1", *overrides])

    first = build_trainer(cfg("algo.steps=2"))
    first.a.steps = 1
    first.train()
    return root, cfg, first


def test_a_run_whose_preference_file_is_gone_resumes_from_its_own_pairs(dpo_run):
    root, cfg, first = dpo_run
    (root / "prefs.jsonl").rename(root / "prefs.moved")
    try:
        second = build_trainer(cfg("algo.steps=2", "resume=true"))
        second.train()
        assert second.step == 2 and second.algorithm.pairs == first.algorithm.pairs
        with pytest.raises(ConfigError, match="no such file"):  # a run started afresh still needs the file
            build_trainer(cfg("algo.steps=2", "resume=true", f"run_root={root}/elsewhere"))
    finally:
        (root / "prefs.moved").rename(root / "prefs.jsonl")


@pytest.mark.parametrize("kind", ["under_a_file", "a_folder", "kernel_only"])
def test_llm_eval_checks_its_output_before_evaluating(dpo_run, tmp_path, capsys, monkeypatch, kind):
    _, _, first = dpo_run
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_folder").mkdir()
    out = {"under_a_file": tmp_path / "a_file" / "eval.json", "a_folder": tmp_path / "a_folder",
           "kernel_only": "/sys/eval.json"}[kind]
    monkeypatch.setattr(evaluate_mod, "evaluate_run", lambda *a, **k: pytest.fail("evaluated before the check"))
    assert evaluate_mod.main([str(first.run_dir), "--json", str(out)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith(f"error: cannot write {out}: "), err
