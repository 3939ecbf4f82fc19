"""Per-stage reports: the paper-shaped table, a multi-stage suite with fixed-answer models, the CLI end to end."""

import json

import numpy as np
import pytest

from nemotron_jax.eval import cli, report, suite
from nemotron_jax.eval.generative import prompt_text


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_paper_table_shape():
    md = report.stage_table(report.PAPER_STAGES, digits=2)
    lines = md.strip().split("\n")
    assert lines[0] == "| Stage | MT-Bench | MMLU | GSM8K | HumanEval | IFEval-P | IFEval-I |"
    assert lines[-1] == "| + RPO (3) | 8.22 | 78.70 | 92.30 | 73.20 | 79.90 | 86.10 |" and len(lines) == 8


def test_missing_cells_and_column_union():
    md = report.stage_table({"a": {"X": 50.0}, "b": {"Y": 12.345}})
    assert "| a | 50.0 | – |" in md and "| b | – | 12.3 |" in md


@pytest.fixture
def data(tmp_path):
    _write(tmp_path / "mmlu.jsonl", [{"question": f"q{i}", "choices": ["a", "b"], "answer": i % 2, "subject": "s"}
                                     for i in range(4)])
    _write(tmp_path / "gsm.jsonl", [{"question": f"What is {i}+{i}?", "answer": f"#### {2 * i}"} for i in range(4)])
    _write(tmp_path / "ife.jsonl", [{"key": 1, "prompt": "lowercase please", "kwargs": [{}],
                                     "instruction_id_list": ["change_case:english_lowercase"]}])
    _write(tmp_path / "he.jsonl", [{"task_id": "t0", "prompt": "def f(x):\n", "entry_point": "f",
                                    "test": "def check(g):\n    assert g(2) == 4\n"}])
    _write(tmp_path / "rb.jsonl", [{"prompt": "p", "chosen": "good long", "rejected": "bad", "subset": "hep-go"}])
    (tmp_path / "suite.json").write_text(json.dumps({"benchmarks": [
        {"name": "MMLU", "kind": "mc", "path": "mmlu.jsonl"},
        {"name": "GSM8K", "kind": "gsm8k", "path": "gsm.jsonl"},
        {"name": "IFEval", "kind": "ifeval", "path": "ife.jsonl"},
        {"name": "HumanEval", "kind": "code", "path": "he.jsonl"},
        {"name": "RB", "kind": "reward", "path": "rb.jsonl"}]}))
    return tmp_path


class Stage:
    """A fixed-answer model: `skill` of the items right (MC picks B; math is right for i < skill*4)."""

    def __init__(self, skill):
        self.skill = skill

    def loglikelihood(self, requests):
        return [(0.0 if k == " B" else -1.0, False) for _, k in requests]

    def generate(self, prompts, *, max_tokens, stop=()):
        out = []
        for p in map(prompt_text, prompts):
            if "def f" in p:
                out.append("    return x * 2\n" if self.skill > 0.5 else "    return x\n")
            elif "lowercase" in p:
                out.append("all lowercase" if self.skill > 0.5 else "SHOUTING")
            else:
                i = int(p.rsplit("What is ", 1)[1].split("+")[0])
                out.append(f" #### {2 * i if i < self.skill * 4 else -1}")
        return out

    def reward(self, prompts, responses):
        return np.array([len(r) for r in responses], float) * (1 if self.skill > 0.5 else -1)


def test_suite_over_stages_gives_exact_table_and_resumes(data):
    benches = suite.load_suite(data / "suite.json")
    stages = [("weak", lambda: suite.ModelHandle("weak", Stage(0.25), Stage(0.25), Stage(0.25))),
              ("strong", lambda: suite.ModelHandle("strong", Stage(0.75), Stage(0.75), None))]
    table = suite.evaluate_stages(stages, benches, out_dir=data / "out", log=lambda s: None)
    assert table["weak"] == {"MMLU": 50.0, "GSM8K": 25.0, "IFEval-P": 0.0, "IFEval-I": 0.0, "HumanEval": 0.0,
                             "RB": 0.0}
    assert table["strong"] == {"MMLU": 50.0, "GSM8K": 75.0, "IFEval-P": 100.0, "IFEval-I": 100.0,
                               "HumanEval": 100.0}  # no reward head: RB skipped
    boom = lambda: (_ for _ in ()).throw(AssertionError("a finished stage must not be reloaded"))
    again = suite.evaluate_stages([("weak", boom)], benches, out_dir=data / "out", log=lambda s: None)
    assert again["weak"] == table["weak"]
    cli.write_report(data / "out", table, paper=True)
    md = (data / "out" / "report.md").read_text()
    assert "| strong | 50.0 | 75.0 | 100.0 | 100.0 | 100.0 | – |" in md and "+ RPO (3)" in md
    assert (data / "out" / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_suite_errors(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"benchmarks": [{"name": "x", "kind": "quiz", "path": "p"}]}))
    with pytest.raises(suite.SuiteError, match="kind 'quiz'"):
        suite.load_suite(tmp_path / "s.json")
    (tmp_path / "s.json").write_text(json.dumps({"benchmarks": [{"name": "x", "kind": "mc", "path": "p", "kk": 1}]}))
    with pytest.raises(suite.SuiteError, match="unknown: \\['kk'\\]"):
        suite.load_suite(tmp_path / "s.json")


def test_cli_smoke_random_init_multiple_choice(data, capsys):
    out = data / "cli_out"
    rc = cli.main(["run", "--bench", "MMLU:mc:" + str(data / "mmlu.jsonl") + ":1", "--stage", "rand=preset:toy-tiny",
                   "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["rand"]) == {"MMLU"} and 0.0 <= res["rand"]["MMLU"] <= 100.0
    assert cli.main(["report", str(out)]) == 0 and "| rand |" in capsys.readouterr().out


def test_cli_errors_are_one_line(data, capsys):
    assert cli.main(["run", "--bench", "M:mc:x.jsonl", "--stage", "nonsense", "--out", str(data)]) == 2
    assert "NAME=MODEL" in capsys.readouterr().err
    (data / "bad.jsonl").write_text('{"question": "q", "choices": ["a", "b"], "answer": 0}\n[1, 2]\n')
    assert cli.main(["run", "--bench", f"M:mc:{data / 'bad.jsonl'}", "--stage", "s=preset:toy-tiny",
                     "--out", str(data / "o")]) == 2
    assert "bad.jsonl:2: expected a JSON object" in capsys.readouterr().err
