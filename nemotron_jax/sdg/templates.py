"""Prompt templates for every SDG stage, as data: `PromptTemplate`s in one table, overridable from a JSON file.

A template is `str.format` text with named fields; `render` fails with the template's name and the missing field.
A pipeline config may pass `"templates": "my_templates.json"` ({name: text}) to replace any of them.
"""

from __future__ import annotations

import dataclasses
import json
import string
from typing import Mapping, Optional


@dataclasses.dataclass(frozen=True)
class PromptTemplate:
    """A named prompt with `{field}` slots."""

    name: str
    text: str

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.text) if f)

    def render(self, **values: object) -> str:
        missing = [f for f in self.fields if f not in values]
        if missing:
            raise KeyError(f"template {self.name!r} needs fields {missing}; got {sorted(values)}")
        return self.text.format(**values)


_DEFAULTS = {
    # --- open Q&A (SPEC §4: macro topics -> subtopics -> questions -> revision)
    "macro_topics": "Can you generate {n} comprehensive topics that encompass various aspects of our daily life, "
                    "the world, and science? Your answer should be a list of topics. Make the topics as diverse as "
                    "possible. For example, 1. Food and drinks. \n2. Technology.\n",
    "subtopics": "Can you generate {n} comprehensive topics that encompass various aspects of {topic}? Your answer "
                 "should be a list of topics. Make the topics as diverse as possible.",
    "open_qa_questions": "Can you generate {n} questions or requests related to {topic}? The questions and requests "
                         "should be as diverse as possible. Your answer should be a list.",
    "revise_open_qa": "Question: {prompt}\n\nCan you revise the question above to include more contexts or details? "
                      "The revised question can be any of the following:\n1. Adding some context to the original "
                      "question.\n2. Asking for a specific output format.\n3. Making the request more detailed.\n"
                      "Give only the revised question, nothing else.",
    # --- writing
    "writing_tasks": "Can you generate {n} tasks, each of which asks to write a {document_type} about {topic}? "
                     "Make the tasks as diverse as possible. Your answer should be a list of tasks.",
    "revise_writing": "TASK: {prompt}\n\nCan you revise the task above to include more detailed requirements? These "
                      "requirements can be any of the following:\n1. Specifying the length or format.\n2. Asking "
                      "for a particular style or audience.\n3. Adding constraints on the content.\nGive only the "
                      "revised task, nothing else.",
    # --- closed Q&A over supplied documents
    "closed_qa_instructions": "TEXT: {document}\n\nGiven the text above, generate {n} different instructions that "
                              "a user might ask about it (e.g. summarise, answer a question from the text, extract "
                              "facts). Your answer should be a list of instructions.",
    "closed_qa_join": "{document}\n\n{instruction}",
    # --- math & python
    "keywords": "List {n} {domain} keywords (concepts, functions, techniques) related to {topic}. Your answer should "
                "be a list of keywords only.",
    "classify_entity": "Does the concept \"{keyword}\" belong to {domain}? Answer only \"yes\" or \"no\".",
    "problems": "Generate {n} {domain} problems about {keyword} at {level} level. Each problem must be "
                "self-contained. Your answer should be a list of problems.",
    # --- instruction following
    "instruction_attach": "{prompt} {instruction}",
    "instruction_multi_turn_system": "In this conversation, always follow this rule in every reply: {instruction}",
    "instruction_second_turn": "Please revise your previous answer. {instruction}",
    # --- two-turn prompts and dialogues
    "two_turn_next_user": "Here is a conversation between a user and an assistant.\n{conversation}\n\nWrite the "
                          "user's next question or request, following up naturally. Give only the user's message.",
    "dialogue_user": "You are role-playing a user talking to an AI assistant. Your persona: {persona}\n\nThe "
                     "conversation so far:\n{conversation}\n\nWrite the user's next message, in character. Give "
                     "only the message.",
    # --- judges
    "llm_judge_pair": "Please act as an impartial judge and evaluate the quality of the responses provided by two AI "
                      "assistants to the user question below. Choose the assistant that follows the user's "
                      "instructions and answers the question better. Do not let the order of the responses, their "
                      "length or the assistants' names influence you. After a short explanation, output your final "
                      "verdict strictly as \"[[A]]\" if assistant A is better or \"[[B]]\" if assistant B is better."
                      "\n\n[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{answer_a}\n[The End "
                      "of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{answer_b}\n[The End of "
                      "Assistant B's Answer]",
}

TEMPLATES: dict[str, PromptTemplate] = {k: PromptTemplate(k, v) for k, v in _DEFAULTS.items()}


def load_templates(overrides: Optional[Mapping[str, str] | str] = None) -> dict[str, PromptTemplate]:
    """The default table with `overrides` ({name: text}, or a JSON file of that) replacing entries by name."""
    table = dict(TEMPLATES)
    if overrides is None:
        return table
    if isinstance(overrides, str):
        with open(overrides) as f:
            overrides = json.load(f)
    for name, text in overrides.items():
        if name not in table:
            raise KeyError(f"template override {name!r} is not a known template; known: {sorted(table)}")
        table[name] = PromptTemplate(name, text)
    return table
