"""The toy world: determinism, held-out disjointness, oracle/flawed responses, HelpSteer rules, blend, file shapes."""

import collections
import json
import math
import random
import re
import subprocess
import sys

import pytest

from nemotron_jax.config import ConfigError, ToyWorldConfig
from nemotron_jax.data import toyworld as T
from nemotron_jax.data.toyworld import programs
from nemotron_jax.data.toyworld.export import (STAGE_FILES, build_toy_data, pretrain_data, quick_config, source_texts,
                                               write_run_data)
from nemotron_jax.data.toyworld.instructions import ToyPrompt, make_prompt
from nemotron_jax.data.toyworld.responses import looks_coherent
from nemotron_jax.data.toyworld.tasks import TaskItem
from nemotron_jax.data.toyworld.text import english_vocabulary
from nemotron_jax.sdg import instructions as registry


@pytest.fixture(scope="module")
def tw():
    return T.ToyWorld(seed=7)


def _ids(records):
    return {r["meta"]["id"] for r in records}


# ---- determinism ---------------------------------------------------------------------------------------------------

def test_same_seed_same_data_different_seed_different():
    a, b, c = T.ToyWorld(3), T.ToyWorld(3), T.ToyWorld(4)
    assert list(a.documents(50_000)) == list(b.documents(50_000))
    assert a.general_sft(200, instructed_share=0.3) == b.general_sft(200, instructed_share=0.3)
    assert a.helpsteer(100) == b.helpsteer(100)
    assert a.eval_ifeval(20) == b.eval_ifeval(20)
    assert a.code_sft(20) == b.code_sft(20)
    assert list(a.documents(50_000)) != list(c.documents(50_000))
    assert a.general_sft(200) != c.general_sft(200)


# ---- splits --------------------------------------------------------------------------------------------------------

def test_heldout_items_never_appear_in_training_records(tw):
    train = (_ids(tw.general_sft(800, instructed_share=0.5)) | _ids(tw.code_sft(100))
             | _ids(tw.preference_pairs(300)) | _ids(tw.helpsteer(300)) | _ids(tw.preference_prompts(300)))
    evals = ({r["id"] for r in tw.eval_tasks(30, tasks=T.ALL_TASKS[:-1])} | _ids(tw.eval_ifeval(60))
             | _ids(tw.rm_pairs(60)) | _ids(tw.helpsteer(100, split="heldout")))
    assert train and evals and not train & evals
    assert all(T.split_of(7, i, 0.2) == "train" for i in train)
    assert all(T.split_of(7, i, 0.2) == "heldout" for i in evals)


def test_split_share_matches_heldout_fraction():
    ids = [f"x/{i}" for i in range(20_000)]
    share = sum(T.split_of(0, i, 0.2) == "heldout" for i in ids) / len(ids)
    assert abs(share - 0.2) < 0.01


def test_quiz_documents_never_ask_heldout_questions(tw):
    corpus = "\n".join(d["text"] for d in tw.documents(400_000, blend={"english": 1.0}))
    for task in T.LEARNABLE_TASKS:
        held = tw.items(task, 40, split="heldout", unique=True)
        train = tw.items(task, 40, split="train", unique=True)
        assert held and not any(f"Q: {it.prompt}\nA: " in corpus for it in held), task
        assert any(f"Q: {it.prompt}\nA: {it.answer}\n" in corpus for it in train), task  # quiz sheets exist
    held = tw.items("fact_recall", 40, split="heldout", unique=True)
    # but every held-out fact is stated in the corpus (it is world knowledge)
    for it in held:
        subject = it.id.split("/")[1].split("|")[0]
        assert any(subject in line and it.answer in line for line in corpus.split(". ")), it.id


