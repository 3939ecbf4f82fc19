"""Every IFEval-style verifier on hand-written responses that pass and that fail, plus the loose variants."""

import random

import pytest

from nemotron_jax.sdg import instructions as I

# (id, kwargs, passing response, failing response)
CASES = [
    ("change_case:english_capital", {}, "HELLO WORLD, THIS IS LOUD.", "HELLO World."),
    ("change_case:english_lowercase", {}, "all quiet here, 42 times.", "all quiet Here."),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "This is VERY IMPORTANT news.", "This is VERY important news."),
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"},
     "Just four words here.", "Now there are five words."),
    ("length_constraints:number_words", {"num_words": 5, "relation": "at least"},
     "one two three four five", "one two three four"),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "at most"},
     "Dr. Smith met Mr. Jones. They talked!", "One. Two! Three?"),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "at least"},
     "It is 3.5 m long. Really? Yes!", "It is 3.5 m long. Really."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3},
     "First part.\n***\nSecond part.\n***\nThird part.", "First part.\n***\n***\nThird part."),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "river"},
     "The start.\n\nRiver, flowing on.", "The start.\n\nA river flowing on."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2},
     "Send it to [name] at [address].", "Send it to [name] at the office."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     "Thanks for reading.\nP.S. bring snacks.", "Thanks for reading. PS bring snacks."),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"},
     "Body.\n\nP.P.S one more thing", "Body.\n\nP.S. one thing"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2},
     "Points:\n* first\n- second", "Points:\n* first\n* second\n* third"),
    ("detectable_format:constrained_response", {}, "After thought: My answer is maybe.", "My answer is perhaps."),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "Note *this part* and **that part**.", "Note *this part* and ** **."),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "Section 1\nIntro.\nSection 2\nBody.", "Section 1\nIntro and body."),
    ("detectable_format:json_format", {}, '```json\n{"a": [1, 2]}\n```', '{"a": [1, 2]'),
    ("detectable_format:title", {}, "<<A Poem of Joy>>\nLa la la.", "<< >> A Poem of Joy"),
    ("combination:two_responses", {}, "Answer A.\n******\nAnswer B.", "Answer A.\n******\nAnswer A."),
    ("combination:two_responses", {}, "******\nAnswer A.\n******\nAnswer B.", "A.\n******\n******\nB."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Tell me about rivers."},
     "Tell me about rivers. Rivers flow.", "Rivers flow. Tell me about rivers."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     "Here it is. Any other questions?  ", "Any other questions? Here it is."),
    ("startend:start_checker", {"start_phrase": "In short"}, "In short, yes.", "Well, in short, yes."),
    ("startend:quotation", {}, '"Wrapped in quotes."', '"Only opened.'),
    ("punctuation:no_comma", {}, "No commas at all here.", "Well, a comma."),
    ("language:response_language", {"language": "fr"},
     "Bonjour, je suis très content de vous voir aujourd'hui dans cette belle ville.",
     "Hello there, I am very happy to see you today in this beautiful city."),
    ("keywords:existence", {"keywords": ["river", "Light"]}, "The light on the River.", "The light on the lake."),
    ("keywords:frequency", {"keyword": "data", "frequency": 2, "relation": "at least"},
     "Data beats opinions; more data helps.", "Data beats opinions."),
    ("keywords:frequency", {"keyword": "data", "frequency": 2, "relation": "less than"},
     "Data beats opinions.", "Data beats opinions; more data helps."),
    ("keywords:forbidden_words", {"forbidden_words": ["ocean", "sea"]},
     "The seashore is calm.", "The Sea is calm."),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": "at least"},
     "Zebras amaze.", "Zebras run."),
]


def test_at_least_15_types_registered_with_ifeval_ids() -> None:
    assert len(I.REGISTRY) >= 15
    for iid in I.REGISTRY:
        assert iid.count(":") == 1


def test_every_registered_type_has_a_case() -> None:
    assert {c[0] for c in CASES} == set(I.REGISTRY)


