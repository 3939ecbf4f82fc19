"""Evaluation: the paper's kinds of benchmark on local files, and per-stage reports (SPEC §6).

    scoring.py          loglikelihood(params, cfg, contexts, continuations); ModelScorer (text pairs)
    backends.py         CompletionsGenerator / CompletionsScorer over the in-process client or any OpenAI endpoint
    multiple_choice.py  MMLU / ARC / HellaSwag / Winogrande, k-shot, acc and acc_norm, per subject
    generative.py       GSM8K exact match: answer extraction and numeric normalisation; the Generator protocol
    ifeval.py           IFEval prompt/instruction-level accuracy, strict and loose (SDG verifiers)
    reward_bench.py     RewardBench per subset/category/overall for regression or BT reward models
    code_exec.py        HumanEval / MBPP run in subprocesses with time and memory limits; pass@k
    suite.py, report.py one suite over several checkpoints -> Markdown table + PNG (`nemotron-jax eval`)
"""