def test_english_mix_quiz_is_task_balanced_and_chat_exchanges_ask_training_items_only(tw):
    docs = [d["text"] for d in tw.documents(200_000, blend={"english": 1.0}, english_mix={"quiz": 1, "chat_qa": 1})]
    chats = [d for d in docs if d.startswith("<extra_id_0>System")]
    assert 0.3 < len(chats) / len(docs) < 0.7  # each kind drawn with its weight
    questions = [q for d in docs if not d.startswith("<extra_id_0>")
                 for q in re.findall(r"^Q: (.*)$", d, flags=re.M)]
    def task_of(q: str) -> str:
        for pattern, task in (("How many times", "letter_count"), ("capital letters", "uppercase"),
                              ("backwards", "reverse"), (r"What is \d \+ \d\?", "sum_1digit")):
            if re.match(pattern, q) or pattern in q:
                return task
        return "fact_recall"

    per_task = collections.Counter(map(task_of, questions))
    # letter counts have ~6x more training items than sums, yet each task gets about a fifth of the lines
    assert all(0.14 < per_task[t] / len(questions) < 0.26 for t in T.LEARNABLE_TASKS), per_task
    asked = {q for c in chats for q in re.findall(r"User\n(.*)\n", c)}
    assert sum(c.count("<extra_id_1>Assistant") for c in chats) >= 3 * len(chats)  # conversations, 3-6 exchanges
    held = {it.prompt for t in T.LEARNABLE_TASKS for it in tw.items(t, 60, split="heldout", unique=True)}
    assert asked and not asked & held
    with pytest.raises(ValueError, match="english mix"):
        list(tw.documents(1000, english_mix={"poems": 1.0}))


# ---- oracle and flawed responses -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def instructed(tw):
    return tw.prompts(400, tasks=T.ALL_TASKS[:-1], instructed_share=1.0)


def test_every_oracle_passes_its_checker_and_verifiers(tw, instructed):
    assert all(p.instruction_id_list for p in instructed)
    assert {i for p in instructed for i in p.instruction_id_list} == set(T.TOY_INSTRUCTIONS)
    for p in instructed + tw.prompts(100, tasks=T.ALL_TASKS[:-1]):
        oracle = T.oracle_response(p)
        assert p.item.check(oracle), (p.text, oracle)
        assert all(registry.follows(p.instruction_id_list, p.kwargs, oracle)), (p.text, oracle)


def test_code_write_oracle_passes_tests_and_wrong_code_fails(tw):
    for it in tw.items("code_write", 3):
        assert it.check(it.answer)
        assert not it.check(it.distractors[0])
        assert not it.check("")
    assert not programs.passes_tests("while True:\n    pass", it.function, timeout_s=1.0)  # time limit holds


def test_flawed_responses_break_exactly_their_property(instructed):
    rng = random.Random(0)
    for p in instructed[:200]:
        wrong = T.make_response(p, "wrong_answer", rng).text
        assert not p.item.check(wrong) and all(p.follows(wrong)), (p.text, wrong)
        for k, iid in enumerate(p.instruction_id_list):
            broken = T.breaking_response(p, iid)
            verdicts = p.follows(broken)
            assert p.item.check(broken), (p.text, broken)
            assert not verdicts[k] and all(v for j, v in enumerate(verdicts) if j != k), (p.text, iid, broken)
        salad = T.make_response(p, "incoherent", rng)
        assert not salad.coherent and not p.item.check(salad.text) and not looks_coherent(salad.text)
        verbose = T.make_response(p, "verbose", rng).text
        assert p.item.check(verbose)
        a = T.assess(p, verbose)
        assert a.n_words > a.ideal_words + 8 and looks_coherent(verbose)
        verbose_wrong = T.make_response(p, "verbose_wrong", rng).text
        a = T.assess(p, verbose_wrong)
        assert not a.correct and a.n_words > a.ideal_words + 8 and looks_coherent(verbose_wrong), verbose_wrong
        if p.item.answer in p.item.explanation:  # the explanation restates the given (wrong) answer
            assert p.item.explanation not in verbose_wrong


def test_verbose_wrong_restates_its_own_answer():
    item = TaskItem("fact_recall", "fact_recall/Zo|pet", "What pet does Zo have?", "cat", "Zo has a pet cat.",
                    ("dog",), 1)
    p = make_prompt(item, random.Random(0), n_instructions=0)
    text = T.make_response(p, "verbose_wrong", random.Random(0)).text
    assert text.startswith("dog\nZo has a pet dog.\n") and "cat" not in text


