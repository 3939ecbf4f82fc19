"""The toy world: a seeded, download-free stand-in for every dataset the Nemotron-4 recipe needs.

    tw = ToyWorld(seed=0, n_people=48, n_places=12, n_things=24, heldout_fraction=0.2)

Pretraining (blended by characters like the paper's 70% English / 15% multilingual / 15% code):
    tw.documents(n_chars, blend={"english": .7, "lingo": .15, "code": .15}) -> iter of {"text", "source"}
    tw.tokenizer_texts(n_chars)             -> iter of str (corpus + chat-style task text)
Tasks with verifiable answers (all answers one line; `item.check(response) -> bool`):
    tw.items(task, n, split="train"|"heldout", unique=False) -> [TaskItem]
        tasks: fact_recall letter_count uppercase reverse sum_1digit (LEARNABLE_TASKS), sum_2digit program_trace
        (HARD_TASKS), code_write (HumanEval-shaped, checked by running tests in a subprocess)
    tw.prompts(n, split, tasks, instructed_share, max_instructions) -> [ToyPrompt]  (item + IFEval instructions)
    oracle_response(prompt), make_response(prompt, kind, rng), assess(prompt, text), helpsteer_labels(assessment)
Alignment records (plain dicts; every record also carries "meta" to rebuild/judge the prompt):
    tw.code_sft(n)                          -> [{"messages": [user, assistant]}]   program tracing + function writing
    tw.general_sft(n, instructed_share=.04, two_turn_share=0) -> [{"messages": [...]}]  (+ 2nd turns: new task or
                                                 "rewrite your answer" under an instruction)
    tw.preference_prompts(n)                -> SDG items [{"id", "prompt", "messages", "answer", "instruction_ids",
                                                 "instruction_kwargs"}]; judge responses with ToyWorld.judge
    tw.preference_pairs(n)                  -> [{"prompt", "chosen", "rejected", "chosen_reward", "rejected_reward"}]
    tw.helpsteer(n)                         -> [{"prompt", "response", "helpfulness", "correctness", "coherence",
                                                 "complexity", "verbosity"}]       labels by rules (responses.py)
    tw.rm_pairs(n, split="heldout")         -> pairs differing in one attribute, "subset" names it, "category"
    ToyWorld.judge(record, response)        -> {"correct", "followed", "coherent", 5 labels, "reward"}
Held-out evaluation sets (only `heldout` items):
    tw.eval_tasks(n_per_task)   {"id", "task", "question", "answer", "case_sensitive"}; check_task_response(rec, text)
    tw.eval_ifeval(n)           IFEval {"key", "prompt", "instruction_id_list", "kwargs"}
    tw.eval_multiple_choice(n)  MMLU {"question", "choices", "answer": index, "subject"}
    tw.eval_code(n)             HumanEval {"task_id", "prompt", "canonical_solution", "test", "entry_point"}
    evaluate_tasks(generator, tw.eval_tasks(n)) (evaluate.py) -> {"accuracy", "per_task", "predictions"}
Files (export.py): `write_run_data(ToyWorldConfig, run_dir)` writes all of the above as JSONL under run_dir/data;
`build_toy_data(run_dir, cfg)` adds a trained tokenizer; `quick_config()` is the --quick size; `pretrain_data(cfg,
tokenizer)` is the corpus as a TextData blend of in-memory sources.

Splits: an item's split is a seeded hash of its id, so held-out items never appear in any training record. The
pretraining corpus is world *knowledge*: it states every fact (held-out facts too, as biographies) and practice
sheets of sums and spellings, but its Q/A quiz sheets use training-split items only; the held-out evaluation asks
questions that neither the quiz sheets nor the alignment data ever asked.
"""

from nemotron_jax.data.toyworld.api import (PAIR_ATTRIBUTES, ToyWorld, check_task_response, prompt_from_meta,
                                            prompt_meta, toy_world)
from nemotron_jax.data.toyworld.corpus import DEFAULT_BLEND, SOURCES
from nemotron_jax.data.toyworld.instructions import TOY_INSTRUCTIONS, ToyPrompt, breaking_response, oracle_response
from nemotron_jax.data.toyworld.responses import (BREAKING_KINDS, RESPONSE_KINDS, Assessment, Response, assess,
                                                  helpsteer_labels, make_response, scalar_reward, verbosity_label)
from nemotron_jax.data.toyworld.tasks import (ALL_TASKS, HARD_TASKS, LEARNABLE_TASKS, TaskItem, extract_answer,
                                              split_of)

__all__ = [
    "ALL_TASKS", "Assessment", "BREAKING_KINDS", "DEFAULT_BLEND", "HARD_TASKS", "LEARNABLE_TASKS", "PAIR_ATTRIBUTES",
    "RESPONSE_KINDS",
    "Response", "SOURCES", "TOY_INSTRUCTIONS", "TaskItem", "ToyPrompt", "ToyWorld", "assess", "breaking_response",
    "check_task_response", "extract_answer", "helpsteer_labels", "make_response", "oracle_response",
    "prompt_from_meta", "prompt_meta", "scalar_reward", "split_of", "toy_world", "verbosity_label",
]
