"""OpenAI-compatible backends: echo-logprob scoring over loopback HTTP equals the in-process scorer."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jax
import numpy as np
import pytest

from nemotron_jax import config
from nemotron_jax.eval import backends, scoring
from nemotron_jax.inference.byte_tokenizer import ByteTokenizer
from nemotron_jax.model import forward, init_params

CFG = config.toy_tiny(vocab_size=264, max_seq_len=32)
TOK = ByteTokenizer(CFG.vocab_size)


@pytest.fixture(scope="module")
def params():
    return init_params(CFG, jax.random.PRNGKey(0))


def _echo_choice(params, ids, text_pieces):
    """An OpenAI echo response for one prompt: per-token log-probs (first None), top-1, offsets, +1 new token."""
    x = np.zeros((1, CFG.max_seq_len), np.int32)
    x[0, :len(ids)] = ids
    logits = np.asarray(forward(params, x, CFG)[0], np.float64)
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    toks = [TOK.decode([i]) if i != CFG.bos_id else "" for i in ids]
    lps, tops = [None], [None]
    for t in range(1, len(ids)):
        lps.append(float(logp[t - 1, ids[t]]))
        best = int(logp[t - 1].argmax())
        tops.append({(TOK.decode([best]) if best >= 7 else f"<{best}>"): float(logp[t - 1, best])})
    nxt = int(logp[len(ids) - 1].argmax())  # the one generated token (max_tokens=1)
    toks.append(TOK.decode([nxt]))
    lps.append(float(logp[len(ids) - 1, nxt]))
    tops.append({toks[-1]: lps[-1]})
    offsets = list(np.cumsum([0] + [len(t) for t in toks[:-1]]))
    return {"text": "".join(toks), "logprobs": {"tokens": toks, "token_logprobs": lps, "top_logprobs": tops,
                                                "text_offset": [int(o) for o in offsets]}}


@pytest.fixture(scope="module")
def server(params):
    """A loopback server: /v1/completions with echo (text prompts get BOS prepended, like a real server)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not body.get("echo"):
                choices = [{"index": i, "text": f" reply {len(p)}", "finish_reason": "stop"}
                           for i, p in enumerate(body["prompt"])]
            else:
                choices = []
                for i, p in enumerate(body["prompt"]):
                    ids = [CFG.bos_id] + TOK.encode(p) if isinstance(p, str) else p
                    choices.append({"index": i, **_echo_choice(params, ids, None)})
            out = json.dumps({"choices": choices}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


REQUESTS = [("Question: 2+2?\nAnswer:", " 4"), ("The cat", " sat on"), ("Hi", " there friend")]


def test_http_echo_scoring_matches_in_process(params, server):
    ref = scoring.ModelScorer(params, CFG, TOK).loglikelihood(REQUESTS)
    for kw in ({}, {"tokenizer": TOK, "add_bos": True, "bos_id": CFG.bos_id}):  # text offsets, then token ids
        got = backends.CompletionsScorer.http(server, "m", batch=2, **kw).loglikelihood(REQUESTS)
        np.testing.assert_allclose([g[0] for g in got], [r[0] for r in ref], rtol=1e-5, atol=1e-4)
        assert [g[1] for g in got] == [r[1] for r in ref]


def test_http_generator_keeps_prompt_order(server):
    gen = backends.CompletionsGenerator.http(server, "m", batch=2, concurrency=2)
    prompts = ["a", "bb", "ccc", "dddd", "eeeee"]
    assert gen.generate(prompts, max_tokens=4) == [f" reply {len(p)}" for p in prompts]


def test_chat_prompts_are_tokenised_as_in_training():
    """Conversations go as data/chat.encode_prompt ids; rendered text splits at the markers the same way."""
    from nemotron_jax.data.chat import encode_prompt, render_chat

    msgs = [{"role": "user", "content": "Hi there"}]
    gen = backends.CompletionsGenerator(lambda body: None, tokenizer=TOK)
    ids_chat, ids_text = gen._prompt([msgs, render_chat(msgs, add_generation_prompt=True)])
    assert ids_chat == encode_prompt(TOK, msgs) == ids_text
    assert TOK.piece_to_id("<extra_id_1>") in ids_chat
    assert backends.CompletionsGenerator(lambda body: None)._prompt([msgs]) == [
        render_chat(msgs, add_generation_prompt=True)]


def test_long_prompts_keep_bos_and_their_newest_tokens():
    gen = backends.CompletionsGenerator(lambda body: None, tokenizer=TOK, max_seq_len=16)
    (ids,) = gen._prompt(["abcdefghijklmnopqrstuvwxyz"], max_tokens=6)
    assert ids == [TOK.bos_id] + TOK.encode("rstuvwxyz") and len(ids) + 6 == 16
    with pytest.raises(backends.BackendError, match="lower max_tokens"):
        gen._prompt(["abc"], max_tokens=16)


def test_server_errors_are_reported():
    def refuse(body):
        raise backends.BackendError("http://x/v1/completions answered 400: 'echo' is not supported")

    with pytest.raises(backends.BackendError, match="echo"):
        backends.CompletionsScorer(refuse).loglikelihood([("a", "b")])
    no_logprobs = lambda body: {"choices": [{"index": 0, "text": "x", "logprobs": None}]}
    with pytest.raises(backends.BackendError, match="echo=True"):
        backends.CompletionsScorer(no_logprobs).loglikelihood([("a", "b")])
    with pytest.raises(backends.BackendError, match="cannot reach"):
        backends.http_post("http://127.0.0.1:9", timeout_s=2)({"prompt": "x"})


def test_in_process_generator_is_greedy_decoding(params):
    """Through the project's in-process client: each text equals step-by-step argmax of `forward` (BOS-prefixed)."""
    from nemotron_jax.inference.client import InferenceClient

    prompts, n_new = ["Hi", "The cat sat"], 5
    with InferenceClient.from_params(params, CFG, TOK) as client:
        got = backends.CompletionsGenerator.in_process(client, batch=2).generate(prompts, max_tokens=n_new)
    for prompt, text in zip(prompts, got):
        assert text == TOK.decode(_greedy_ids(params, [TOK.bos_id] + TOK.encode(prompt), n_new))


def _greedy_ids(params, ids, n_new):
    """Step-by-step argmax of `forward` (right-padded to the window), stopping at eos."""
    ids, new = list(ids), []
    for _ in range(n_new):
        x = np.zeros((1, CFG.max_seq_len), np.int32)
        x[0, :len(ids)] = ids
        nxt = int(np.argmax(forward(params, x, CFG)[0, len(ids) - 1]))
        if nxt == TOK.eos_id:
            break
        ids.append(nxt)
        new.append(nxt)
    return new


@pytest.mark.slow
def test_cli_against_the_projects_server(params, tmp_path, capsys):
    """A stage given as a URL: GSM8K generation over HTTP is greedy decoding; MC is refused with a clear line."""
    from nemotron_jax.eval import cli
    from nemotron_jax.eval.generative import truncate_at_stop
    from nemotron_jax.inference.server import build_service, make_server

    service = build_service(CFG, params, TOK, "tiny", max_wait_ms=1.0)
    srv = make_server(service, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/v1"  # no #model: the CLI asks /v1/models
    try:
        (tmp_path / "gsm.jsonl").write_text("".join(json.dumps({"question": f"{i}+{i}?", "answer": f"#### {2 * i}"})
                                                    + "\n" for i in range(2)))
        (tmp_path / "mmlu.jsonl").write_text(json.dumps({"question": "q", "choices": ["a", "b"], "answer": 0}) + "\n")
        (tmp_path / "suite.json").write_text(json.dumps({"benchmarks": [
            {"name": "G", "kind": "gsm8k", "path": "gsm.jsonl", "max_tokens": 4}]}))
        assert cli.main(["run", "--suite", str(tmp_path / "suite.json"), "--stage", f"srv={url}",
                         "--out", str(tmp_path / "o")]) == 0
        detail = json.loads((tmp_path / "o" / "details" / "srv" / "G.json").read_text())
        for i, row in enumerate(detail["results"]["predictions"]):
            prompt_ids = TOK.encode(f"Question: {i}+{i}?\nAnswer:", bos=True)  # the server puts BOS before text
            want = TOK.decode(_greedy_ids(params, prompt_ids, 4))
            assert row["output"] == truncate_at_stop(want, ("\n\nQuestion:", "Question:"))
        assert cli.main(["run", "--bench", f"M:mc:{tmp_path / 'mmlu.jsonl'}", "--stage", f"srv={url}",
                         "--out", str(tmp_path / "o2")]) == 2
        assert "echo" in capsys.readouterr().err
    finally:
        srv.shutdown()
        service.engine.close()


def test_reward_scorers_in_process_and_http_match_the_head_by_hand(tmp_path):
    """RewardBench scoring of a regression RM: reward = (h_last @ W + b) · the 340B weights, both ways."""
    from nemotron_jax.data.chat import encode_reward_input
    from nemotron_jax.eval.cli import HttpRewardScorer
    from nemotron_jax.eval.reward_bench import ModelRewardScorer
    from nemotron_jax.inference.server import build_service, make_server
    from nemotron_jax.losses.reward import NEMOTRON4_340B_REWARD_WEIGHTS
    from nemotron_jax.model import forward_hidden
    from nemotron_jax.model.heads import init_reward_params

    cfg = CFG.replace(max_seq_len=64)  # the reward template needs ~40 tokens
    rparams = init_reward_params(cfg, jax.random.PRNGKey(3))
    prompts, responses = ["Hi", "Add 2 and 2"], ["Hello!", "4"]
    want = []
    for p, r in zip(prompts, responses):
        ids = encode_reward_input(TOK, [{"role": "user", "content": p}], r)
        x = np.zeros((1, cfg.max_seq_len), np.int32)
        x[0, :len(ids)] = ids
        trunk = {k: rparams[k] for k in ("embed", "layers", "final_norm")}
        h = np.asarray(forward_hidden(trunk, x, cfg)[0, len(ids) - 1], np.float64)
        head = rparams["reward_head"]
        attrs = h @ np.asarray(head["kernel"], np.float64) + np.asarray(head["bias"], np.float64)
        want.append(attrs @ np.asarray(NEMOTRON4_340B_REWARD_WEIGHTS, np.float64))
    got = ModelRewardScorer(rparams, cfg, TOK).reward(prompts, responses)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    srv = make_server(build_service(cfg, rparams, TOK, "rm"), "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    try:
        http = HttpRewardScorer(f"http://127.0.0.1:{srv.server_address[1]}/v1", "rm", batch=1)
        np.testing.assert_allclose(http.reward(prompts, responses), want, rtol=1e-4, atol=1e-4)
    finally:
        srv.shutdown()
