"""What the command line prints for people and for log collectors: log formats, the progress bar, --json."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
import time

import yaml

from benchd.cli import main
from benchd.cli.bench import Progress
from benchd.cli.logs import route_console, setup_logging


def test_json_log_format_is_one_object_per_line_with_the_records_fields():
    stream = io.StringIO()
    setup_logging("INFO", "json", stream=stream)
    try:
        log = logging.getLogger("benchd.service.slots")
        log.info("run %d ended %s", 4, "ok", extra={"run_id": 4, "model": "m", "p99_s": 0.0012})
        try:
            raise ValueError("bad blob")
        except ValueError:
            log.exception("cannot read run %d", 5)
        logging.getLogger("apscheduler.executors.default").info('Running job "poll registry demo"')
        logging.getLogger("apscheduler.scheduler").warning("job missed")
    finally:
        setup_logging("INFO", "text")
    lines = stream.getvalue().splitlines()
    docs = [json.loads(line) for line in lines]
    assert [d["message"] for d in docs] == ["run 4 ended ok", "cannot read run 5", "job missed"]
    first = docs[0]
    assert {"time", "level", "logger", "message"} <= set(first) and first["level"] == "INFO"
    assert first["logger"] == "benchd.service.slots" and first["time"].endswith("+00:00")
    assert (first["run_id"], first["model"], first["p99_s"]) == (4, "m", 0.0012)
    assert "ValueError: bad blob" in docs[1]["exception"]


def test_setup_logging_twice_does_not_double_lines():
    stream = io.StringIO()
    setup_logging("INFO", "text", stream=stream)
    setup_logging("INFO", "text", stream=stream)
    try:
        logging.getLogger("benchd.x").info("once")
    finally:
        setup_logging("INFO", "text")
    assert stream.getvalue().count("once") == 1


class _Terminal(io.StringIO):
    """A TTY that keeps what a person would see: ``\\r\\033[K`` clears the current line."""

    def isatty(self) -> bool:
        return True

    def screen(self) -> list[str]:
        lines, current = [], ""
        for chunk in self.getvalue().split("\n"):
            lines.append(current + chunk.split("\r\033[K")[-1] if "\r\033[K" in chunk else current + chunk)
            current = ""
        return lines


def test_log_records_and_the_progress_bar_never_share_a_line():
    terminal = _Terminal()
    setup_logging("INFO", "text")
    with Progress(terminal, enabled=True) as progress, route_console(progress.write_line):
        progress.on_event({"event": "scenario", "scenario": "single_stream", "batch_size": 1,
                           "warmup_s": 0.2, "min_duration_s": 1.0})  # fmt: skip
        log = logging.getLogger("benchd.devices.meter")
        for i in range(4):
            time.sleep(0.25)  # the bar is drawn in between
            threading.Thread(target=log.warning, args=("telemetry of cuda:0 failed (%d)", i)).start()
        time.sleep(0.25)
    screen = terminal.screen()
    warnings = [line for line in screen if "telemetry of cuda:0 failed" in line]
    assert len(warnings) == 4, screen
    for line in warnings:
        assert line.split(" WARNING ")[0].count("[") == 0 and "%" not in line, line  # no bar on the line
        assert " WARNING benchd.devices.meter: telemetry of cuda:0 failed" in line
    assert "#" in terminal.getvalue() or "-" * 30 in terminal.getvalue()  # the bar was drawn
    assert screen[-1] == ""  # and cleared at the end


def test_bench_prints_a_failed_run_once(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    inputs = [{"name": "x", "shape": ["batch", 64], "dtype": "float32", "range": [-1, 1]}]
    (bad / "benchd.yaml").write_text(yaml.safe_dump({"artifact": "model.pt2", "inputs": inputs}))
    (bad / "model.pt2").write_bytes(b"not a model")
    proc = subprocess.run(
        [sys.executable, "-m", "benchd.cli", "bench", str(bad), "--duration", "0.2s", "--out",
         str(tmp_path / "out")],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("is a file that is not a model") == 1, proc.stderr
    assert proc.stderr.count("benchd bench: run failed (corrupt_artifact)") == 1, proc.stderr
    assert "model.pt2" in proc.stderr


def test_history_json_means_stdout_without_a_value_and_a_file_with_one(tmp_path, capsys):
    config = tmp_path / "benchd.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "devices": {"mode": "none"}}))
    assert main(["history", "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["history", "--config", str(config), "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    target = tmp_path / "runs.json"
    assert main(["history", "--config", str(config), "--json", str(target)]) == 0
    assert "no runs yet in" in capsys.readouterr().out  # the human output still prints
    assert json.loads(target.read_text()) == []
    assert (
        main(["history", "--config", str(config), "--json", str(tmp_path / "no" / "such" / "dir.json")]) == 2
    )
    assert "cannot write --json file" in capsys.readouterr().err