def test_helpsteer_gives_each_prompt_responses_of_different_kinds(tw):
    rows = tw.helpsteer(600, instructed_share=0.6, responses_per_prompt=2, broken_share=0.4)
    assert len(rows) == 600
    pairs = list(zip(rows[0::2], rows[1::2]))
    assert all(a["prompt"] == b["prompt"] and a["meta"]["kind"] != b["meta"]["kind"] for a, b in pairs)
    kinds = collections.Counter(r["meta"]["kind"] for r in rows)
    assert set(kinds) == set(T.RESPONSE_KINDS)
    # verbosity no longer predicts correctness: long answers are wrong about as often as short ones
    long_rows = [r for r in rows if r["verbosity"] >= 3 and r["coherence"] == 4]
    assert 0.35 < sum(r["correctness"] == 0 for r in long_rows) / len(long_rows) < 0.65
    instructed = sum(1 for a, _ in pairs if a["meta"]["instruction_id_list"])
    # P(some response breaks an instruction | instructed) = 1 - 0.6^2
    broken = [r for r in rows if r["meta"]["kind"] in T.BREAKING_KINDS]
    assert abs(len(broken) / instructed - 0.64) < 0.1
    # nor does a missing format predict correctness
    assert 0.35 < sum(r["correctness"] == 0 for r in broken) / len(broken) < 0.65


# ---- answer reading ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("response,expected", [
    ("7", "7"), ("  7.  ", "7"), ('{"answer": "7"}', "7"), ('```json\n{"ANSWER": 7}\n```', "7"),
    ('"7"', "7"), ('"7\nAny other questions?"', "7"), ("<<My Answer>>\n7\n\nP.S. hi", "7"),
    ("7\nI added 3 and 4.", "7"), ("The answer is 7.", "The answer is 7"), ("", None), ('{"x": 1}', None),
])
def test_extract_answer(response, expected):
    assert T.extract_answer(response) == expected


def test_checker_case_rules():
    up = TaskItem("uppercase", "uppercase/lamp", "Write lamp in capital letters.", "LAMP", "", (), 1, True)
    rev = TaskItem("reverse", "reverse/lamp", "Write the word lamp backwards.", "pmal", "", (), 1)
    assert up.check("LAMP") and not up.check("lamp") and not up.check("Lamp")
    assert rev.check("PMAL") and rev.check('{"answer": "pmal"}') and not rev.check("lamp")


# ---- HelpSteer rules -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("assessment,labels", [
    # correct, followed, coherent, words, ideal words, complexity -> h, c, coh, cx, v (rules in responses.py)
    (T.Assessment(True, (True,), True, 1, 1, 1), (4, 4, 4, 1, 1)),
    (T.Assessment(False, (True,), True, 1, 1, 1), (1, 0, 4, 1, 1)),
    (T.Assessment(True, (True, False), True, 12, 1, 2), (2, 4, 4, 2, 3)),  # -ceil(2*1/2) -1 for verbosity 3
    (T.Assessment(True, (False,), True, 3, 1, 2), (2, 4, 4, 2, 1)),
    (T.Assessment(False, (False,), True, 1, 1, 0), (0, 0, 4, 0, 1)),  # 1 - 2 clipped at 0
    (T.Assessment(True, (), True, 30, 1, 3), (3, 4, 4, 3, 4)),
    (T.Assessment(False, (), False, 9, 1, 1), (0, 0, 1, 1, 2)),
    (T.Assessment(False, (), True, 0, 1, 1), (1, 0, 4, 1, 0)),
])
def test_helpsteer_labels_follow_the_rules(assessment, labels):
    got = T.helpsteer_labels(assessment)
    assert tuple(got[a] for a in ("helpfulness", "correctness", "coherence", "complexity", "verbosity")) == labels


def test_labels_of_hand_written_responses_and_reward():
    item = TaskItem("sum_1digit", "sum_1digit/3+4", "What is 3 + 4?", "7", "Adding 3 and 4 gives 7.", ("8",), 0)
    p = ToyPrompt(item, ("punctuation:no_comma",), ({},))
    assert p.text == "What is 3 + 4? In your entire response, refrain from the use of any commas."
    oracle = T.helpsteer_labels(T.assess(p, "7"))
    assert oracle == {"helpfulness": 4, "correctness": 4, "coherence": 4, "complexity": 1, "verbosity": 1}
    assert T.scalar_reward(oracle) == pytest.approx(0.3 * 4 + 0.74 * 4 + 0.46 * 4 + 0.47 * 1 - 0.33 * 1)
    comma = T.helpsteer_labels(T.assess(p, "7\nSure, that is it."))  # 5 words: 4 extra -> verbosity 2
    assert comma == {"helpfulness": 2, "correctness": 4, "coherence": 4, "complexity": 1, "verbosity": 2}
    wrong = T.helpsteer_labels(T.assess(p, "8"))
    assert wrong["correctness"] == 0 and wrong["helpfulness"] == 1
    salad = T.helpsteer_labels(T.assess(p, "7 7 7 gives gives"))
    assert salad["coherence"] == 1 and salad["helpfulness"] == 0


