"""`nemotron-jax serve`: an OpenAI-compatible HTTP server (standard library only) over the batching sampler.

    nemotron-jax serve --checkpoint DIR [--tokenizer PATH] [--host 127.0.0.1 --port 8000]
    nemotron-jax serve --preset toy-small --random-init          # smoke tests (byte-level tokenizer)

Routes: GET /health, GET /v1/models, POST /v1/completions, POST /v1/chat/completions, POST /v1/reward (reward-model
checkpoints). Every request thread hands its rows to one BatchingEngine, so concurrent requests share device
batches. Bad input gets an OpenAI-style JSON error with a 4xx status; SIGTERM/SIGINT stop accepting, let in-flight
requests finish, then exit.

Checkpoint folders understood by --checkpoint:
    <dir>/model_config.json + <dir>/params     parameters-only checkpoint (checkpoint/params_io.py)
    <dir>/config.json + *.safetensors          a Hugging Face NemotronForCausalLM folder (checkpoint/hf.py)
    a training run / checkpoints / step folder  (checkpoint/manager.py; needs --preset for the model shape)
A reward-model checkpoint (params with a `reward_head`) is served on /v1/reward only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from nemotron_jax.inference.api import APIError, InferenceService

log = logging.getLogger("nemotron_jax.serve")
MAX_BODY_BYTES = 32 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nemotron-jax"
    # A stream's events go out as separate writes; with Nagle on, a kept-alive connection waits ~40 ms for the
    # client's delayed ACK before the next one leaves (measured when headers and body were separate writes: 15 -> 54
    # requests/s at concurrency 1).
    disable_nagle_algorithm = True
    # Buffered writes: a response leaves in one send when the handler returns (http.server flushes), instead of a
    # send for the headers and another for the body (each a GIL release and re-acquire among the request threads).
    wbufsize = 1 << 16
    service: InferenceService  # set on the subclass made by make_server

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s " + fmt, self.address_string(), *args)

    # ---- plumbing -----------------------------------------------------------------------------------------------

    def _send_json(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, err: APIError) -> None:
        self._send_json(err.status, err.body())

    def _read_json(self) -> Any:
        length = self.headers.get("Content-Length")
        if length is None:
            raise APIError(411, "a Content-Length header is required", code="length_required")
        try:
            n = int(length)
        except ValueError:
            raise APIError(400, f"bad Content-Length {length!r}") from None
        if n > MAX_BODY_BYTES:
            raise APIError(413, f"the request body is {n} bytes; the limit is {MAX_BODY_BYTES}")
        raw = self.rfile.read(n)
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise APIError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from None

    def _stream(self, chunks: Any) -> None:
        """Server-sent events: one `data: {json}` per chunk, then `data: [DONE]` (chunked transfer encoding)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()  # the client learns at once that the stream is open

        def write(payload: str) -> None:
            data = f"data: {payload}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        try:
            for chunk in chunks:
                write(json.dumps(chunk))
        except Exception as e:  # noqa: BLE001 - headers are out: report in-band, as OpenAI does
            log.exception("stream failed")
            write(json.dumps(APIError(500, f"generation failed: {e}", kind="server_error").body()))
        write("[DONE]")
        self.wfile.write(b"0\r\n\r\n")

    # ---- routes -------------------------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        path = self.path.split("?")[0].rstrip("/")
        if path == "/health":
            self._send_json(200, self.service.health())
        elif path == "/v1/models":
            self._send_json(200, self.service.models())
        elif path.startswith("/v1/models/"):
            name = path[len("/v1/models/"):]
            models = {m["id"]: m for m in self.service.models()["data"]}
            if name in models:
                self._send_json(200, models[name])
            else:
                self._error(APIError(404, f"the model {name!r} does not exist", "model", "model_not_found"))
        else:
            self._error(APIError(404, f"no route GET {path}", code="not_found"))

    def do_POST(self) -> None:  # noqa: N802
        with self.server.tracker:
            self._post()

    def _post(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        routes = {"/v1/completions": self.service.completions, "/v1/chat/completions": self.service.chat_completions,
                  "/v1/reward": self.service.reward}
        try:
            if path not in routes:
                raise APIError(404, f"no route POST {path}", code="not_found")
            result = routes[path](self._read_json())
            if isinstance(result, dict):
                self._send_json(200, result)
            else:
                self._stream(result)
        except APIError as e:
            self._error(e)
        except Exception as e:  # noqa: BLE001 - the server keeps serving
            log.exception("request failed")
            self._error(APIError(500, f"internal error: {type(e).__name__}: {e}", kind="server_error"))


class _InFlight:
    """Counts POST requests being answered, so shutdown can wait for them (idle keep-alive threads are not waited)."""

    def __init__(self) -> None:
        self.count, self.cond = 0, threading.Condition()

    def __enter__(self) -> None:
        with self.cond:
            self.count += 1

    def __exit__(self, *exc: Any) -> None:
        with self.cond:
            self.count -= 1
            self.cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.count == 0, timeout)


