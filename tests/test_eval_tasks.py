"""Each benchmark kind on hand-made tiny datasets whose accuracy is known exactly (fixed-answer fake models)."""

import json
import time

import numpy as np
import pytest

from nemotron_jax.eval import code_exec, generative, ifeval, multiple_choice as mc, reward_bench
from nemotron_jax.eval.io import DatasetError


def _write(tmp_path, name, rows):
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return p


class FixedChoiceScorer:
    """Log-likelihood = -(number of characters) unless the continuation is the preferred one (then 0)."""

    def __init__(self, preferred):
        self.preferred = set(preferred)
        self.requests = []

    def loglikelihood(self, requests):
        self.requests += requests
        return [(0.0 if k in self.preferred else -float(len(k)), False) for _, k in requests]


class FixedAnswerGenerator:
    """Answers from a table keyed by a substring of the prompt's last question; records the prompts it saw."""

    def __init__(self, table):
        self.table, self.prompts = table, []

    def generate(self, prompts, *, max_tokens, stop=()):
        prompts = [generative.prompt_text(p) for p in prompts]  # chat conversations as the template text
        self.prompts += prompts
        last = [p.rsplit("Question:", 1)[-1].rsplit("User\n", 1)[-1] for p in prompts]  # not the k-shot examples
        return [next(v for k, v in self.table.items() if k in q) for q in last]


# ------------------------------------------------------------------------------------------------ multiple choice

MMLU = [{"question": f"Q{i}?", "choices": ["w", "x", "y", "z"], "answer": a, "subject": s}
        for i, (a, s) in enumerate([(0, "algebra"), ("A", "algebra"), (2, "algebra"), (3, "biology")])]


def test_mmlu_fixed_answer_accuracy_per_subject(tmp_path):
    items = mc.load_mc(_write(tmp_path, "mmlu.jsonl", MMLU))
    res = mc.evaluate_mc(FixedChoiceScorer({" A"}), items)  # always answers A
    assert res["acc"] == 0.5 and res["per_subject"]["algebra"]["acc"] == pytest.approx(2 / 3)
    assert res["per_subject"]["biology"]["acc"] == 0.0 and res["acc_macro"] == pytest.approx(1 / 3)


def test_mmlu_k_shot_prompt_uses_subject_header_and_other_items(tmp_path):
    items = mc.load_mc(_write(tmp_path, "mmlu.jsonl", MMLU))
    reqs = mc.build_requests(items, k=2, seed=0)
    ctx = reqs[0][0]
    assert ctx.startswith("The following are multiple choice questions (with answers) about algebra.\n\n")
    assert ctx.count("Answer:") == 3 and ctx.endswith("Q0?\nA. w\nB. x\nC. y\nD. z\nAnswer:")
    assert "Q0?\nA. w\nB. x\nC. y\nD. z\nAnswer: A" not in ctx  # the item never shows its own answer
    assert [k for _, k in reqs[:4]] == [" A", " B", " C", " D"]


def test_dev_split_fewshot_takes_the_subjects_first_k(tmp_path):
    items = mc.load_mc(_write(tmp_path, "mmlu.jsonl", MMLU))
    dev = mc.load_mc(_write(tmp_path, "dev.jsonl", [dict(MMLU[3], question="D1?"), dict(MMLU[0], question="D2?"),
                                                    dict(MMLU[1], question="D3?")]))
    ctx = mc.build_requests(items[:1], k=1, fewshot=dev)[0][0]
    assert "D2?" in ctx and "D1?" not in ctx and "D3?" not in ctx


def test_acc_norm_divides_by_continuation_characters(tmp_path):
    row = {"question": "q", "choices": {"text": ["aaaaaaaa", "b"], "label": ["A", "B"]}, "answerKey": "A"}
    items = mc.load_mc(_write(tmp_path, "arc.jsonl", [row]))

    class Scorer:
        def loglikelihood(self, requests):  # 8+1 chars at -0.5/char vs 1+1 chars at -2/char
            return [(-0.5 * len(k) if "a" in k else -2.0 * len(k), False) for _, k in requests]

    res = mc.evaluate_mc(Scorer(), items)
    assert res["acc"] == 0.0 and res["acc_norm"] == 1.0  # raw prefers the short one; per-char the right one