def test_rm_pairs_differ_in_the_named_attribute(tw):
    pairs = tw.rm_pairs(80)
    assert collections.Counter(r["subset"] for r in pairs) == {a: 20 for a in T.PAIR_ATTRIBUTES}
    for r in pairs:
        p = T.prompt_from_meta(r["meta"])
        c, j = T.assess(p, r["chosen"]), T.assess(p, r["rejected"], coherent=r["subset"] != "coherence")
        assert c.correct and all(c.followed) and r["chosen_reward"] > r["rejected_reward"]
        if r["subset"] == "correctness":
            assert not j.correct and all(j.followed)
        elif r["subset"] == "instruction":
            assert j.correct and not all(j.followed)
        elif r["subset"] == "verbosity":
            assert j.correct and all(j.followed) and j.n_words > c.n_words + 8
        else:
            assert not j.correct and not looks_coherent(r["rejected"])


def test_judge_scores_prompt_records(tw):
    recs = tw.preference_prompts(20)
    assert len({r["id"] for r in recs}) == 20  # unique SDG item ids
    rec = next(r for r in recs if r["instruction_ids"])
    p = T.prompt_from_meta(rec["meta"])
    assert p.text == rec["prompt"] == rec["messages"][0]["content"] and rec["answer"] == p.item.answer
    assert registry.follows(rec["instruction_ids"], rec["instruction_kwargs"], T.oracle_response(p))
    good, bad = T.ToyWorld.judge(rec, T.oracle_response(p)), T.ToyWorld.judge(rec, "no idea, sorry")
    assert good["correct"] and all(good["followed"]) and good["helpfulness"] == 4
    assert not bad["correct"] and bad["reward"] < good["reward"]
    with pytest.raises(ValueError, match="no toy-world 'meta'"):
        T.ToyWorld.judge({"id": "x", "prompt": "hi"}, "7")


# ---- corpus --------------------------------------------------------------------------------------------------------

def test_corpus_blend_is_70_15_15_by_characters(tw):
    chars = collections.Counter()
    for d in tw.documents(600_000):
        chars[d["source"]] += len(d["text"])
    total = sum(chars.values())
    assert total >= 600_000
    for source, share in T.DEFAULT_BLEND.items():
        assert abs(chars[source] / total - share) < 0.01, chars
    other = collections.Counter()
    for d in tw.documents(200_000, blend={"english": 1, "code": 3}):
        other[d["source"]] += len(d["text"])
    assert set(other) == {"english", "code"} and abs(other["code"] / sum(other.values()) - 0.75) < 0.02
    with pytest.raises(ValueError, match="subset of"):
        next(tw.documents(10, blend={"french": 1.0}))


def test_lingo_is_a_consistent_lexicon(tw):
    lex = tw.lexicon
    assert len(set(lex.values())) == len(lex)  # a bijection
    assert not set(lex.values()) & english_vocabulary()
    person = tw.world.people[0]
    docs = [d["text"] for d in tw.documents(300_000, blend={"lingo": 1.0})]
    bios = [d for d in docs if person.name in d]
    assert bios and all(lex[person.job] in d for d in bios if f"{person.name} {lex[person.job]}" in d)
    assert any(lex[person.job] in d and lex[person.pet] in d for d in bios)
    assert not any(w in {"lives", "works", "the"} for d in docs[:50] for w in d.lower().split())


def test_program_answers_match_a_real_python_run(tw):
    items = tw.items("program_trace", 6)
    src = "\n".join(f"exec({it.prompt.split(chr(10), 1)[1]!r})" for it in items)
    out = subprocess.run([sys.executable, "-I", "-c", src], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:-1] == [it.answer for it in items]
    doc = programs.code_document(random.Random(1), 4)
    compile(doc, "<doc>", "exec")  # code documents are valid Python


# ---- files and other owners' readers -------------------------------------------------------------------------------

