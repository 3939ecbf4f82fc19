"""Every SDG stage against scripted backends: parsing and its fallbacks/failure counts, judges, pairing, filters."""

import pytest

from nemotron_jax.sdg import instructions as I
from nemotron_jax.sdg import parsing as P
from nemotron_jax.sdg.clients import ModelClient, ScriptedBackend
from nemotron_jax.sdg.filters import Dedup, LengthFilter, RewardFilter, jaccard, shingles
from nemotron_jax.sdg.judges import GroundTruthJudge, LLMJudge, RMJudge, VerifierJudge
from nemotron_jax.sdg.preference import BestResponse, Pairs
from nemotron_jax.sdg.stages import (AttachInstructions, ClassifyEntity, ClosedQA, Context, Dialogue, Keywords,
                                     MacroTopics, OpenQA, Problems, Responses, Revise, Subtopics, TwoTurn,
                                     WritingTasks)
from nemotron_jax.sdg.templates import PromptTemplate, load_templates


def ctx_with(script, **more) -> Context:
    models = {"generator": ModelClient(ScriptedBackend(script))}
    models.update({k: ModelClient(ScriptedBackend(v, name=k)) for k, v in more.items()})
    return Context(models=models, templates=load_templates())


def last_user(payload: dict) -> str:
    return payload["messages"][-1]["content"]


def reply(text: str):
    return lambda kind, payload: {"texts": [text] * payload["n"]}


ROOT = {"id": "r", "provenance": []}


# ---------------------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,items,method", [
    ("Here you go:\n1. Food and drinks\n2) Technology\n3. Art", ["Food and drinks", "Technology", "Art"], "numbered"),
    ('Sure: ["alpha", "beta"] as asked', ["alpha", "beta"], "json"),
    ("- apples\n* pears\n• plums", ["apples", "pears", "plums"], "bulleted"),
    ("1. **Bold topic**\n2. Wrapped\n   over two lines", ["Bold topic", "Wrapped over two lines"], "numbered"),
    ("Topics:\nrivers\nmountains", ["rivers", "mountains"], "lines"),
    ("1. same\n2. same\n3. other", ["same", "other"], "numbered"),
])
def test_parse_list_formats(text: str, items: list, method: str) -> None:
    stats = P.ParseStats()
    assert P.parse_list(text, stats) == items
    assert stats.counts == {method: 1}


def test_parse_list_failure_is_counted() -> None:
    stats = P.ParseStats()
    assert P.parse_list("I cannot help with that.", stats) == []
    assert P.parse_list("", stats) == []
    assert stats.failures == 2
    assert P.parse_list("1. a\n2. b\n3. c", max_items=2) == ["a", "b"]


def test_yes_no_verdict_and_answers() -> None:
    assert P.parse_yes_no("Yes, it is.") is True and P.parse_yes_no("no.") is False
    assert P.parse_yes_no("It is hard to say") is None and P.parse_yes_no("I'd say yes") is True
    assert P.parse_verdict("A is ok but [[B]]") == "B" and P.parse_verdict("A") is None
    assert P.extract_answer("2+2 is 4, so \\boxed{4}") == "4"
    assert P.extract_answer("The answer is: 1,250.") == "1,250"
    assert P.extract_answer("first 3 then 17") == "17"
    assert P.answers_match("so the answer is 0.50", "1/2") and not P.answers_match("answer: 3", "4")
    assert P.answers_match("The answer is Paris.", "paris")


def test_polite_filler_is_removed_from_user_turns() -> None:
    assert P.clean_polite_filler("Thanks, that helps! Could you explain X?") == "Could you explain X?"
    assert P.clean_polite_filler("Great! I appreciate it. Why Y? Thank you!") == "Why Y?"
    assert P.clean_polite_filler("Thank you!") == "Thank you!"  # nothing left: keep the turn as is


def test_template_render_names_missing_fields() -> None:
    t = PromptTemplate("t", "About {topic} x{n}")
    assert t.fields == ("topic", "n") and t.render(topic="a", n=2) == "About a x2"
    with pytest.raises(KeyError, match="'t' needs fields \\['n'\\]"):
        t.render(topic="a")
    with pytest.raises(KeyError, match="not a known template"):
        load_templates({"nope": "x"})
    assert load_templates({"subtopics": "S {topic} {n}"})["subtopics"].text == "S {topic} {n}"


