"""Synthetic data generation (SPEC §4): the Nemotron-4 prompt, response, judge and preference pipeline.

    nemotron-jax sdg nemotron_jax/sdg/configs/toyworld.py [--shard i/n]    # run or resume a pipeline

Modules:
    instructions  IFEval-style verifiable instructions: REGISTRY, get(id).describe/verify/verify_loose, follows(),
                  sample_instructions()
    clients       ModelClient(backend, cache=ResponseCache(path)) with chat/complete/reward; OpenAIBackend (any
                  OpenAI-compatible endpoint), InProcessBackend (InferenceClient.as_sdg_backend()), ScriptedBackend
    templates     every stage's prompt as data (TEMPLATES; load_templates(overrides))
    parsing       list/yes-no/verdict/answer parsing, polite-filler cleaning
    stages        sources (seed, jsonl, toyworld) and prompt stages (macro_topics, subtopics, open_qa, revise,
                  writing_tasks, closed_qa, keywords, classify, problems, instructions, two_turn, dialogue,
                  to_prompt) and responses
    judges        judge_ground_truth, judge_verifier, judge_llm (both orders), judge_rm, judge_toyworld, rm_score
    preference    pairs (best_vs_worst | all_pairs, margin, same / contrast judge fields), best_response (SFT rows)
    filters       filter_reward, filter_length, dedup (exact + MinHash/LSH near duplicates), select_split
    runner        PipelineConfig, run_pipeline, merge_shards, cli_main
    fake          fake_llm: a deterministic stand-in model for dry runs
"""