class _ConnectionThreads:
    """Daemon threads that each serve one connection at a time and wait for the next one when done: a thread per
    connection, without starting a thread per connection (`Thread.start` waits until the new thread runs, and the
    accept loop spent a quarter of its time there with 32 clients connecting per request). Idle threads exit after
    `idle_s` so a burst does not leave them behind; daemon, so idle keep-alive connections never block exit."""

    def __init__(self, idle_s: float = 60.0):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job that no submitted job has claimed yet
        self.idle_s = idle_s

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            claimed = self._idle > 0
            self._idle -= claimed
        self._jobs.put((fn, args))
        if not claimed:
            threading.Thread(target=self._run, name="nemotron-http", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                fn, args = self._jobs.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # not claimed by a submit in the meantime: leave
                        self._idle -= 1
                        return
                continue  # a job is on its way for this thread
            fn(*args)
            with self._lock:
                self._idle += 1


class InferenceServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not block exit; in-flight work is tracked instead
    allow_reuse_address = True
    request_queue_size = 256  # listen backlog: many clients connect at once (the default 5 resets connections)

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.tracker = _InFlight()
        self._threads_pool = _ConnectionThreads()

    def process_request(self, request: Any, client_address: Any) -> None:
        self._threads_pool.submit(self.process_request_thread, request, client_address)


def make_server(service: InferenceService, host: str = "127.0.0.1", port: int = 8000) -> InferenceServer:
    """A ready-to-serve HTTP server (port 0 picks a free port: see `server.server_address`)."""
    handler = type("Handler", (_Handler,), {"service": service})
    return InferenceServer((host, port), handler)


# ------------------------------------------------------------------------------------------------------------
# Loading a model
# ------------------------------------------------------------------------------------------------------------


def load_model(checkpoint: Optional[str], preset: Optional[str], random_init: bool, seed: int = 0,
               parallel: Any = None):
    """(ModelConfig, params) from a checkpoint folder or a preset with random weights. With `parallel` (the serving
    layout, `serving_mesh`), a params-only folder or training checkpoint is restored straight into its shardings:
    no host or device holds the whole model."""
    import jax

    from nemotron_jax.config import model_preset

    if random_init:
        if not preset:
            raise SystemExit("--random-init needs --preset NAME (e.g. toy-small)")
        from nemotron_jax.model import init_params

        cfg = model_preset(preset)
        return cfg, init_params(cfg, jax.random.key(seed))
    if not checkpoint:
        raise SystemExit("give --checkpoint DIR, or --preset NAME --random-init for a smoke test")
    path = Path(checkpoint)
    if (path / "config.json").exists() and not (path / "model_config.json").exists():
        from nemotron_jax.checkpoint.hf import load_hf_folder

        return load_hf_folder(path)
    if (path / "model_config.json").exists():
        from nemotron_jax.checkpoint.params_io import load_model_config

        cfg = load_model_config(path)
    elif preset:
        cfg = model_preset(preset)
    else:
        raise SystemExit(f"{checkpoint}: a training checkpoint does not record the model shape; add --preset NAME")
    from nemotron_jax.checkpoint.params_io import params_shapes, read_params

    if parallel is None:
        return cfg, read_params(path)
    from nemotron_jax.parallel.training import layout_target

    return cfg, read_params(path, target=layout_target(params_shapes(path), cfg, parallel))


def load_tokenizer_for(path: Optional[str], checkpoint: Optional[str], vocab_size: int):
    """--tokenizer PATH, else <checkpoint>/tokenizer.model, else the byte-level fallback (smoke tests only)."""
    candidates = [path] if path else ([str(Path(checkpoint) / "tokenizer.model")] if checkpoint else [])
    for c in candidates:
        if c and Path(c).exists():
            from nemotron_jax.data.tokenizer import Tokenizer

            return Tokenizer.load(c)
        if path:
            raise SystemExit(f"--tokenizer {path}: no such file")
    from nemotron_jax.inference.byte_tokenizer import ByteTokenizer

    log.warning("no tokenizer given: using the byte-level fallback tokenizer (fine for random-init smoke tests; "
                "a trained checkpoint needs its own --tokenizer)")
    return ByteTokenizer(vocab_size)


def build_service(cfg: Any, params: Any, tokenizer: Any, model_name: str, *, max_rows: int = 64,
                  max_wait_ms: float = 5.0, chunk: int = 16, mesh: Any = None,
                  parallel: Any = None) -> InferenceService:
    """A policy service (params with lm_head) or a reward service (params with reward_head)."""
    from nemotron_jax.inference.engine import BatchingEngine
    from nemotron_jax.inference.sampler import Sampler

    if "reward_head" in params:
        from nemotron_jax.inference.client import reward_scorer

        scorer, lock = reward_scorer(params, cfg, tokenizer), threading.Lock()

        def exclusive(fn):
            with lock:
                return fn()

        return InferenceService(model_name, tokenizer, cfg.max_seq_len, reward_fn=scorer, run_exclusive=exclusive)
    sampler = Sampler(params, cfg, tokenizer=tokenizer, chunk=chunk, mesh=mesh, parallel=parallel)
    engine = BatchingEngine(sampler, max_rows=max_rows, max_wait_ms=max_wait_ms)
    return InferenceService(model_name, tokenizer, cfg.max_seq_len, engine=engine)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nemotron-jax serve", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="checkpoint folder (params-only, HF, or a training run)")
    p.add_argument("--tokenizer", help="SentencePiece .model (default: <checkpoint>/tokenizer.model, else bytes)")
    p.add_argument("--preset", help="model preset (with --random-init, or the shape of a training checkpoint)")
    p.add_argument("--random-init", action="store_true", help="random weights (smoke tests)")
    p.add_argument("--model-name", help="the model id clients send (default: preset or checkpoint folder name)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch", type=int, default=64, help="most live rows (prompts x n) in the device batch")
    p.add_argument("--batch-wait-ms", type=float, default=5.0,
                   help="when idle, how long to collect requests before starting a batch")
    p.add_argument("--decode-chunk", type=int, default=16,
                   help="decode steps per device call (stream granularity; new requests join between chunks)")
    p.add_argument("--seed", type=int, default=0, help="--random-init weights seed")
    p.add_argument("--tensor", type=int, default=1, help="tensor-parallel size (heads, kv heads, mlp, vocab)")
    p.add_argument("--data", type=int, default=1, help="data-parallel size (batch rows)")
    return p


def serving_mesh(tensor: int, data: int):
    """(mesh, ParallelConfig) over the first data*tensor devices, or (None, None) for one device."""
    if tensor * data == 1:
        return None, None
    import jax

    from nemotron_jax.config import ParallelConfig
    from nemotron_jax.parallel.mesh import make_mesh

    pcfg = ParallelConfig(data=data, tensor=tensor)
    if tensor * data > jax.device_count():
        raise SystemExit(f"--tensor {tensor} x --data {data} needs {tensor * data} devices; {jax.device_count()} "
                         f"are visible")
    return make_mesh(pcfg, jax.devices()[:tensor * data]), pcfg


def cli_main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    mesh, pcfg = serving_mesh(args.tensor, args.data)
    cfg, params = load_model(args.checkpoint, args.preset, args.random_init, args.seed, parallel=pcfg)
    tokenizer = load_tokenizer_for(args.tokenizer, args.checkpoint, cfg.vocab_size)
    name = args.model_name or (args.preset if args.random_init else Path(args.checkpoint).name)
    service = build_service(cfg, params, tokenizer, name, max_rows=args.max_batch, max_wait_ms=args.batch_wait_ms,
                            chunk=args.decode_chunk, mesh=mesh, parallel=pcfg)
    del params  # the sampler keeps its own (per-layer) copy: holding the loaded one too would double the memory
    server = make_server(service, args.host, args.port)
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            log.info("signal %d: no new connections; finishing in-flight requests", signum)
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    log.info("serving %s on http://%s:%d/v1 (pid %d)", name, host, port, os.getpid())
    print(f"READY http://{host}:{port}/v1", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.tracker.wait_idle(timeout=120.0)
        server.server_close()
        if service.engine is not None:
            service.engine.close()
        log.info("stopped")
    return 0