def test_run_data_files_load_with_the_project_readers(tmp_path):
    from nemotron_jax.data import chat
    from nemotron_jax.eval import code_exec, ifeval, multiple_choice, reward_bench
    from nemotron_jax.eval.io import load_jsonl

    cfg = ToyWorldConfig(seed=1, pretrain_chars=60_000, tokenizer_chars=20_000, code_sft=20, general_sft=50,
                         preference_prompts=20, preference_pairs=20, helpsteer=30, helpsteer_val=10,
                         eval_per_task=5, eval_ifeval=10, eval_mc=10, eval_code=3, eval_rm_pairs=8)
    m = write_run_data(cfg, tmp_path)
    d = tmp_path / "data"
    assert json.loads((d / "manifest.json").read_text())["records"] == m["records"]
    assert abs(m["pretrain_chars"]["english"] / sum(m["pretrain_chars"].values()) - 0.7) < 0.02
    assert len(chat.read_chat_jsonl(d / STAGE_FILES["sft_general"])) == 50
    assert len(chat.read_chat_jsonl(d / STAGE_FILES["sft_code"])) == 20
    assert len(chat.read_preference_jsonl(d / STAGE_FILES["preference_pairs"], require_rewards=True)) == 20
    rows = chat.read_helpsteer_jsonl(d / STAGE_FILES["helpsteer_train"])
    assert len(rows) == 30 and all(0 <= v <= 4 for r in rows for v in r.labels)
    assert len(ifeval.load_ifeval(d / STAGE_FILES["eval_ifeval"])) == 10
    assert len(load_jsonl(d / STAGE_FILES["eval_mc"], multiple_choice.parse_mmlu)) == 10
    assert len(load_jsonl(d / STAGE_FILES["eval_rm_pairs"], reward_bench.parse_rewardbench)) == 8
    code = code_exec.load_code(d / STAGE_FILES["eval_code"])
    assert len(code) == 3
    tasks = [json.loads(x) for x in (d / STAGE_FILES["eval_tasks"]).read_text().splitlines()]
    assert all(T.check_task_response(r, r["answer"]) for r in tasks)
    assert (d / "pretrain" / "lingo.jsonl").stat().st_size > 0 and (d / "tokenizer.txt").stat().st_size > 15_000


def test_pretrain_data_sources_and_entry_point():
    sources = pytest.importorskip("nemotron_jax.data.sources")  # the data engineer's readers
    cfg = ToyWorldConfig(pretrain_chars=20_000)
    data = pretrain_data(cfg, tokenizer="tok.model")
    assert [(s.name, s.weight, s.kind) for s in data.sources] == [
        ("english", 0.7, "python"), ("lingo", 0.15, "python"), ("code", 0.15, "python")]
    kwargs = dict(data.sources[2].kwargs)
    texts = source_texts(**kwargs)
    assert texts and sum(map(len, texts)) >= kwargs["n_chars"] and all("print(" in t or "def " in t for t in texts)
    for s in data.sources:
        opened = sources.open_source(s.kind, s.path, name=s.name, kwargs=dict(s.kwargs))
        assert len(opened) > 0


def test_build_toy_data_trains_a_tokenizer_that_round_trips(tmp_path):
    tokenizer = pytest.importorskip("nemotron_jax.data.tokenizer")
    cfg = quick_config(pretrain_chars=30_000, tokenizer_chars=60_000, code_sft=5, general_sft=20,
                       preference_prompts=5, preference_pairs=5, helpsteer=5, helpsteer_val=5, eval_per_task=2,
                       eval_ifeval=3, eval_mc=3, eval_code=1, eval_rm_pairs=4)
    m = build_toy_data(tmp_path, cfg, vocab_size=700, treat_whitespace_as_suffix=True)
    tok = tokenizer.Tokenizer.load(m["files"]["tokenizer_model"])
    assert tok.vocab_size == 700
    for rec in chat_lines(tmp_path / "data" / STAGE_FILES["sft_general"]):
        for msg in rec["messages"]:
            ids = tok.encode(msg["content"])
            assert tok.decode(ids) == msg["content"] and tok.unk_id not in ids
    # role headers are one piece each; a word is the same pieces after a space as at the start of a reply
    from nemotron_jax.data.chat import render_chat
    pieces = tok.encode_pieces(render_chat([{"role": "user", "content": "Who is it?"},
                                            {"role": "assistant", "content": "farmer"}]))
    assert {"System\n", "User\n", "Assistant\n"} <= set(pieces), pieces
    reply = pieces[pieces.index("Assistant\n") + 1:-2]
    assert reply == tok.encode_pieces("The job is farmer.")[-len(reply) - 1:-1], (reply, pieces)


def chat_lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


# ---- bad input -----------------------------------------------------------------------------------------------------