# ---------------------------------------------------------------------------------------------------------------
# Prompt stages
# ---------------------------------------------------------------------------------------------------------------

def test_topic_chain_ids_provenance_and_parse_failures() -> None:
    def script(kind, payload):
        p = last_user(payload)
        if "daily life" in p:
            return {"texts": ['["Food", "Science"]']}
        if "aspects of Food" in p:
            return {"texts": ["1. Baking\n2. Cheese"]}
        return {"texts": ["no list here"]}

    ctx = ctx_with(script)
    topics = MacroTopics(n=5).process(ROOT, ctx)
    assert [t["topic"] for t in topics] == ["Food", "Science"] and [t["id"] for t in topics] == ["r.0", "r.1"]
    assert topics[0]["provenance"][-1]["stage"] == "macro_topics" and topics[0]["provenance"][-1]["seed"] is not None
    subs = Subtopics(n=5).process(topics[0], ctx)
    assert [(s["topic"], s["parent_topic"]) for s in subs] == [("Baking", "Food"), ("Cheese", "Food")]
    assert Subtopics(n=5).process(topics[1], ctx) == []  # unparseable -> nothing, counted
    assert ctx.stats.counts == {"json": 1, "numbered": 1, "failed": 1}


def test_open_qa_revise_writing_closed_qa() -> None:
    def script(kind, payload):
        p = last_user(payload)
        if p.startswith("Question:"):
            return {"texts": ['"What is bread, in detail, with history?"']}
        if "write a poem" in p:
            return {"texts": ["1. Poem on rye\n2. Poem on spelt"]}
        if "write a letter" in p:
            return {"texts": ["- Letter to a baker"]}
        if p.startswith("TEXT:"):
            return {"texts": ["1. Summarise the text.\n2. Who is named?"]}
        return {"texts": ["1. What is bread?\n2. How is bread made?"]}

    ctx = ctx_with(script)
    topic = {"id": "t", "topic": "Bread", "provenance": []}
    qs = OpenQA(n=2).process(topic, ctx)
    assert [q["prompt"] for q in qs] == ["What is bread?", "How is bread made?"]
    assert qs[0]["messages"] == [{"role": "user", "content": "What is bread?"}] and qs[0]["task"] == "open_qa"
    rev = Revise().process(qs[0], ctx)[0]
    assert rev["prompt"] == "What is bread, in detail, with history?" and rev["original_prompt"] == "What is bread?"
    assert rev["id"] == qs[0]["id"] and rev["messages"][0]["content"] == rev["prompt"]
    w = WritingTasks(n=3, document_types=("poem", "letter")).process(topic, ctx)
    assert [(x["document_type"], x["prompt"]) for x in w] == [
        ("poem", "Poem on rye"), ("poem", "Poem on spelt"), ("letter", "Letter to a baker")]
    doc = {"id": "d", "document": "Ada met Bob.", "provenance": []}
    cq = ClosedQA(n=2).process(doc, ctx)
    assert cq[0]["prompt"] == "Ada met Bob.\n\nSummarise the text." and cq[1]["instruction"] == "Who is named?"


def test_keywords_classification_and_problem_levels() -> None:
    def script(kind, payload):
        p = last_user(payload)
        if p.startswith("List"):
            return {"texts": ["1. prime numbers\n2. banana\n3. derivative"]}
        if "belong to" in p:
            return {"texts": [{"prime numbers": "Yes", "banana": "No.", "derivative": "Hmm, maybe"}[
                p.split('"')[1]]]}
        return {"texts": [f"1. Problem A ({p.split(' at ')[1].split(' level')[0]})\n2. Problem B"]}

    ctx = ctx_with(script)
    kws = Keywords(n=3, domain="math").process({"id": "t", "topic": "numbers", "provenance": []}, ctx)
    kept = [k for kw in kws for k in ClassifyEntity(domain="math").process(kw, ctx)]
    assert [k["keyword"] for k in kept] == ["prime numbers"]
    assert ctx.stats.counts["classify_unclear"] == 1
    probs = Problems(n=2, levels=("easy", "hard")).process(kept[0], ctx)
    assert [(p["level"], p["prompt"]) for p in probs] == [
        ("easy", "Problem A (easy)"), ("easy", "Problem B"), ("hard", "Problem A (hard)"), ("hard", "Problem B")]
    assert len({p["id"] for p in probs}) == 4


