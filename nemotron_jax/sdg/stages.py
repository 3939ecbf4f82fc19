"""SDG stages (SPEC §4): each turns one item (a JSON-able dict) into zero or more items, calling models as needed.

Items carry an `id` (children get `parent.j`), the fields a stage reads and writes, and `provenance`: one entry per
stage that touched the item, {"stage", "model", "seed", "judge"}. Prompt-producing stages write `prompt` (text)
and `messages` (the conversation to answer). Stages are dataclasses registered by `type` name so a pipeline config
can list them as dicts: {"type": "subtopics", "model": "gen", "n": 10}.

Per-item stages implement `process(item, ctx)`; whole-set stages (dedup) set `per_item = False` and implement
`process_all(items, ctx)`; sources set `source = True` and make items from nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from typing import Any, ClassVar, Optional, Sequence

from nemotron_jax.data.jsonl import iter_jsonl
from nemotron_jax.sdg import instructions as inst_lib
from nemotron_jax.sdg.clients import ModelClient, Sampling
from nemotron_jax.sdg.parsing import ParseStats, clean_polite_filler, parse_list, parse_yes_no
from nemotron_jax.sdg.templates import PromptTemplate

Item = dict[str, Any]


@dataclasses.dataclass
class Context:
    """What stages share: named model clients, the template table, list-parse counters and the pipeline seed."""

    models: dict[str, ModelClient]
    templates: dict[str, PromptTemplate]
    stats: ParseStats = dataclasses.field(default_factory=ParseStats)
    seed: int = 0

    def model(self, name: str) -> ModelClient:
        if name not in self.models:
            raise KeyError(f"stage asks for model {name!r} but the pipeline defines {sorted(self.models)}")
        return self.models[name]

    def render(self, template: str, **values: Any) -> str:
        if template not in self.templates:
            raise KeyError(f"unknown template {template!r}; known: {sorted(self.templates)}")
        return self.templates[template].render(**values)


def item_seed(pipeline_seed: int, stage: str, item_id: str) -> int:
    """A 31-bit seed fixed by (pipeline seed, stage name, item id): replays ask the exact same requests."""
    h = hashlib.sha256(f"{pipeline_seed}/{stage}/{item_id}".encode()).hexdigest()
    return int(h[:8], 16) & 0x7FFFFFFF


def child(parent: Item, j: int, stage: str, fields: dict, *, model: Optional[str] = None,
          seed: Optional[int] = None, judge: Optional[str] = None) -> Item:
    """A new item derived from `parent`: id `parent.j`, parent's fields updated, provenance extended."""
    out = {k: v for k, v in parent.items() if k not in ("id", "provenance")}
    out.update(fields)
    out["id"] = f"{parent['id']}.{j}"
    out["provenance"] = list(parent.get("provenance", [])) + [
        {"stage": stage, "model": model, "seed": seed, "judge": judge}]
    return out


def annotate(item: Item, stage: str, fields: dict, *, model: Optional[str] = None, seed: Optional[int] = None,
             judge: Optional[str] = None) -> Item:
    """`item` with `fields` added and one provenance entry, same id."""
    out = {**item, **fields}
    out["provenance"] = list(item.get("provenance", [])) + [
        {"stage": stage, "model": model, "seed": seed, "judge": judge}]
    return out


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


STAGES: dict[str, type] = {}


def register(cls: type) -> type:
    STAGES[cls.type] = cls
    return cls


@dataclasses.dataclass
class Stage:
    """Base: a named step; `name` defaults to the type and must be unique in a pipeline."""

    type: ClassVar[str] = ""
    per_item: ClassVar[bool] = True
    source: ClassVar[bool] = False
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.type

    def process(self, item: Item, ctx: Context) -> list[Item]:
        raise NotImplementedError

    def process_all(self, items: list[Item], ctx: Context) -> list[Item]:
        raise NotImplementedError