def test_bad_arguments_fail_with_clear_messages(tw):
    with pytest.raises(ValueError, match="unknown toy task 'sums'.*fact_recall"):
        tw.items("sums", 3)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        T.ToyWorld(0, heldout_fraction=0.0)
    with pytest.raises(ValueError, match="instructed_share"):
        tw.prompts(3, instructed_share=1.5)
    with pytest.raises(ConfigError, match="heldout_fraction"):
        ToyWorldConfig(heldout_fraction=1.0)
    with pytest.raises(ValueError, match="could not attach"):
        make_prompt(tw.items("uppercase", 1)[0], random.Random(0), n_instructions=len(T.TOY_INSTRUCTIONS))


def test_general_sft_instructed_share_is_exact(tw):
    recs = tw.general_sft(500)  # default 4%
    assert sum(bool(r["meta"]["instruction_id_list"]) for r in recs) == 20
    assert collections.Counter(r["meta"]["task"] for r in recs) == {t: 100 for t in T.LEARNABLE_TASKS}
    assert math.isclose(sum(len(r["messages"]) for r in recs) / len(recs), 2.0)


# ---- held-out task evaluation --------------------------------------------------------------------------------------

class _ScriptedGenerator:
    """Answers the first `n_right` prompts correctly (trailing chat marker included), the rest wrongly."""

    def __init__(self, records, n_right):
        self.answers = [r["answer"] + "\n<extra_id_1>User" if i < n_right else "no idea" for i, r in enumerate(records)]
        self.prompts = None

    def generate(self, prompts, *, max_tokens, stop=()):
        self.prompts = list(prompts)
        return self.answers


def test_evaluate_tasks_counts_exact_matches(tw):
    from nemotron_jax.data.toyworld.evaluate import evaluate_tasks

    records = tw.eval_tasks(4)
    gen = _ScriptedGenerator(records, n_right=7)
    res = evaluate_tasks(gen, records)
    assert res["n"] == len(records) == 20 and res["accuracy"] == pytest.approx(7 / 20)
    assert sum(v * 4 for v in res["per_task"].values()) == pytest.approx(7)
    assert gen.prompts[0].endswith("<extra_id_1>Assistant\n") and records[0]["question"] in gen.prompts[0]
    # cut before the template's "\n<extra_id_1>": the newline belongs to the template, not the reply
    assert res["predictions"][0]["output"] == records[0]["answer"]
    with pytest.raises(ValueError, match="at least one record"):
        evaluate_tasks(gen, [])


def test_two_turn_chats_answer_both_turns(tw):
    recs = tw.general_sft(100, two_turn_share=0.3)
    two = [r for r in recs if len(r["messages"]) == 4]
    assert len(two) == 30 and [m["role"] for m in two[0]["messages"]] == ["user", "assistant"] * 2
    kinds = collections.Counter(r["messages"][2]["content"].startswith("Rewrite your answer.") for r in two)
    assert kinds[True] > 5 and kinds[False] > 5  # both second-turn kinds occur
    for r in two:
        second = T.prompt_from_meta(r["meta"]["second_turn"])
        reply = r["messages"][3]["content"]
        assert second.item.check(reply) and all(second.follows(reply))
        assert T.split_of(7, second.item.id, 0.2) == "train"


def test_all_items_enumerates_each_finite_split_exactly(tw):
    from nemotron_jax.data.toyworld.tasks import all_items

    for task in T.LEARNABLE_TASKS:
        train = all_items(tw.world, task, split="train", seed=7, heldout_fraction=0.2)
        held = all_items(tw.world, task, split="heldout", seed=7, heldout_fraction=0.2)
        ids_t, ids_h = {it.id for it in train}, {it.id for it in held}
        assert len(ids_t) == len(train) and len(ids_h) == len(held) and not ids_t & ids_h
        # the samplers draw from the same key space (letter counts also ask about absent letters: answer 0)
        sampled = {it.id for it in tw.items(task, 30, split="heldout") if it.answer != "0"}
        assert sampled and sampled <= ids_h
        assert all(it.check(it.answer) for it in train + held)
    assert len(all_items(tw.world, "sum_1digit", split="train", seed=7, heldout_fraction=0.2)) + len(
        all_items(tw.world, "sum_1digit", split="heldout", seed=7, heldout_fraction=0.2)) == 100


def test_letter_count_answers_are_not_dominated_by_one_value(tw):
    answers = collections.Counter(it.answer for it in tw.items("letter_count", 400))
    assert max(answers.values()) / 400 < 0.45 and {"0", "1", "2"} <= set(answers), answers