def test_arc_hellaswag_winogrande_shapes(tmp_path):
    rows = [{"question": "Sky?", "choices": {"text": ["blue", "red"], "label": ["1", "2"]}, "answerKey": "1"},
            {"ctx_a": "A man sits.", "ctx_b": "he", "activity_label": "Sitting", "endings": ["stands.", "eats."],
             "label": "1"},
            {"sentence": "The cup fell because _ was slippery.", "option1": "it", "option2": "the table",
             "answer": "1"}]
    arc, hs, wg = mc.load_mc(_write(tmp_path, "mixed.jsonl", rows))
    assert arc.contexts[0] == "Question: Sky?\nAnswer:" and arc.continuations == (" blue", " red") and arc.gold == 0
    assert hs.contexts[0] == "Sitting: A man sits. He" and hs.continuations[1] == " eats." and hs.gold == 1
    assert wg.contexts == ("The cup fell because it", "The cup fell because the table")
    assert wg.continuations == (" was slippery.",) * 2 and wg.gold == 0
    # Winogrande: the context that makes the shared rest most likely wins
    res = mc.evaluate_mc(FixedChoiceScorer(set()), [wg])
    assert res["n"] == 1


def test_mc_malformed_line_names_file_and_line(tmp_path):
    p = _write(tmp_path, "bad.jsonl", [MMLU[0], "{not json", MMLU[1]])
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: not valid JSON"):
        mc.load_mc(p)
    p = _write(tmp_path, "bad2.jsonl", [MMLU[0], MMLU[1], {"question": "q", "choices": ["a", "b"], "answer": "E"}])
    with pytest.raises(DatasetError, match=r"bad2\.jsonl:3: answer 'E'"):
        mc.load_mc(p)


# ------------------------------------------------------------------------------------------------ GSM8K


@pytest.mark.parametrize("text, want", [
    ("so 3 + 4 = 7\n#### 7", "7"), ("#### $1,234.50", "1234.5"), ("The answer is 72.0.", "72"),
    ("First 5 then 10, the answer is: -3", "-3"), ("I think 12 apples, no wait, 15", "15"),
    ("#### 18.", "18"), ("no digits here", None), ("Total: $0.50 and 2 more. The answer is $2,000", "2000"),
])
def test_answer_extraction(text, want):
    assert generative.extract_answer(text) == want


def test_gsm8k_fixed_answer_model(tmp_path):
    rows = [{"question": "A has 3, B has 4. Total?", "answer": "3+4=7\n#### 7"},
            {"question": "Twice 36?", "answer": "2*36=72\n#### 72"},
            {"question": "Cost of 1000 pens at $1.5?", "answer": "#### 1,500"}]
    items = generative.load_gsm8k(_write(tmp_path, "gsm.jsonl", rows))
    gen = FixedAnswerGenerator({"Total?": " 3 plus 4 is 7.\n#### 7\n\nQuestion: junk 99",
                                "Twice": " The answer is 70.", "pens": " It costs $1,500.00"})
    res = generative.evaluate_gsm8k(gen, items, k=1, seed=0)
    assert res["exact_match"] == pytest.approx(2 / 3)
    assert [r["pred"] for r in res["predictions"]] == ["7", "70", "1500"]
    assert gen.prompts[0].count("Question:") == 2 and gen.prompts[0].endswith("Total?\nAnswer:")


def test_gsm8k_missing_marker_is_reported(tmp_path):
    p = _write(tmp_path, "gsm.jsonl", [{"question": "q", "answer": "#### 1"}, {"question": "q", "answer": "x"}])
    with pytest.raises(DatasetError, match=r"gsm\.jsonl:2:"):
        generative.load_gsm8k(p)


# ------------------------------------------------------------------------------------------------ IFEval