@dataclasses.dataclass
class GenStage(Stage):
    """A stage that asks one model: sampling settings from the config, seed fixed by item id."""

    model: str = "generator"
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512
    template: str = ""

    def ask(self, ctx: Context, item: Item, messages: list[dict], *, n: int = 1, salt: str = "",
            temperature: Optional[float] = None) -> tuple[list[str], int]:
        seed = item_seed(ctx.seed, self.name + salt, item["id"])
        sampling = Sampling(n=n, temperature=self.temperature if temperature is None else temperature,
                            top_p=self.top_p, max_tokens=self.max_tokens, seed=seed)
        return ctx.model(self.model).chat(messages, sampling), seed

    def ask_list(self, ctx: Context, item: Item, prompt: str, n: int) -> tuple[list[str], int]:
        texts, seed = self.ask(ctx, item, user(prompt))
        return parse_list(texts[0], ctx.stats, max_items=n), seed

    def spawn(self, item: Item, values: Sequence[dict], seed: int) -> list[Item]:
        return [child(item, j, self.name, v, model=self.model, seed=seed) for j, v in enumerate(values)]


# ---------------------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------------------

@register
@dataclasses.dataclass
class SeedItems(Stage):
    """Items written in the config: strings become {field: s}; dicts are copied. Ids are `<name>-<i>`."""

    type: ClassVar[str] = "seed"
    source: ClassVar[bool] = True
    items: list = dataclasses.field(default_factory=lambda: [{}])
    field: str = "topic"

    def process_all(self, items: list[Item], ctx: Context) -> list[Item]:
        out = []
        for i, x in enumerate(self.items):
            row = dict(x) if isinstance(x, dict) else {self.field: x}
            row.setdefault("id", f"{self.name}-{i}")
            row["provenance"] = [{"stage": self.name, "model": None, "seed": None, "judge": None}]
            out.append(row)
        return out


