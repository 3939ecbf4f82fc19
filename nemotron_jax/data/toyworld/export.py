"""Write every stage's toy data as JSONL under a run folder, and feed the corpus to the pretraining pipeline.

    run_dir/data/
      manifest.json                      seed, sizes, record counts, corpus characters per source
      pretrain/{english,lingo,code}.jsonl {"text", "source"}   (TextData sources; or use `pretrain_data`)
      tokenizer.txt                      tokenizer training text (documents separated by blank lines)
      tokenizer.model                    (build_toy_data only) SentencePiece BPE trained on that text
      sft_code.jsonl  sft_general.jsonl  {"messages": [...], "meta"}
      preference_prompts.jsonl           SDG items {"id", "prompt", "messages", "answer", "instruction_ids", ...}
      preference_pairs.jsonl             {"prompt", "chosen", "rejected", "chosen_reward", "rejected_reward"}
      helpsteer_train.jsonl  helpsteer_val.jsonl   HelpSteer rows (val: held-out prompts)
      eval/tasks.jsonl  eval/tasks_hard.jsonl  eval/ifeval.jsonl  eval/mc.jsonl  eval/code.jsonl  eval/rm_pairs.jsonl
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterable, Optional

from nemotron_jax.config import ToyWorldConfig
from nemotron_jax.data.toyworld.api import ToyWorld, toy_world
from nemotron_jax.data.toyworld.corpus import ENGLISH_MIX, SOURCES
from nemotron_jax.data.toyworld.tasks import HARD_TASKS

STAGE_FILES = {
    "sft_code": "sft_code.jsonl", "sft_general": "sft_general.jsonl",
    "preference_prompts": "preference_prompts.jsonl", "preference_pairs": "preference_pairs.jsonl",
    "helpsteer_train": "helpsteer_train.jsonl", "helpsteer_val": "helpsteer_val.jsonl",
    "eval_tasks": "eval/tasks.jsonl", "eval_tasks_hard": "eval/tasks_hard.jsonl", "eval_ifeval": "eval/ifeval.jsonl",
    "eval_mc": "eval/mc.jsonl", "eval_code": "eval/code.jsonl", "eval_rm_pairs": "eval/rm_pairs.jsonl",
    "tokenizer_text": "tokenizer.txt",
}


def world_from_config(cfg: ToyWorldConfig) -> ToyWorld:
    return toy_world(cfg.seed, n_people=cfg.n_people, n_places=cfg.n_places, n_things=cfg.n_things,
                     heldout_fraction=cfg.heldout_fraction)


def write_jsonl(path: Path, records: Iterable[dict]) -> int:
    """Write records one JSON object per line; returns the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_run_data(cfg: ToyWorldConfig, run_dir: str | os.PathLike, *,
                   stages: Optional[Iterable[str]] = None) -> dict[str, Any]:
    """Write the corpus and every stage's data under run_dir/data; returns (and writes) the manifest."""
    tw, root = world_from_config(cfg), Path(run_dir) / "data"
    want = set(stages) if stages is not None else set(STAGE_FILES) | {"pretrain"}
    counts: dict[str, int] = {}
    chars = {s: 0 for s in SOURCES}
    if "pretrain" in want:
        (root / "pretrain").mkdir(parents=True, exist_ok=True)
        files = {s: open(root / "pretrain" / f"{s}.jsonl", "w", encoding="utf-8") for s in SOURCES}
        try:
            for doc in tw.documents(cfg.pretrain_chars, blend=cfg.blend, english_mix=dict(cfg.english_mix)):
                files[doc["source"]].write(json.dumps(doc, ensure_ascii=False) + "\n")
                chars[doc["source"]] += len(doc["text"])
        finally:
            for f in files.values():
                f.close()
    helpsteer_kw = dict(instructed_share=cfg.helpsteer_instructed_share,
                        responses_per_prompt=cfg.helpsteer_responses_per_prompt,
                        broken_share=cfg.helpsteer_broken_share)
    builders = {
        "sft_code": lambda: tw.code_sft(cfg.code_sft),
        "sft_general": lambda: tw.general_sft(cfg.general_sft, instructed_share=cfg.instructed_share,
                                              two_turn_share=cfg.two_turn_share),
        "preference_prompts": lambda: tw.preference_prompts(cfg.preference_prompts,
                                                            instructed_share=cfg.preference_instructed_share),
        "preference_pairs": lambda: tw.preference_pairs(cfg.preference_pairs,
                                                        instructed_share=cfg.preference_instructed_share),
        "helpsteer_train": lambda: tw.helpsteer(cfg.helpsteer, **helpsteer_kw),
        "helpsteer_val": lambda: tw.helpsteer(cfg.helpsteer_val, split="heldout", **helpsteer_kw),
        "eval_tasks": lambda: tw.eval_tasks(cfg.eval_per_task),
        "eval_tasks_hard": lambda: tw.eval_tasks(cfg.eval_per_task, tasks=HARD_TASKS),
        "eval_ifeval": lambda: tw.eval_ifeval(cfg.eval_ifeval),
        "eval_mc": lambda: tw.eval_multiple_choice(cfg.eval_mc),
        "eval_code": lambda: tw.eval_code(cfg.eval_code),
        "eval_rm_pairs": lambda: tw.rm_pairs(cfg.eval_rm_pairs),
    }
    for stage, build in builders.items():
        if stage in want:
            counts[stage] = write_jsonl(root / STAGE_FILES[stage], build())
    if "tokenizer_text" in want:
        with open(root / STAGE_FILES["tokenizer_text"], "w", encoding="utf-8") as f:
            for t in tw.tokenizer_texts(cfg.tokenizer_chars):
                f.write(t.strip("\n") + "\n\n")
    manifest = {"toyworld": dataclasses.asdict(cfg), "records": counts, "pretrain_chars": chars,
                "files": {k: str(root / v) for k, v in STAGE_FILES.items() if k in want}}
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def source_texts(source: str, n_chars: int, seed: int = 0, n_people: int = 48, n_places: int = 12,
                 n_things: int = 24, heldout_fraction: float = 0.2,
                 english_mix: Optional[Iterable[tuple[str, float]]] = None) -> list[str]:
    """Documents of one corpus source (english | lingo | code): the `python` TextSource entry point."""
    if source not in SOURCES:
        raise ValueError(f"toy corpus source must be one of {SOURCES}, got {source!r}")
    tw = toy_world(seed, n_people=n_people, n_places=n_places, n_things=n_things, heldout_fraction=heldout_fraction)
    mix = dict(english_mix) if english_mix is not None else ENGLISH_MIX
    return [d["text"] for d in tw.documents(n_chars, blend={source: 1.0}, stream=f"pretrain_{source}",
                                            english_mix=mix)]


