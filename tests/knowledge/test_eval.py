"""`wastecoach eval coach` (server.knowledge.eval.main) on small question sets and the real one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from server.knowledge.eval import QUESTIONS, load_questions, main


def _write(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n")
    return path


def test_prints_accuracy_per_language_and_the_misses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = _write(
        tmp_path / "q.jsonl",
        [
            {"_comment": "test set"},
            {"q": "닭뼈", "lang": "ko", "stream": "general"},
            {"q": "milk carton", "lang": "en", "stream": "paper_pack", "middle": "종이팩"},
            # Deliberately wrong label: must be reported as a miss.
            {"q": "영수증", "lang": "ko", "stream": "paper"},
        ],
    )
    code = main(["--questions", str(questions), "--lexical-only", "--min-accuracy", "0.9"])
    out = capsys.readouterr().out
    assert "stream accuracy [ko]: 1/2 = 50.0%" in out
    assert "stream accuracy [en]: 1/1 = 100.0%" in out
    assert "stream accuracy [all]: 2/3 = 66.7%; wrong bin named: 1" in out
    assert "stream accuracy [ko]: 1/2 = 50.0%; wrong bin named: 1" in out
    assert "stream accuracy [en]: 1/1 = 100.0%; wrong bin named: 0" in out
    assert "official middle category accuracy: 1/1 = 100.0%" in out
    assert "'영수증': expected paper, got general" in out
    assert code == 1
    assert main(["--questions", str(questions), "--lexical-only", "--min-accuracy", "0.6"]) == 0


def test_refused_questions_count_as_misses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = _write(tmp_path / "q.jsonl", [{"q": "ゴミ箱", "lang": "ja", "stream": "general"}])
    assert main(["--questions", str(questions), "--lexical-only"]) == 1
    assert "refused: unsupported_language" in capsys.readouterr().out


def test_bad_record_is_reported_with_its_line(tmp_path: Path) -> None:
    questions = _write(tmp_path / "q.jsonl", [{"q": "닭뼈", "lang": "ko", "stream": "bones"}])
    with pytest.raises(SystemExit, match=re.escape("q.jsonl:1: bad question record")):
        load_questions(questions)


def test_shipped_question_set_is_large_and_mixed() -> None:
    questions = load_questions(QUESTIONS)
    assert len(questions) >= 120
    assert {q.lang for q in questions} == {"ko", "en"}
    assert sum(q.lang == "en" for q in questions) >= 40


def test_shipped_question_set_passes_the_bar_without_embeddings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--lexical-only", "--min-accuracy", "0.9"]) == 0
    assert "stream accuracy [all]" in capsys.readouterr().out


def test_wastecoach_eval_coach_reports_search_chat_and_scan_coaching(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue-15 report in one command: search, then chat and scan coaching, per language."""
    from server.cli import main as cli_main

    search = _write(tmp_path / "q.jsonl", [{"q": "닭뼈", "lang": "ko", "stream": "general"}])
    chat = _write(
        tmp_path / "chat.jsonl",
        [
            {"q": "닭뼈 음식물 쓰레기예요?", "lang": "ko", "streams": ["general"], "yes_no": "no"},
            {"q": "milk carton", "lang": "en", "streams": ["paper_pack"]},
        ],
    )
    args = ["eval", "coach", "--questions", str(search), "--lexical-only"]
    code = cli_main([*args, "--chat-questions", str(chat)])
    out = capsys.readouterr().out
    assert "stream accuracy [ko]: 1/1 = 100.0%; wrong bin named: 0" in out
    assert "chat eval: 2 questions from chat.jsonl" in out
    assert re.search(r"\[ko\] right 1/1 = 100.0%; stream .*; key .*; wrong bin named: 0", out)
    assert re.search(r"\[en\] right 1/1 = 100.0%; .*wrong bin named: 0", out)
    assert "scan coaching [ko]: own bin named" in out
    assert "scan coaching [en]: own bin named" in out
    assert code == 0