def test_instruction_prompts_single_multi_turn_second_turn() -> None:
    ctx = ctx_with(reply("Thanks! Tell me more about rivers?"))
    item = {"id": "p", "prompt": "Describe rivers.", "provenance": []}
    allowed = ["punctuation:no_comma", "startend:end_checker", "detectable_format:title"]
    single = AttachInstructions(k=2, allowed=allowed).process(item, ctx)[0]
    assert len(single["instruction_ids"]) == 2 and set(single["instruction_ids"]) <= set(allowed)
    text = I.describe(single["instruction_ids"], single["instruction_kwargs"])
    assert single["messages"] == [{"role": "user", "content": f"Describe rivers. {text}"}]
    again = AttachInstructions(k=2, allowed=allowed).process(item, ctx)[0]
    assert again["instruction_kwargs"] == single["instruction_kwargs"]  # seeded by item id
    second = AttachInstructions(k=1, mode="second_turn").process(item, ctx)[0]
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    assert second["messages"][2]["content"].startswith("Please revise your previous answer.")
    multi = AttachInstructions(k=1, mode="multi_turn").process(item, ctx)[0]
    assert multi["messages"][0]["content"].startswith("In this conversation, always follow this rule")
    assert multi["messages"][2]["content"] == "Tell me more about rivers?"  # filler cleaned
    with pytest.raises(ValueError, match="mode"):
        AttachInstructions(mode="triple")
    items = [{"id": f"p{i}", "prompt": "Describe rivers.", "provenance": []} for i in range(100)]
    some = [AttachInstructions(share=0.3).process(it, ctx)[0] for it in items]
    n = sum("instruction_ids" in x for x in some)
    assert 15 <= n <= 45 and all(x == it for x, it in zip(some, items) if "instruction_ids" not in x)


def test_two_turn_and_dialogue_with_persona() -> None:
    def script(kind, payload):
        p = last_user(payload)
        if "role-playing a user" in p or "Write the user's next" in p:
            return {"texts": ["Thank you so much! What about winter?"]}
        return {"texts": [f"reply to: {p[:20]}"]}

    ctx = ctx_with(script)
    item = {"id": "p", "prompt": "Tell me about snow.", "provenance": []}
    two = TwoTurn().process(item, ctx)[0]
    assert [m["role"] for m in two["messages"]] == ["user", "assistant", "user"]
    assert two["messages"][2]["content"] == "What about winter?"
    dia = Dialogue(turns=3).process(item, ctx)[0]
    assert [m["role"] for m in dia["messages"]] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert all("Thank" not in m["content"] for m in dia["messages"] if m["role"] == "user")
    assert dia["persona"] in Dialogue().personas
    roleplay = [p for k, p in ctx.models["generator"].backend.calls if "role-playing" in last_user(p)]
    assert roleplay and dia["persona"] in last_user(roleplay[0]) and roleplay[0]["temperature"] == 0.0


def test_responses_k_samples_from_several_models() -> None:
    def gen(name):
        return lambda kind, p: {"texts": [f"{name}-{p['seed']}-{j}" for j in range(p["n"])]}

    ctx = ctx_with(gen("g"), weak=gen("w"))
    item = {"id": "p", "messages": [{"role": "user", "content": "q"}], "provenance": []}
    out = Responses(models=("generator", "weak"), k=2).process(item, ctx)[0]
    texts = [r["text"] for r in out["responses"]]
    assert [r["model"] for r in out["responses"]] == ["generator", "generator", "weak", "weak"]
    assert texts[0].startswith("g-") and texts[1].endswith("-1") and texts[2].startswith("w-")
    assert texts[0].split("-")[1] != texts[2].split("-")[1]  # each model gets its own seed
    more = Responses(models=("generator", "weak"), k=1, k_by_model={"generator": 3}).process(item, ctx)[0]
    assert [r["model"] for r in more["responses"]] == ["generator"] * 3 + ["weak"]


# ---------------------------------------------------------------------------------------------------------------
# Judges
# ---------------------------------------------------------------------------------------------------------------

def judged_item(texts, **fields):
    return {"id": "j", "messages": [{"role": "user", "content": "Q?"}], "provenance": [],
            "responses": [{"model": "g", "text": t} for t in texts], **fields}


def test_ground_truth_judge() -> None:
    item = judged_item(["so it is 12", "\\boxed{13}", "no idea"], answer=12)
    out = GroundTruthJudge().process(item, ctx_with(reply("")))[0]
    assert [r["score"] for r in out["responses"]] == [1.0, 0.0, 0.0] and out["judge"] == "judge_ground_truth"
    assert GroundTruthJudge().process(judged_item(["x"]), ctx_with(reply("")))[0].get("judge") is None


