"""`ToyWorld(seed)`: every stage's data for the toy recipe, as plain records in the public shapes."""

from __future__ import annotations

import dataclasses
import functools
import random
from typing import Any, Iterator, Mapping, Sequence

from nemotron_jax.data.toyworld import corpus, tasks
from nemotron_jax.data.toyworld.instructions import ToyPrompt, allowed_instructions, make_prompt, oracle_response
from nemotron_jax.data.toyworld.programs import FunctionTask
from nemotron_jax.data.toyworld.responses import (BREAKING_KINDS, RESPONSE_KINDS, Response, assess, helpsteer_labels,
                                                  make_response, scalar_reward)
from nemotron_jax.data.toyworld.tasks import LEARNABLE_TASKS, TaskItem
from nemotron_jax.data.toyworld.text import english_vocabulary, make_lexicon
from nemotron_jax.data.toyworld.world import World, build_world

Record = dict[str, Any]

# Which preference/RM pair differs in which verifiable attribute, and the RewardBench-style category it reports in.
PAIR_ATTRIBUTES = {"correctness": ("wrong_answer", "reasoning"), "instruction": ("ignore_instruction", "chat-hard"),
                   "verbosity": ("verbose", "chat"), "coherence": ("incoherent", "chat")}


def _chat(p: ToyPrompt, response: str) -> Record:
    return {"messages": [{"role": "user", "content": p.text}, {"role": "assistant", "content": response}],
            "meta": prompt_meta(p)}


def prompt_meta(p: ToyPrompt) -> Record:
    """Everything needed to rebuild the prompt and judge responses to it (`prompt_from_meta`)."""
    it = p.item
    meta = {"id": it.id, "task": it.task, "split": it.split, "prompt": it.prompt, "answer": it.answer,
            "explanation": it.explanation,
            "distractors": list(it.distractors), "difficulty": it.difficulty, "case_sensitive": it.case_sensitive,
            "instruction_id_list": list(p.instruction_id_list), "kwargs": [dict(k) for k in p.kwargs]}
    if it.function is not None:
        meta["function"] = dataclasses.asdict(it.function)
    return meta


def prompt_from_meta(meta: Mapping[str, Any]) -> ToyPrompt:
    """The ToyPrompt a record's "meta" describes (inverse of `prompt_meta`)."""
    fn = FunctionTask(**meta["function"]) if meta.get("function") else None
    item = TaskItem(meta["task"], meta["id"], meta["prompt"], meta["answer"], meta.get("explanation", ""),
                    tuple(meta.get("distractors", ())), int(meta["difficulty"]), bool(meta["case_sensitive"]),
                    meta.get("split", "train"), fn)
    return ToyPrompt(item, tuple(meta["instruction_id_list"]), tuple(dict(k) for k in meta["kwargs"]))