@pytest.mark.parametrize("iid,kwargs,good,bad", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_verifier_accepts_and_rejects(iid: str, kwargs: dict, good: str, bad: str) -> None:
    if iid == "language:response_language":
        pytest.importorskip("langdetect")
    inst = I.get(iid)
    assert inst.verify(good, kwargs), f"{iid} should accept {good!r}"
    assert not inst.verify(bad, kwargs), f"{iid} should reject {bad!r}"
    assert inst.describe(kwargs).strip()


def test_empty_response_never_follows() -> None:
    assert not I.get("punctuation:no_comma").verify("   ", {})
    assert not I.get("punctuation:no_comma").verify_loose("", {})


def test_word_count_tokenizer_is_ifeval_w_plus() -> None:
    assert I.count_words("It's 3.5 m, ok?") == 6
    assert I.count_sentences("Mr. Smith arrived. J. R. R. Tolkien wrote. Wow!!! Done") == 4


def test_loose_strips_first_and_last_lines_and_asterisks() -> None:
    kw = {"end_phrase": "That is all."}
    resp = "Sure, here you go:\nThe answer.\nThat is all.\n(Let me know if you need more.)"
    assert not I.get("startend:end_checker").verify(resp, kw)
    assert I.get("startend:end_checker").verify_loose(resp, kw)
    bold = "**HELLO THERE**"
    assert I.get("startend:quotation").verify_loose('"Quoted"', {})
    assert I.get("detectable_format:title").verify_loose("Intro line\n<<Title>>", {})
    assert not I.get("change_case:english_lowercase").verify("Intro:\nall lower", {})
    assert I.get("change_case:english_lowercase").verify_loose("Intro:\nall lower", {})
    assert I.get("keywords:forbidden_words").verify_loose(bold, {"forbidden_words": ["hello"]}) is False
    assert len(I.loose_variants("a\nb\nc")) == 8


def test_follows_and_describe_for_a_prompt() -> None:
    ids = ["punctuation:no_comma", "startend:end_checker"]
    kws = [{}, {"end_phrase": "Bye."}]
    assert I.follows(ids, kws, "hello there. Bye.") == [True, True]
    assert I.follows(ids, kws, "hello, there.") == [False, False]
    assert "commas" in I.describe(ids, kws) and "Bye." in I.describe(ids, kws)


def test_null_kwargs_from_public_ifeval_files_are_ignored() -> None:
    kw = {"end_phrase": "Bye.", "num_words": None, "keywords": None}
    assert I.get("startend:end_checker").verify("ok Bye.", kw)


def test_bad_input_errors_name_the_problem() -> None:
    with pytest.raises(I.InstructionError, match="unknown instruction id"):
        I.get("detectable_format:nope")
    with pytest.raises(I.InstructionError, match="needs kwargs"):
        I.get("startend:end_checker").verify("x", {})
    with pytest.raises(I.InstructionError, match="relation"):
        I.get("length_constraints:number_words").verify("x", {"num_words": 3, "relation": "more than"})
    with pytest.raises(I.InstructionError, match="does not take"):
        I.get("punctuation:no_comma").verify("x", {"letter": "a"})
    with pytest.raises(I.InstructionError, match="kwargs dict"):
        I.follows(["punctuation:no_comma"], [], "x")


def test_sampled_instructions_are_compatible_and_describable() -> None:
    rng = random.Random(0)
    for _ in range(50):
        chosen, kws = I.sample_instructions(rng, 3, prompt="Write a haiku.")
        assert len(set(chosen)) == 3
        assert all(I.compatible(a, b) for a in chosen for b in chosen if a != b)
        I.describe(chosen, kws)
        for i, kw in zip(chosen, kws):
            if i == "combination:repeat_prompt":
                assert kw["prompt_to_repeat"] == "Write a haiku."
    assert not I.compatible("change_case:english_capital", "change_case:english_lowercase")


def test_language_instruction_needs_langdetect_and_is_not_sampled(monkeypatch) -> None:
    rng = random.Random(1)
    for _ in range(30):
        assert "language:response_language" not in I.sample_instructions(rng, 4)[0]
    real = I.importlib.util.find_spec
    monkeypatch.setattr(I.importlib.util, "find_spec", lambda name: None if name == "langdetect" else real(name))
    with pytest.raises(I.InstructionError, match="pip install langdetect"):
        I.get("language:response_language").verify("Bonjour", {"language": "fr"})