def test_verifier_judge_scores_fraction_followed() -> None:
    item = judged_item(["hello there. Bye.", "hello, there. Bye.", "hello, there."],
                       instruction_ids=["punctuation:no_comma", "startend:end_checker"],
                       instruction_kwargs=[{}, {"end_phrase": "Bye."}])
    out = VerifierJudge().process(item, ctx_with(reply("")))[0]
    assert [r["score"] for r in out["responses"]] == [1.0, 0.5, 0.0]
    assert [r["all_followed"] for r in out["responses"]] == [True, False, False]
    # a later judge leaves an already-judged item alone
    assert GroundTruthJudge().process({**out, "answer": 1}, ctx_with(reply("")))[0] == {**out, "answer": 1}


def test_llm_judge_keeps_only_consistent_verdicts() -> None:
    def judge(kind, payload):
        p = last_user(payload)
        a = p.split("[The Start of Assistant A's Answer]\n")[1].split("\n[The End")[0]
        b = p.split("[The Start of Assistant B's Answer]\n")[1].split("\n[The End")[0]
        if {a, b} == {"good", "okay"}:
            return {"texts": ["[[A]]"]}  # position bias: inconsistent for this pair
        rank = {"good": 2, "okay": 1, "bad": 0}
        return {"texts": ["[[A]]" if rank[a] > rank[b] else "[[B]]"]}

    ctx = ctx_with(reply(""), judge=judge)
    out = LLMJudge().process(judged_item(["okay", "good", "bad"]), ctx)[0]
    # pairs (okay, good) inconsistent -> dropped; good beats bad, okay beats bad
    assert sorted(map(tuple, out["consistent_pairs"])) == [(0, 2), (1, 2)]
    assert [r["score"] for r in out["responses"]] == [1.0, 1.0, -2.0]
    assert ctx.stats.counts["judge_inconsistent"] == 1
    assert len(ctx.models["judge"].backend.calls) == 6  # 3 pairs x both orders
    pairs = Pairs(strategy="all_pairs").process(out, ctx)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("okay", "bad"), ("good", "bad")]


def test_rm_judge_orders_by_known_reward_and_aggregates_attributes() -> None:
    def rm(kind, payload):
        text = payload["messages"][-1]["content"]
        return {"reward": float(len(text)), "attributes": {"helpfulness": 1.0, "correctness": float(len(text)),
                                                            "coherence": 2.0, "complexity": 0.0, "verbosity": 3.0}}

    ctx = ctx_with(reply(""), reward=rm)
    item = judged_item(["medium", "longest one", "s"])
    out = RMJudge().process(item, ctx)[0]
    assert [r["score"] for r in out["responses"]] == [6.0, 11.0, 1.0]
    conv = ctx.models["reward"].backend.calls[0][1]["messages"]
    assert conv == [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "medium"}]
    agg = RMJudge(weights="nemotron4_340b").process(item, ctx)[0]
    expect = 0.3 * 1.0 + 0.74 * 6 + 0.46 * 2.0 + 0.47 * 0.0 - 0.33 * 3.0
    assert agg["responses"][0]["score"] == pytest.approx(expect)
    custom = RMJudge(weights={"correctness": 2.0}).process(item, ctx)[0]
    assert [r["score"] for r in custom["responses"]] == [12.0, 22.0, 2.0]
    with pytest.raises(KeyError, match="safety"):
        RMJudge(weights={"safety": 1.0}).process(item, ctx)
    best, = Pairs().process(out, ctx)
    assert (best["chosen"], best["rejected"], best["chosen_reward"], best["rejected_reward"]) == (
        "longest one", "s", 11.0, 1.0)
    assert best["prompt"] == item["messages"] and best["judge"] == "judge_rm"
    assert best["provenance"][-1] == {"stage": "pairs", "model": None, "seed": None, "judge": "judge_rm"}


# ---------------------------------------------------------------------------------------------------------------
# Preference pairing and filters
# ---------------------------------------------------------------------------------------------------------------

def scored(scores):
    return {**judged_item([f"r{i}" for i in range(len(scores))], judge="judge_rm"),
            "responses": [{"model": "g", "text": f"r{i}", "score": s} for i, s in enumerate(scores)]}