IFE = [
    {"key": 1, "prompt": "Write about rain in lowercase.", "instruction_id_list": ["change_case:english_lowercase"],
     "kwargs": [{}]},
    {"key": 2, "prompt": "No commas, end with 'Bye.'", "instruction_id_list":
        ["punctuation:no_comma", "startend:end_checker"], "kwargs": [{"end_phrase": "Bye.", "num_words": None}, {}]},
    {"key": 3, "prompt": "No commas please.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
]


def test_ifeval_strict_vs_loose(tmp_path):
    rows = [dict(IFE[0]), dict(IFE[1], kwargs=[{}, {"end_phrase": "Bye."}]), dict(IFE[2])]
    items = ifeval.load_ifeval(_write(tmp_path, "ife.jsonl", rows))
    responses = [
        "Sure! Here it is:\nrain falls softly on the roof",  # first line has capitals: only loose passes
        "**Rain falls softly.** Bye.",  # no commas; ends with Bye. (strict passes both)
        "Okay, here goes:\nRain falls softly on the roof.\nHope that helps, friend!",  # commas only in 1st/last line
    ]
    res = ifeval.score_ifeval(items, responses)
    assert [r["strict"] for r in res["predictions"]] == [[False], [True, True], [False]]
    assert [r["loose"] for r in res["predictions"]] == [[True], [True, True], [True]]
    assert res["prompt_strict"] == pytest.approx(1 / 3) and res["prompt_loose"] == 1.0
    assert res["instruction_strict"] == pytest.approx(2 / 4) and res["instruction_loose"] == 1.0


def test_ifeval_semantics_with_a_crafted_checker():
    """Aggregation alone: a checker that follows only in loose mode for one id; prompt-level needs all."""
    items = [ifeval.IFEvalItem("a", "p", ("x", "y"), ({}, {})), ifeval.IFEvalItem("b", "p", ("x",), ({},))]
    checker = lambda iid, kw, resp, loose: iid == "x" or loose
    res = ifeval.score_ifeval(items, ["r", "r"], checker)
    assert res["prompt_strict"] == 0.5 and res["prompt_loose"] == 1.0
    assert res["instruction_strict"] == pytest.approx(2 / 3) and res["instruction_loose"] == 1.0


def test_ifeval_empty_response_never_follows(tmp_path):
    items = ifeval.load_ifeval(_write(tmp_path, "ife.jsonl", [IFE[2]]))
    res = ifeval.score_ifeval(items, ["   "])
    assert res["instruction_strict"] == 0.0 and res["instruction_loose"] == 0.0


def test_ifeval_bad_records_are_reported(tmp_path):
    p = _write(tmp_path, "ife.jsonl", [IFE[0], {"key": 9, "prompt": "p", "instruction_id_list": ["a", "b"],
                                                "kwargs": [{}]}])
    with pytest.raises(DatasetError, match=r"ife\.jsonl:2: instruction_id_list and kwargs"):
        ifeval.load_ifeval(p)
    p = _write(tmp_path, "ife2.jsonl", [dict(IFE[0], instruction_id_list=["no_such:thing"])])
    with pytest.raises(DatasetError, match="no_such:thing"):
        ifeval.load_ifeval(p)


def test_ifeval_generation_uses_chat_template_and_cuts_at_stop(tmp_path):
    items = ifeval.load_ifeval(_write(tmp_path, "ife.jsonl", [IFE[0]]))
    gen = FixedAnswerGenerator({"rain": "all lowercase here<extra_id_1>User\nMORE"})
    res = ifeval.evaluate_ifeval(gen, items)
    assert "<extra_id_1>User\nWrite about rain" in gen.prompts[0] and gen.prompts[0].endswith("Assistant\n")
    assert res["prompt_strict"] == 1.0


# ------------------------------------------------------------------------------------------------ RewardBench


class LengthReward:
    """A fixed reward model: longer responses score higher."""

    def reward(self, prompts, responses):
        return np.array([len(r) for r in responses], float)


def test_rewardbench_categories_and_overall(tmp_path):
    rows = ([{"prompt": "p", "chosen": "long answer", "rejected": "short", "subset": "alpacaeval-easy"}] * 3
            + [{"prompt": "p", "chosen": "no", "rejected": "longer", "subset": "mt-bench-hard"}] * 2
            + [{"prompt": "p", "chosen": "same", "rejected": "SAME", "subset": "donotanswer"}]  # tie: half
            + [{"prompt": "p", "chosen": "xx", "rejected": "x", "subset": "math-prm"}]  # 1 pair, weight of hep-*
            + [{"prompt": "p", "chosen": "x", "rejected": "xx", "subset": "hep-python"}] * 3
            + [{"prompt": "p", "chosen": "xx", "rejected": "x", "subset": "shp"}])
    res = reward_bench.evaluate_reward_model(LengthReward(), reward_bench.load_rewardbench(
        _write(tmp_path, "rb.jsonl", rows)))
    cat = res["per_category"]
    assert cat["chat"] == 1.0 and cat["chat-hard"] == 0.0 and cat["safety"] == 0.5
    assert cat["reasoning"] == pytest.approx(0.5)  # math-prm (1.0) weighted 3 like hep-python (0.0, 3 pairs)
    assert cat["prior-sets"] == 1.0 and res["overall"] == pytest.approx((1 + 0 + 0.5 + 0.5) / 4)


def test_rewardbench_unknown_subset_needs_category(tmp_path):
    p = _write(tmp_path, "rb.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b", "subset": "mine"}])
    with pytest.raises(DatasetError, match=r"rb\.jsonl:1: subset 'mine'"):
        reward_bench.load_rewardbench(p)
    p = _write(tmp_path, "rb2.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b", "category": "toy-math"}])
    assert reward_bench.load_rewardbench(p)[0].category == "toy-math"