@register
@dataclasses.dataclass
class JsonlSource(Stage):
    """Rows of a JSONL file (e.g. documents for closed Q&A, prompts, ShareGPT turns); `limit` caps the count."""

    type: ClassVar[str] = "jsonl"
    source: ClassVar[bool] = True
    path: str = ""
    limit: Optional[int] = None
    rename: dict = dataclasses.field(default_factory=dict)  # {"text": "document"}
    first_user_turn: bool = False  # real chats (LMSYS/ShareGPT "messages"): keep only the first user turn as prompt

    def process_all(self, items: list[Item], ctx: Context) -> list[Item]:
        out = []
        for lineno, row in iter_jsonl(self.path):
            row = {self.rename.get(k, k): v for k, v in row.items()}
            if self.first_user_turn:
                turns = [m for m in row.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
                if not turns:
                    raise ValueError(f"{self.path}:{lineno}: first_user_turn needs a 'messages' list with a "
                                     f"user turn (rename the conversation field to 'messages')")
                row["prompt"], row["messages"] = turns[0]["content"], [turns[0]]
            row["id"] = str(row.get("id", f"{self.name}-{lineno}"))
            row["provenance"] = [{"stage": self.name, "model": None, "seed": None, "judge": None}]
            out.append(row)
            if self.limit is not None and len(out) >= self.limit:
                break
        return out


@register
@dataclasses.dataclass
class ToyWorldPrompts(Stage):
    """Prompts from the toy world's task generator (`data/toyworld`): tasks with verifiable answers, a share of
    them under IFEval-style instructions; items carry `answer`, `instruction_ids/kwargs` and `meta`."""

    type: ClassVar[str] = "toyworld"
    source: ClassVar[bool] = True
    n: int = 64
    world_seed: int = 0
    instructed_share: float = 0.5
    split: str = "train"
    tasks: Optional[tuple] = None  # default: the toy world's learnable tasks

    def process_all(self, items: list[Item], ctx: Context) -> list[Item]:
        from nemotron_jax.data.toyworld import LEARNABLE_TASKS, toy_world

        rows = toy_world(self.world_seed).preference_prompts(
            self.n, instructed_share=self.instructed_share, tasks=tuple(self.tasks or LEARNABLE_TASKS),
            split=self.split)
        prov = [{"stage": self.name, "model": None, "seed": self.world_seed, "judge": None}]
        return [{**r, "task": r["meta"].get("task") if isinstance(r.get("meta"), dict) else None,
                 "provenance": prov} for r in rows]


# ---------------------------------------------------------------------------------------------------------------
# Prompt generation
# ---------------------------------------------------------------------------------------------------------------

@register
@dataclasses.dataclass
class ToPrompt(Stage):
    """Make a user prompt from a field: {"topic": "tea"} -> {"prompt": "About tea", "messages": [user turn]}.

    `template` is `str.format` text over the item's fields (default: the field's value as is).
    """

    type: ClassVar[str] = "to_prompt"
    field: str = "topic"
    template: Optional[str] = None
    task: Optional[str] = None

    def process(self, item: Item, ctx: Context) -> list[Item]:
        if self.field not in item:
            raise KeyError(f"to_prompt: item {item['id']} has no field {self.field!r}")
        text = str(item[self.field]) if self.template is None else self.template.format(**item)
        fields = {"prompt": text, "messages": user(text)}
        if self.task is not None:
            fields["task"] = self.task
        return [annotate(item, self.name, fields)]


@register
@dataclasses.dataclass
class MacroTopics(GenStage):
    """{} -> n items {"topic"}: the broad topics the rest of the pipeline fans out from."""

    type: ClassVar[str] = "macro_topics"
    n: int = 10
    template: str = "macro_topics"

    def process(self, item: Item, ctx: Context) -> list[Item]:
        topics, seed = self.ask_list(ctx, item, ctx.render(self.template, n=self.n), self.n)
        return self.spawn(item, [{"topic": t} for t in topics], seed)


@register
@dataclasses.dataclass
class Subtopics(GenStage):
    """{"topic"} -> n items {"topic": subtopic, "parent_topic"}."""

    type: ClassVar[str] = "subtopics"
    n: int = 10
    template: str = "subtopics"
    keep_parent: bool = False  # also emit the parent topic itself

    def process(self, item: Item, ctx: Context) -> list[Item]:
        subs, seed = self.ask_list(ctx, item, ctx.render(self.template, n=self.n, topic=item["topic"]), self.n)
        subs = ([item["topic"]] if self.keep_parent else []) + subs
        return self.spawn(item, [{"topic": s, "parent_topic": item["topic"]} for s in subs], seed)


@register
@dataclasses.dataclass
class OpenQA(GenStage):
    """{"topic"} -> n items {"prompt", "messages", "task": "open_qa"}."""

    type: ClassVar[str] = "open_qa"
    n: int = 5
    template: str = "open_qa_questions"

    def process(self, item: Item, ctx: Context) -> list[Item]:
        qs, seed = self.ask_list(ctx, item, ctx.render(self.template, n=self.n, topic=item["topic"]), self.n)
        return self.spawn(item, [{"prompt": q, "messages": user(q), "task": "open_qa"} for q in qs], seed)


@register
@dataclasses.dataclass
class Revise(GenStage):
    """{"prompt"} -> {"prompt": more detailed version, "original_prompt"} (open Q&A or writing revision)."""

    type: ClassVar[str] = "revise"
    template: str = "revise_open_qa"

    def process(self, item: Item, ctx: Context) -> list[Item]:
        texts, seed = self.ask(ctx, item, user(ctx.render(self.template, prompt=item["prompt"])))
        revised = texts[0].strip().strip('"').strip()
        if not revised:
            ctx.stats.add("revise_empty")
            revised = item["prompt"]
        return [annotate(item, self.name, {"prompt": revised, "messages": user(revised),
                                           "original_prompt": item["prompt"]}, model=self.model, seed=seed)]


@register
@dataclasses.dataclass
class WritingTasks(GenStage):
    """{"topic"} -> for each document type, n items {"prompt", "document_type", "task": "writing"}."""

    type: ClassVar[str] = "writing_tasks"
    n: int = 3
    document_types: tuple = ("essay", "poem", "blog post", "letter", "short story")
    template: str = "writing_tasks"

    def process(self, item: Item, ctx: Context) -> list[Item]:
        values, seed = [], None
        for doc_type in self.document_types:
            prompt = ctx.render(self.template, n=self.n, document_type=doc_type, topic=item["topic"])
            texts, seed = self.ask(ctx, item, user(prompt), salt=doc_type)
            values += [{"prompt": t, "messages": user(t), "document_type": doc_type, "task": "writing"}
                       for t in parse_list(texts[0], ctx.stats, max_items=self.n)]
        return self.spawn(item, values, seed)


@register
@dataclasses.dataclass
class ClosedQA(GenStage):
    """{"document"} -> n items whose prompt joins the document with a generated instruction about it."""

    type: ClassVar[str] = "closed_qa"
    n: int = 3
    template: str = "closed_qa_instructions"
    join_template: str = "closed_qa_join"

    def process(self, item: Item, ctx: Context) -> list[Item]:
        doc = item["document"]
        instrs, seed = self.ask_list(ctx, item, ctx.render(self.template, n=self.n, document=doc), self.n)
        prompts = [ctx.render(self.join_template, document=doc, instruction=i) for i in instrs]
        return self.spawn(item, [{"prompt": p, "messages": user(p), "instruction": i, "task": "closed_qa"}
                                 for p, i in zip(prompts, instrs)], seed)


@register
@dataclasses.dataclass
class Keywords(GenStage):
    """{"topic"} -> n items {"keyword", "domain"} (math or Python keywords for problem generation)."""

    type: ClassVar[str] = "keywords"
    n: int = 10
    domain: str = "math"
    template: str = "keywords"

    def process(self, item: Item, ctx: Context) -> list[Item]:
        prompt = ctx.render(self.template, n=self.n, domain=self.domain, topic=item["topic"])
        kws, seed = self.ask_list(ctx, item, prompt, self.n)
        return self.spawn(item, [{"keyword": k, "domain": self.domain} for k in kws], seed)


@register
@dataclasses.dataclass
class ClassifyEntity(GenStage):
    """Keep {"keyword"} items the model says belong to `domain` (yes/no); unclear answers count as failures."""

    type: ClassVar[str] = "classify"
    domain: str = "math"
    template: str = "classify_entity"
    temperature: float = 0.0
    max_tokens: int = 8

    def process(self, item: Item, ctx: Context) -> list[Item]:
        prompt = ctx.render(self.template, keyword=item["keyword"], domain=self.domain)
        texts, seed = self.ask(ctx, item, user(prompt))
        verdict = parse_yes_no(texts[0])
        if verdict is None:
            ctx.stats.add("classify_unclear")
        if not verdict:
            return []
        return [annotate(item, self.name, {"domain": self.domain}, model=self.model, seed=seed)]


@register
@dataclasses.dataclass
class Problems(GenStage):
    """{"keyword"} -> for each level, n items {"prompt", "level", "task": "<domain>_problem"}."""

    type: ClassVar[str] = "problems"
    n: int = 2
    domain: str = "math"
    levels: tuple = ("elementary school", "high school", "college")
    template: str = "problems"

    def process(self, item: Item, ctx: Context) -> list[Item]:
        values, seed = [], None
        for level in self.levels:
            prompt = ctx.render(self.template, n=self.n, domain=self.domain, keyword=item["keyword"], level=level)
            texts, seed = self.ask(ctx, item, user(prompt), salt=level)
            values += [{"prompt": p, "messages": user(p), "level": level, "task": f"{self.domain}_problem"}
                       for p in parse_list(texts[0], ctx.stats, max_items=self.n)]
        return self.spawn(item, values, seed)


@register
@dataclasses.dataclass
class AttachInstructions(GenStage):
    """{"prompt"} -> a prompt with k verifiable instructions (ids + kwargs recorded for the verifier judge).

    mode "single":      [user: prompt + instruction]
    mode "multi_turn":  [user: instruction binding all replies + prompt, assistant: reply, user: follow-up]
    mode "second_turn": [user: prompt, assistant: reply, user: "revise your previous answer" + instruction]
    The assistant/follow-up turns of the two multi-turn modes come from `model`.
    """

    type: ClassVar[str] = "instructions"
    k: int = 1
    mode: str = "single"
    allowed: Optional[list] = None
    share: float = 1.0  # the fraction of items that get instructions (chosen by id); the rest pass unchanged

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("single", "multi_turn", "second_turn"):
            raise ValueError(f"instructions.mode must be single, multi_turn or second_turn, got {self.mode!r}")

    def process(self, item: Item, ctx: Context) -> list[Item]:
        if item_seed(ctx.seed, self.name + "/share", item["id"]) / 2 ** 31 >= self.share:
            return [item]
        rng = random.Random(item_seed(ctx.seed, self.name, item["id"]))
        ids, kwargs = inst_lib.sample_instructions(rng, self.k, allowed=self.allowed, prompt=item["prompt"])
        text = inst_lib.describe(ids, kwargs)
        fields = {"instruction_ids": ids, "instruction_kwargs": kwargs, "instruction_mode": self.mode}
        if self.mode == "single":
            prompt = ctx.render("instruction_attach", prompt=item["prompt"], instruction=text)
            return [annotate(item, self.name, {**fields, "prompt": prompt, "messages": user(prompt)})]
        if self.mode == "second_turn":
            reply, seed = self.ask(ctx, item, user(item["prompt"]))
            msgs = user(item["prompt"]) + [{"role": "assistant", "content": reply[0]}] + user(
                ctx.render("instruction_second_turn", instruction=text))
        else:
            first = ctx.render("instruction_multi_turn_system", instruction=text) + "\n\n" + item["prompt"]
            reply, seed = self.ask(ctx, item, user(first))
            convo = f"User: {item['prompt']}\nAssistant: {reply[0]}"
            follow, _ = self.ask(ctx, item, user(ctx.render("two_turn_next_user", conversation=convo)), salt="/u")
            msgs = user(first) + [{"role": "assistant", "content": reply[0]}] + user(clean_polite_filler(follow[0]))
        return [annotate(item, self.name, {**fields, "messages": msgs}, model=self.model, seed=seed)]


@register
@dataclasses.dataclass
class TwoTurn(GenStage):
    """{"prompt"} -> [user: prompt, assistant: reply, user: generated follow-up] (the next turn gets answered)."""

    type: ClassVar[str] = "two_turn"

    def process(self, item: Item, ctx: Context) -> list[Item]:
        msgs = list(item.get("messages") or user(item["prompt"]))
        reply, seed = self.ask(ctx, item, msgs)
        convo = "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in msgs) + f"\nAssistant: {reply[0]}"
        follow, _ = self.ask(ctx, item, user(ctx.render("two_turn_next_user", conversation=convo)), salt="/u")
        msgs = msgs + [{"role": "assistant", "content": reply[0]}] + user(clean_polite_filler(follow[0]))
        return [annotate(item, self.name, {"messages": msgs, "task": "two_turn"}, model=self.model, seed=seed)]


@register
@dataclasses.dataclass
class Dialogue(GenStage):
    """{"prompt"} -> a `turns`-turn dialogue: the model answers and role-plays a user with a persona (greedy).

    User turns are cleaned of polite filler. The result ends with an assistant turn and is SFT data.
    """

    type: ClassVar[str] = "dialogue"
    turns: int = 3
    temperature: float = 0.0
    personas: tuple = ("a curious student who asks short, direct questions",
                       "a busy professional who wants concise, practical answers",
                       "a skeptical expert who challenges weak arguments")

    def process(self, item: Item, ctx: Context) -> list[Item]:
        persona = self.personas[item_seed(ctx.seed, self.name + "/p", item["id"]) % len(self.personas)]
        msgs = user(item["prompt"])
        seed = None
        for t in range(self.turns):
            reply, seed = self.ask(ctx, item, msgs, salt=f"/a{t}")
            msgs = msgs + [{"role": "assistant", "content": reply[0]}]
            if t == self.turns - 1:
                break
            convo = "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in msgs)
            said, _ = self.ask(ctx, item, user(ctx.render("dialogue_user", persona=persona, conversation=convo)),
                               salt=f"/u{t}")
            msgs = msgs + user(clean_polite_filler(said[0]))
        return [annotate(item, self.name, {"messages": msgs, "persona": persona, "task": "dialogue"},
                         model=self.model, seed=seed)]


# ---------------------------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------------------------

@register
@dataclasses.dataclass
class Responses(GenStage):
    """{"messages"} -> "responses": k samples from each of `models` ({"model", "text", "seed"} each).

    `k_by_model` overrides k per model, e.g. more samples of the best model for hard pairs (the paper's recipe).
    """

    type: ClassVar[str] = "responses"
    models: tuple = ("generator",)
    k: int = 2
    k_by_model: Optional[dict] = None
    temperature: float = 0.8

    def process(self, item: Item, ctx: Context) -> list[Item]:
        out = []
        for name in self.models:
            seed = item_seed(ctx.seed, f"{self.name}/{name}", item["id"])
            k = (self.k_by_model or {}).get(name, self.k)
            sampling = Sampling(n=k, temperature=self.temperature, top_p=self.top_p,
                                max_tokens=self.max_tokens, seed=seed)
            texts = ctx.model(name).chat(item["messages"], sampling)
            out += [{"model": name, "text": t, "seed": seed, "sample": j} for j, t in enumerate(texts)]
        return [annotate(item, self.name, {"responses": out}, model=",".join(self.models))]