def test_pairing_best_vs_worst_margin_and_ties() -> None:
    ctx = ctx_with(reply(""))
    assert [(p["chosen"], p["rejected"]) for p in Pairs().process(scored([0.2, 0.9, 0.1]), ctx)] == [("r1", "r2")]
    assert Pairs(margin=1.0).process(scored([0.2, 0.9, 0.1]), ctx) == []
    assert Pairs().process(scored([0.5, 0.5]), ctx) == []  # a tie is no preference
    allp = Pairs(strategy="all_pairs", margin=0.15).process(scored([0.2, 0.9, 0.1]), ctx)
    assert [(p["chosen"], p["rejected"]) for p in allp] == [("r1", "r2"), ("r1", "r0")]
    assert len({p["id"] for p in allp}) == 2
    with pytest.raises(ValueError, match="judge"):
        Pairs().process(judged_item(["a", "b"]), ctx)
    sft = BestResponse(min_score=0.5).process(scored([0.2, 0.9]), ctx)[0]
    assert sft["messages"][-1] == {"role": "assistant", "content": "r1"} and sft["reward"] == 0.9
    assert BestResponse(min_score=0.95).process(scored([0.2, 0.9]), ctx) == []


def test_pairing_within_equal_judge_fields() -> None:
    ctx = ctx_with(reply(""))
    item = scored([5.7, 5.2, 1.8, 1.5])  # right+followed, right+broken, wrong+followed, wrong+broken
    for r, (ok, fol) in zip(item["responses"], [(True, True), (True, False), (False, True), (False, False)]):
        r.update(correct=ok, all_followed=fol)
    assert [(p["chosen"], p["rejected"]) for p in Pairs().process(item, ctx)] == [("r0", "r3")]
    same = Pairs(strategy="all_pairs", same=["correct"]).process(item, ctx)
    assert [(p["chosen"], p["rejected"]) for p in same] == [("r0", "r1"), ("r2", "r3")]
    with pytest.raises(ValueError, match="did not record"):
        Pairs(same=["grade"]).process(item, ctx)


def test_pairing_contrasts_instruction_verdicts() -> None:
    """contrast=("followed",): chosen follows every instruction, rejected breaks one, whatever the score gap."""
    ctx = ctx_with(reply(""))
    item = scored([2.8, 2.7, 2.2, 3.0])  # the best score follows one of two; a verbose reply outscores the last
    for r, fol in zip(item["responses"], [[True, True], [True, False], [False, False], [True, False]]):
        r.update(correct=False, followed=fol)
    assert [(p["chosen"], p["rejected"]) for p in Pairs(same=["correct"]).process(item, ctx)] == [("r3", "r2")]
    pairs = Pairs(same=["correct"], contrast=["followed"]).process(item, ctx)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("r0", "r2")]
    allp = Pairs(strategy="all_pairs", contrast=["followed"]).process(item, ctx)
    assert [(p["chosen"], p["rejected"]) for p in allp] == [("r0", "r2"), ("r0", "r1")]  # r3 scores more: no pair
    none = scored([1.0, 0.5])
    for r in none["responses"]:
        r.update(followed=[])  # no instructions: nothing to contrast
    assert Pairs(contrast=["followed"]).process(none, ctx) == []
    with pytest.raises(ValueError, match="contrast names"):
        Pairs(contrast=["grade"]).process(item, ctx)


def test_reward_and_length_filters() -> None:
    ctx = ctx_with(reply(""))
    rows = [{"id": str(i), "chosen_reward": r, "prompt": "w " * n} for i, (r, n) in enumerate([(1.0, 3), (3.0, 8)])]
    assert [x["id"] for r in rows for x in RewardFilter(min_reward=2.0).process(r, ctx)] == ["1"]
    assert [x["id"] for r in rows for x in LengthFilter(min_words=2, max_words=5).process(r, ctx)] == ["0"]
    msgs = {"id": "m", "prompt": [{"role": "user", "content": "one two three"}]}
    assert LengthFilter(max_words=2).process(msgs, ctx) == []