def pretrain_data(cfg: ToyWorldConfig, tokenizer: str, **kw: Any) -> "TextData":
    """The toy corpus as a TextData blend of three in-memory sources weighted like the paper (70/15/15)."""
    from nemotron_jax.config import TextData, TextSource  # the data engineer's configs

    weights = cfg.blend
    sources = tuple(
        TextSource("nemotron_jax.data.toyworld.export:source_texts", weight=weights[s], kind="python", name=s,
                   kwargs=(("source", s), ("n_chars", max(1, int(cfg.pretrain_chars * weights[s]))),
                           ("seed", cfg.seed), ("n_people", cfg.n_people), ("n_places", cfg.n_places),
                           ("n_things", cfg.n_things), ("heldout_fraction", cfg.heldout_fraction),
                           ("english_mix", cfg.english_mix)))
        for s in SOURCES if weights.get(s, 0) > 0)
    return TextData(sources=sources, tokenizer=tokenizer, **kw)


def quick_config(**kw: Any) -> ToyWorldConfig:
    """Sizes for the `--quick` recipe and integration tests: every file present, each about 10x smaller."""
    small = dict(pretrain_chars=400_000, tokenizer_chars=200_000, code_sft=200, general_sft=400,
                 preference_prompts=100, preference_pairs=100, helpsteer=200, helpsteer_val=40, eval_per_task=10,
                 eval_ifeval=30, eval_mc=30, eval_code=5, eval_rm_pairs=40)
    return ToyWorldConfig(**{**small, **kw})


def build_toy_data(run_dir: str | os.PathLike, cfg: Optional[ToyWorldConfig] = None, *, vocab_size: int = 4096,
                   whole_role_headers: bool = True, **tokenizer_options: Any) -> dict[str, Any]:
    """Every stage's data (write_run_data) plus a tokenizer trained on the toy text; returns the manifest.

    `whole_role_headers`: the chat template's role headers ("Assistant\\n", ...) are one piece each, as in a
    full-size vocabulary. At a few hundred pieces "Assistant" splits into ~7, and that gap between a question and
    its reply is enough to stop a 2-layer model from answering from what it read (measured: a base model answered
    held-out fact questions in the chat template 0-6% of the time, in the "Q: / A:" sheet format 35%).
    `tokenizer_options` go to `Tokenizer.train` (e.g. `treat_whitespace_as_suffix=True`)."""
    from nemotron_jax.data.chat import ROLE_HEADERS
    from nemotron_jax.data.tokenizer import CHAT_TOKENS, Tokenizer  # the data engineer's SentencePiece wrapper

    cfg = cfg or ToyWorldConfig()
    manifest = write_run_data(cfg, run_dir)
    root = Path(run_dir) / "data"
    symbols = CHAT_TOKENS + (ROLE_HEADERS if whole_role_headers else ())
    tok = Tokenizer.train(world_from_config(cfg).tokenizer_texts(cfg.tokenizer_chars), vocab_size=vocab_size,
                          user_defined_symbols=",".join(symbols), **tokenizer_options)
    tok.save(root / "tokenizer.model")
    manifest["files"]["tokenizer_model"] = str(root / "tokenizer.model")
    manifest["vocab_size"] = vocab_size
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