class ToyWorld:
    """A seeded world and everything derived from it; see the package docstring for the full API."""

    def __init__(self, seed: int = 0, *, n_people: int = 48, n_places: int = 12, n_things: int = 24,
                 heldout_fraction: float = 0.2):
        if not 0.0 < heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be strictly between 0 and 1, got {heldout_fraction}")
        if min(n_people, n_places, n_things) < 4:
            raise ValueError(f"a toy world needs at least 4 people, places and things; got {n_people}, "
                             f"{n_places}, {n_things}")
        self.seed, self.heldout_fraction = seed, heldout_fraction
        common = set(tasks.EXTRA_WORDS) | english_vocabulary()
        self.world: World = build_world(seed, n_people=n_people, n_places=n_places, n_things=n_things, avoid=common)
        names = {e.name.lower() for e in (*self.world.people, *self.world.places, *self.world.things)}
        self.lexicon = make_lexicon(seed, avoid=common | names)
        self.words = tasks.word_pool(self.world)

    # ---- pretraining -----------------------------------------------------------------------------------------

    def documents(self, n_chars: int, *, blend: Mapping[str, float] = corpus.DEFAULT_BLEND,
                  stream: str = "pretrain", english_mix: Mapping[str, float] = corpus.ENGLISH_MIX
                  ) -> Iterator[Record]:
        """Pretraining documents {"text", "source"} (english | lingo | code) blended by characters; `english_mix`
        weighs the kinds of English document (corpus.ENGLISH_KINDS)."""
        return corpus.documents(self.world, seed=self.seed, lexicon=self.lexicon, words=self.words,
                                heldout_fraction=self.heldout_fraction, n_chars=n_chars, blend=blend, stream=stream,
                                english_mix=english_mix)

    def tokenizer_texts(self, n_chars: int) -> Iterator[str]:
        """Tokenizer training text: corpus documents (80%) and chat-style task prompts with their answers (20%)."""
        for doc in self.documents(int(n_chars * 0.8), stream="tokenizer"):
            yield doc["text"]
        made = 0
        batch = 0
        while made < n_chars * 0.2:
            for p in self.prompts(64, tasks=tasks.ALL_TASKS, instructed_share=0.3, stream=f"tokenizer{batch}"):
                s = p.text + "\n" + oracle_response(p)
                made += len(s)
                yield s
            batch += 1

    # ---- tasks and prompts -----------------------------------------------------------------------------------

    def items(self, task: str, n: int, *, split: str = "train", unique: bool = False,
              stream: str = "items") -> list[TaskItem]:
        """n items of one task from a split (held-out items never appear in the training split)."""
        return tasks.sample_items(self.world, task, n, split=split, seed=self.seed,
                                  heldout_fraction=self.heldout_fraction, stream=stream, unique=unique)

    def prompts(self, n: int, *, split: str = "train", tasks: Sequence[str] = LEARNABLE_TASKS,
                instructed_share: float = 0.0, max_instructions: int = 2, unique: bool = False,
                stream: str = "prompts") -> list[ToyPrompt]:
        """n prompts, tasks balanced, exactly round(n * instructed_share) of them carrying 1..max instructions."""
        if not 0.0 <= instructed_share <= 1.0:
            raise ValueError(f"instructed_share must be in [0, 1], got {instructed_share}")
        if not tasks:
            raise ValueError("tasks must name at least one toy task")
        rng = random.Random(f"toyworld:{self.seed}:prompts:{split}:{stream}")
        counts = [n // len(tasks) + (i < n % len(tasks)) for i in range(len(tasks))]
        items = [it for t, c in zip(tasks, counts) if c
                 for it in self.items(t, c, split=split, unique=unique, stream=stream)]
        rng.shuffle(items)
        can = [i for i, it in enumerate(items) if allowed_instructions(it)]
        instructed = set(rng.sample(can, min(len(can), round(len(items) * instructed_share))))
        out = []
        for i, it in enumerate(items):
            k = min(max_instructions, 1 if rng.random() < 0.7 else 2) if i in instructed else 0
            out.append(make_prompt(it, rng, n_instructions=k))
        return out

    # ---- alignment data --------------------------------------------------------------------------------------

    def code_sft(self, n: int, *, trace_share: float = 0.5, split: str = "train") -> list[Record]:
        """Code-SFT chats: program tracing and tiny function writing, oracle answers."""
        n_trace = round(n * trace_share)
        ps = self.prompts(n_trace, split=split, tasks=("program_trace",), stream="code_sft")
        ps += self.prompts(n - n_trace, split=split, tasks=("code_write",), stream="code_sft")
        random.Random(f"toyworld:{self.seed}:code_sft").shuffle(ps)
        return [_chat(p, oracle_response(p)) for p in ps]

    def general_sft(self, n: int, *, instructed_share: float = 0.04, two_turn_share: float = 0.0,
                    tasks: Sequence[str] = LEARNABLE_TASKS, split: str = "train") -> list[Record]:
        """General-SFT chats: the tasks with oracle answers, a small share under instructions.

        `two_turn_share` of the chats get a second exchange: another task (half of them) or a request to rewrite
        the first answer under a new instruction (the paper's second-turn revision prompts).
        """
        if not 0.0 <= two_turn_share <= 1.0:
            raise ValueError(f"two_turn_share must be in [0, 1], got {two_turn_share}")
        ps = self.prompts(n, split=split, tasks=tasks, instructed_share=instructed_share, stream="general_sft")
        n2 = round(n * two_turn_share)
        seconds = self.prompts(n2, split=split, tasks=tasks, stream="general_sft_turn2")
        rng = random.Random(f"toyworld:{self.seed}:general_sft_turn2:{split}")
        out = [_chat(p, oracle_response(p)) for p in ps]
        for rec, p, q in zip(out, ps, seconds):  # `ps` is shuffled, so the first n2 are a random share
            if rng.random() < 0.5 and allowed_instructions(p.item):
                revised = make_prompt(p.item, rng, n_instructions=1)
                user = "Rewrite your answer. " + revised.text[len(p.item.prompt) + 1:]
                q = ToyPrompt(revised.item, revised.instruction_id_list, revised.kwargs)
            else:
                user = q.text
            rec["messages"] += [{"role": "user", "content": user}, {"role": "assistant", "content": oracle_response(q)}]
            rec["meta"]["second_turn"] = prompt_meta(q)
        return out

    def preference_prompts(self, n: int, *, instructed_share: float = 0.5, tasks: Sequence[str] = LEARNABLE_TASKS,
                           split: str = "train") -> list[Record]:
        """SDG items {"id", "prompt", "messages", "answer", "instruction_ids", "instruction_kwargs", "meta"}.

        The field names are the SDG stages' (ground-truth and verifier judges read them); `judge(record, response)`
        scores a response with this module's own answer checker and the HelpSteer rules.
        """
        return [{"id": f"toy{k}/{p.item.id}", "prompt": p.text, "messages": [{"role": "user", "content": p.text}],
                 "answer": p.item.answer, "instruction_ids": list(p.instruction_id_list),
                 "instruction_kwargs": [dict(k) for k in p.kwargs], "meta": prompt_meta(p)}
                for k, p in enumerate(self.prompts(n, split=split, tasks=tasks, instructed_share=instructed_share,
                                                   stream="preference_prompts"))]

    def preference_pairs(self, n: int, *, instructed_share: float = 0.5, tasks: Sequence[str] = LEARNABLE_TASKS,
                         split: str = "train") -> list[Record]:
        """Oracle-vs-flawed pairs {"prompt", "chosen", "rejected", "chosen_reward", "rejected_reward"}."""
        rng = random.Random(f"toyworld:{self.seed}:preference_pairs:{split}")
        out = []
        for p in self.prompts(n, split=split, tasks=tasks, instructed_share=instructed_share,
                              stream="preference_pairs"):
            kinds = [k for k in RESPONSE_KINDS[1:] if k not in BREAKING_KINDS or p.instruction_id_list]
            out.append(self._pair(p, make_response(p, "oracle", rng), make_response(p, rng.choice(kinds), rng)))
        return out

    def _pair(self, p: ToyPrompt, chosen: Response, rejected: Response) -> Record:
        rc = scalar_reward(helpsteer_labels(assess(p, chosen.text, coherent=chosen.coherent)))
        rr = scalar_reward(helpsteer_labels(assess(p, rejected.text, coherent=rejected.coherent)))
        return {"prompt": p.text, "chosen": chosen.text, "rejected": rejected.text, "chosen_reward": rc,
                "rejected_reward": rr, "meta": {**prompt_meta(p), "rejected_kind": rejected.kind}}

    def helpsteer(self, n: int, *, instructed_share: float = 0.6, responses_per_prompt: int = 2,
                  broken_share: float = 0.4, tasks: Sequence[str] = LEARNABLE_TASKS,
                  split: str = "train") -> list[Record]:
        """n HelpSteer rows {"prompt", "response", helpfulness, correctness, coherence, complexity, verbosity}.

        Like HelpSteer2, each prompt gets `responses_per_prompt` responses of different kinds (consecutive rows),
        so what separates two answers to one question is in the data. A response to a prompt with instructions
        breaks one of them with probability `broken_share` (with the right or a wrong answer, equally often); the
        other kinds are drawn uniformly.
        """
        if responses_per_prompt < 1 or not 0.0 <= broken_share <= 1.0:
            raise ValueError(f"helpsteer needs responses_per_prompt >= 1 and broken_share in [0, 1], got "
                             f"{responses_per_prompt} and {broken_share}")
        rng = random.Random(f"toyworld:{self.seed}:helpsteer:{split}")
        n_prompts = -(-n // responses_per_prompt)
        out: list[Record] = []
        for p in self.prompts(n_prompts, split=split, tasks=tasks, instructed_share=instructed_share,
                              stream="helpsteer"):
            used: set[str] = set()  # kinds already given to this prompt: its responses differ
            for _ in range(min(responses_per_prompt, n - len(out))):
                if p.instruction_id_list and not used & set(BREAKING_KINDS) and rng.random() < broken_share:
                    kind = rng.choice(BREAKING_KINDS)  # right or wrong answer: a missing format says nothing of it
                else:
                    kind = rng.choice([k for k in RESPONSE_KINDS if k not in used and k not in BREAKING_KINDS])
                used.add(kind)
                r = make_response(p, kind, rng)
                labels = helpsteer_labels(assess(p, r.text, coherent=r.coherent))
                out.append({"prompt": p.text, "response": r.text, **labels,
                            "meta": {**prompt_meta(p), "kind": r.kind}})
        return out

    def rm_pairs(self, n: int, *, split: str = "heldout", tasks: Sequence[str] = LEARNABLE_TASKS) -> list[Record]:
        """Held-out pairs differing in one verifiable attribute (RewardBench shape: prompt/chosen/rejected/subset)."""
        rng = random.Random(f"toyworld:{self.seed}:rm_pairs:{split}")
        attrs = list(PAIR_ATTRIBUTES)
        counts = [n // len(attrs) + (i < n % len(attrs)) for i in range(len(attrs))]
        out = []
        for attr, c in zip(attrs, counts):
            kind, category = PAIR_ATTRIBUTES[attr]
            share = 1.0 if attr == "instruction" else 0.0  # verbosity pairs: no length instruction to break
            for p in self.prompts(c, split=split, tasks=tasks, instructed_share=share, stream=f"rm_pairs_{attr}"):
                rec = self._pair(p, make_response(p, "oracle", rng), make_response(p, kind, rng))
                out.append({**rec, "subset": attr, "category": category})
        return out

    # ---- evaluation sets -------------------------------------------------------------------------------------

    def eval_tasks(self, n_per_task: int, *, tasks: Sequence[str] = LEARNABLE_TASKS) -> list[Record]:
        """Held-out task accuracy without instructions: {"id", "task", "question", "answer", "case_sensitive"}."""
        return [{"id": it.id, "task": it.task, "question": it.prompt, "answer": it.answer,
                 "case_sensitive": it.case_sensitive}
                for t in tasks for it in self.items(t, n_per_task, split="heldout", unique=True, stream="eval")]

    def eval_ifeval(self, n: int, *, tasks: Sequence[str] = LEARNABLE_TASKS) -> list[Record]:
        """Held-out instruction following, IFEval shape {"key", "prompt", "instruction_id_list", "kwargs"}."""
        ps = self.prompts(n, split="heldout", tasks=tasks, instructed_share=1.0, unique=True, stream="eval_ifeval")
        return [{"key": k, "prompt": p.text, "instruction_id_list": list(p.instruction_id_list),
                 "kwargs": [dict(kw) for kw in p.kwargs], "meta": prompt_meta(p)} for k, p in enumerate(ps)]

    def eval_multiple_choice(self, n: int) -> list[Record]:
        """Held-out 4-way multiple choice (MMLU shape {"question", "choices", "answer", "subject"})."""
        rng = random.Random(f"toyworld:{self.seed}:mc")
        n_facts = round(n * 0.6)
        its = self.items("fact_recall", n_facts, split="heldout", unique=True, stream="mc")
        its += self.items("sum_1digit", (n - n_facts) // 2, split="heldout", unique=True, stream="mc")
        its += self.items("letter_count", n - len(its), split="heldout", unique=True, stream="mc")
        out = []
        for it in its:
            choices = [it.answer, *it.distractors[:3]]
            rng.shuffle(choices)
            out.append({"question": it.prompt, "choices": choices, "answer": choices.index(it.answer),
                        "subject": it.task})
        return out

    def eval_code(self, n: int) -> list[Record]:
        """Held-out function writing, HumanEval shape {"task_id", "prompt", "canonical_solution", "test", ...}."""
        return [{"task_id": f"toy/{i}", **{k: getattr(it.function, k) for k in
                                          ("prompt", "canonical_solution", "test", "entry_point")}}
                for i, it in enumerate(self.items("code_write", n, split="heldout", unique=True, stream="eval"))]

    # ---- judging ---------------------------------------------------------------------------------------------

    @staticmethod
    def judge(record: Mapping[str, Any], response: str) -> Record:
        """Ground-truth + verifier judgement of a response to a prompt record with "meta" (SDG judge)."""
        if not isinstance(record.get("meta"), Mapping) or "answer" not in record["meta"]:
            raise ValueError(f"toy judge: record {str(record.get('id', ''))!r} has no toy-world 'meta' with an "
                             f"answer; judge only records made by ToyWorld (preference_prompts, eval_ifeval, ...)")
        p = prompt_from_meta(record["meta"])
        a = assess(p, response)
        labels = helpsteer_labels(a)
        return {"correct": a.correct, "followed": list(a.followed), "coherent": a.coherent, **labels,
                "reward": scalar_reward(labels)}


@functools.lru_cache(maxsize=8)
def toy_world(seed: int = 0, **kw: Any) -> ToyWorld:
    """A cached ToyWorld (building one is cheap, but callers in one process can share it)."""
    return ToyWorld(seed, **kw)


def check_task_response(record: Mapping[str, Any], response: str) -> bool:
    """Exact-match checker for an `eval_tasks` record (the module's answer-reading rules)."""
    item = TaskItem(record["task"], record["id"], record["question"], record["answer"], "", (), 0,
                    bool(record.get("case_sensitive", False)))
    return item.check(response)