def test_dedup_exact_and_near_duplicates() -> None:
    base = "the quick brown fox jumps over the lazy dog near the quiet river bank today"
    rows = [{"id": "a", "prompt": base},
            {"id": "b", "prompt": base.upper() + "!!"},  # exact after normalisation
            {"id": "c", "prompt": base.replace("today", "tonight")},  # near: Jaccard 12/14 trigram overlap
            {"id": "d", "prompt": "an entirely different sentence about baking bread at home in winter"}]
    assert jaccard(shingles(rows[0]["prompt"], 3), shingles(rows[2]["prompt"], 3)) == pytest.approx(12 / 14)
    ctx = ctx_with(reply(""))
    assert [r["id"] for r in Dedup(near_threshold=0.8).process_all(rows, ctx)] == ["a", "d"]
    assert ctx.stats.counts == {"dedup_exact": 1, "dedup_near": 1}
    assert [r["id"] for r in Dedup(near_threshold=None).process_all(rows, ctx)] == ["a", "c", "d"]
    assert [r["id"] for r in Dedup(near_threshold=0.9).process_all(rows, ctx)] == ["a", "c", "d"]


# ---------------------------------------------------------------------------------------------------------------
# Toy world source and judge
# ---------------------------------------------------------------------------------------------------------------

def test_toyworld_prompts_and_judge_rank_the_oracle_first() -> None:
    from nemotron_jax.data.toyworld import oracle_response, prompt_from_meta
    from nemotron_jax.sdg.judges import ToyWorldJudge
    from nemotron_jax.sdg.stages import ToyWorldPrompts

    rows = ToyWorldPrompts(n=6, instructed_share=1.0).process_all([], ctx_with(reply("")))
    assert len(rows) == 6 and len({r["id"] for r in rows}) == 6
    assert all(r["instruction_ids"] and r["answer"] is not None and r["messages"] for r in rows)
    ctx = ctx_with(reply(""))
    for r in rows:
        good = oracle_response(prompt_from_meta(r["meta"]))
        judged = ToyWorldJudge().process({**r, "responses": [{"text": "no idea"}, {"text": good}]}, ctx)[0]
        assert judged["responses"][1]["correct"] and all(judged["responses"][1]["followed"])
        pair, = Pairs().process(judged, ctx)
        assert pair["chosen"] == good and pair["judge"] == "judge_toyworld"
        assert pair["instruction_ids"] == r["instruction_ids"]


def test_dialogue_rm_score_and_threshold() -> None:
    from nemotron_jax.sdg.judges import RMScore

    rm = lambda kind, p: {"reward": float(len(p["messages"])), "attributes": {}}  # noqa: E731
    ctx = ctx_with(lambda kind, p: {"texts": ["Thanks! And then?" if "role-playing" in last_user(p) else "ok"]},
                   reward=rm)
    dia = Dialogue(turns=2).process({"id": "d", "prompt": "Hi", "provenance": []}, ctx)[0]
    scored_ = RMScore().process(dia, ctx)[0]
    assert scored_["reward"] == 4.0 and scored_["provenance"][-1]["judge"] == "rm_score"
    assert RewardFilter(field="reward", min_reward=5.0).process(scored_, ctx) == []
    with pytest.raises(ValueError, match="assistant"):
        RMScore().process({"id": "x", "messages": [{"role": "user", "content": "q"}]}, ctx)



def test_real_prompts_split_disjointly_and_unsafe_leave_sft_only(tmp_path) -> None:
    import json

    from nemotron_jax.sdg.filters import SelectSplit
    from nemotron_jax.sdg.stages import JsonlSource

    path = tmp_path / "lmsys.jsonl"
    rows = [{"conversation_id": i, "flagged": i % 5 == 0,
             "conversation": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": "a"}]}
            for i in range(200)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ctx = ctx_with(reply(""))
    src = JsonlSource(path=str(path), rename={"conversation": "messages", "conversation_id": "id"},
                      first_user_turn=True).process_all([], ctx)
    assert src[3]["prompt"] == "question 3" and src[3]["messages"] == [{"role": "user", "content": "question 3"}]
    sft = [x for it in src for x in SelectSplit(split="sft", unsafe_field="flagged").process(it, ctx)]
    pref = [x for it in src for x in SelectSplit(split="preference", unsafe_field="flagged").process(it, ctx)]
    assert not {x["id"] for x in sft} & {x["id"] for x in pref}
    assert not any(x["flagged"] for x in sft) and any(x["flagged"] for x in pref)
    n_sft_all = len([x for it in src for x in SelectSplit(split="sft").process(it, ctx)])
    assert n_sft_all + len(pref) == 200 and 70 <= n_sft_all <= 130
    assert ctx.stats.counts["unsafe_dropped"] == n_sft_all - len(sft) > 0