# ------------------------------------------------------------------------------------------------ code execution

HUMANEVAL = [{"task_id": f"t/{i}", "prompt": "def add(a, b):\n    \"\"\"Add.\"\"\"\n",
              "test": "def check(f):\n    assert f(2, 3) == 5\n", "entry_point": "add"} for i in range(3)]


def test_humaneval_fixed_completions_pass_at_1(tmp_path):
    items = code_exec.load_code(_write(tmp_path, "he.jsonl", HUMANEVAL))
    gen = FixedAnswerGenerator({"def add": None})
    outs = iter(["    return a + b\n", "    return a - b\n", "    return a + b\n\ndef other():\n    pass\n"])
    gen.generate = lambda prompts, max_tokens, stop=(): [next(outs) for _ in prompts]
    res = code_exec.evaluate_code(gen, items, timeout_s=20)
    assert res["pass@1"] == pytest.approx(2 / 3)
    assert [p["status"][0] for p in res["predictions"]] == ["passed", "failed", "passed"]


def test_mbpp_shape_and_fenced_code():
    item = code_exec.parse_mbpp({"task_id": 1, "text": "Square x.", "test_list": ["assert sq(3) == 9"]}, "x")
    res = code_exec.score_code([item], [["Here:\n```python\ndef sq(x):\n    return x * x\n```\nDone."]])
    assert res["pass@1"] == 1.0


def test_time_limit_is_enforced():
    start = time.monotonic()
    res = code_exec.run_program("while True:\n    pass\n", timeout_s=1.0)
    assert res.status == "timeout" and not res.passed and time.monotonic() - start < 5


def test_memory_limit_is_enforced():
    res = code_exec.run_program("x = bytearray(2_000_000_000)\n", timeout_s=10, memory_mb=256)
    assert res.status == "failed" and "MemoryError" in res.detail


def test_pass_at_k_matches_enumeration():
    from itertools import combinations
    n, c = 6, 2
    for k in (1, 2, 3, 5):
        subsets = list(combinations(range(n), k))
        brute = np.mean([any(i < c for i in s) for s in subsets])
        assert code_exec.pass_at_k(n, c, k) == pytest.approx(brute)
