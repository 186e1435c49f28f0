"""The benchmark harness works: load generator modes, its SSE/line parsing, and a quick run on mcpmux."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LOADGEN = BENCH / "loadgen.py"
TINY = ["--duration", "0.3", "--warmup", "0.1"]


def load_bench_module(name: str) -> Any:
    """A bench/ script imported as a module (bench/ is not a package)."""
    module_name = f"bench_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def run_loadgen(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(LOADGEN), *args], capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return orjson.loads(done.stdout.splitlines()[-1])


def test_sse_decoder_yields_each_event_whatever_the_chunking() -> None:
    loadgen = load_bench_module("loadgen")
    stream = (
        b"event: endpoint\r\ndata: /m/?session_id=ab\r\n\r\n: ping\r\n\r\n"
        b'event: message\ndata: {"id":1,\ndata: "result":{}}\n\nid: 5\ndata:\n\n'
    )
    expected = [
        (b"endpoint", b"/m/?session_id=ab"),
        (b"message", b'{"id":1,\n"result":{}}'),
        (b"message", b""),
    ]
    for step in (1, 2, 3, 7, len(stream)):
        decoder = loadgen.SseDecoder()
        events = []
        for start in range(0, len(stream), step):
            events += [(name, bytes(data)) for name, data in decoder.feed(stream[start : start + step])]
        assert events == expected


def test_reply_is_found_in_an_sse_body_after_a_priming_event() -> None:
    loadgen = load_bench_module("loadgen")
    body = b'id: 1:1\r\ndata: \r\n\r\nevent: message\r\ndata: {"jsonrpc":"2.0","id":7,"result":{}}\r\n\r\n'
    assert loadgen.reply_problem(body, 7, thorough=True) is None
    assert loadgen.reply_problem(body, 8, thorough=True) is not None


def test_large_replies_are_skimmed_by_their_edges() -> None:
    loadgen = load_bench_module("loadgen")
    text = "x" * (1 << 17)
    ok = orjson.dumps({"jsonrpc": "2.0", "id": 5, "result": {"content": [{"type": "text", "text": text}]}})
    failed = orjson.dumps(
        {"jsonrpc": "2.0", "id": 5, "result": {"content": [], "isError": True, "pad": text}}
    )
    assert loadgen.reply_problem(ok, 5, thorough=False) is None
    assert loadgen.reply_problem(failed, 5, thorough=False) is not None
    assert loadgen.reply_problem(ok, 6, thorough=False) is not None


def test_line_reader_joins_lines_split_across_reads() -> None:
    loadgen = load_bench_module("loadgen")
    reader = loadgen.LineReader()
    big = b"y" * 100_000
    lines: list[bytes] = []
    for chunk in (b"a\nb", big[:50_000], big[50_000:] + b"\nc", b"\n"):
        lines += [bytes(line) for line in reader.feed(chunk)]
    assert lines == [b"a", b"b" + big, b"c"]


def test_direct_mode_completes_calls_without_errors() -> None:
    report = run_loadgen("direct", "--sessions", "1", *TINY)
    assert report["calls"] > 0
    assert report["errors"] == 0, report["error_samples"]


@contextmanager
def null_server(*flags: str) -> Iterator[str]:
    """bench/null_server.py on a socket bound here; yields its base URL."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    command = [sys.executable, str(BENCH / "null_server.py"), "--listen-fd", str(sock.fileno()), *flags]
    server = subprocess.Popen(command, pass_fds=(sock.fileno(),), stderr=subprocess.DEVNULL)
    sock.close()  # the server owns it now; connections wait in the backlog until it serves
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def assert_calls_without_errors(*args: str) -> None:
    report = run_loadgen(*args, *TINY)
    assert report["calls"] > 0, args
    assert report["errors"] == 0, (args, report["error_samples"])


def test_http_merged_big_and_legacy_sse_modes_complete_calls_against_a_null_server() -> None:
    with null_server() as base:
        assert_calls_without_errors("http", "--url", f"{base}/echo/mcp", "--sessions", "2")
        assert_calls_without_errors("http", "--url", f"{base}/mcp", "--tool", "echo__echo")
        assert_calls_without_errors(
            "http", "--url", f"{base}/echo/mcp", "--tool", "big", "--arguments", '{"size":200000}'
        )
        assert_calls_without_errors("sse", "--url", f"{base}/echo/sse", "--sessions", "2")


def test_http_mode_reads_replies_sent_as_event_streams() -> None:
    with null_server("--sse-replies") as base:
        assert_calls_without_errors("http", "--url", f"{base}/echo/mcp", "--sessions", "2")


def test_quick_benchmark_of_mcpmux_completes_every_phase_without_errors(tmp_path: Path) -> None:
    pytest.importorskip("mcpmux")
    results_path = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick", "--json", str(results_path)],
        capture_output=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert results_path.exists(), done.stderr.decode()[-3000:]
    results = orjson.loads(results_path.read_bytes())
    phases = {**results["direct"], **results["targets"]["mcpmux"]}
    measured = {name: r for name, r in phases.items() if isinstance(r, dict) and "calls" in r}
    assert {"stdio_1", "streamable_1", "streamable_16", "sse_16", "merged_16", "big_1"} <= set(measured)
    for name, phase in measured.items():
        assert "failed" not in phase, (name, phase["failed"])
        assert phase["calls"] > 0, name
        assert phase["errors"] == 0, (name, phase.get("error_samples"))
    assert results["errors"] == 0
    assert done.returncode == 0, done.stderr.decode()[-3000:]


def test_quick_soak_keeps_the_well_behaved_clients_error_free(tmp_path: Path) -> None:
    pytest.importorskip("mcpmux")
    result_path = tmp_path / "soak.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "soak.py"),
            "--quick",
            "--json",
            str(result_path),
        ],
        capture_output=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result_path.exists(), done.stderr.decode()[-3000:]
    result = orjson.loads(result_path.read_bytes())
    assert result["proxy_alive"]
    assert result["good_calls"] > 0
    assert result["good_errors"] == 0, result["good_error_samples"]
    assert len(result["rss_samples"]) >= 2
    clients = result["clients"]
    assert clients["slowloris"].get("408", 0) > 0  # the limits were hit, and answered as documented
    assert clients["stalled-body"].get("408", 0) > 0
    assert clients["garbage"].get("400", 0) > 0
    assert clients["junk-after-valid"].get("200+400", 0) > 0
    assert clients["connection-flood"].get("503", 0) > 0
    assert done.returncode == 0, done.stdout.decode()[-3000:]


def test_quick_remote_benchmark_runs_every_http_upstream_phase_without_errors(tmp_path: Path) -> None:
    pytest.importorskip("mcpmux")
    results_path = tmp_path / "remote.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "remote.py"), "--quick", "--big-runs", "1", "--json", str(results_path)],
        capture_output=True,
        timeout=180,
        check=False,
        cwd=ROOT,
    )
    assert results_path.exists(), done.stderr.decode()[-3000:]
    phases = orjson.loads(results_path.read_bytes())["phases"]
    expected = {"direct_http_1", "http_1", "http_16", "sse_upstream_16", "isolated_16", "big_http_1"}
    assert expected <= set(phases)
    for name, phase in phases.items():
        if isinstance(phase, dict) and "calls" in phase:
            assert "failed" not in phase, (name, phase["failed"])
            assert phase["calls"] > 0 and phase["errors"] == 0, (name, phase.get("error_samples"))
    assert phases["isolated_churn"]["errors"] == 0
    assert done.returncode == 0, done.stderr.decode()[-3000:]


def test_quick_era_benchmark_compares_stateless_calls_with_session_calls() -> None:
    """bench/eras.py runs both eras against one mcpmux without errors (its numbers are not checked)."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "eras.py"), "--quick", "--sessions", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = orjson.loads(done.stdout.splitlines()[-1])
    assert report["errors"] == 0
    assert {report["phases"][p]["mode"] for p in ("session_2", "stateless_2")} == {"http", "stateless"}
    assert all(report["phases"][p]["calls"] > 0 for p in ("session_2", "stateless_2"))
    assert report["ratios"]["2"] is not None and report["target_ratio"] == 0.8


def test_ab_report_takes_the_median_of_the_rounds_and_the_ratio_after_over_before() -> None:
    ab = load_bench_module("ab")

    def run(calls: float, cpu: float) -> dict[str, Any]:
        phase = {"calls_per_s": calls, "proxy_cpu_per_call_ms": cpu, "p50_ms": 1.0}
        return {"targets": {"mcpmux": {"streamable_16": phase}}}

    runs = {
        "old": [run(1000, 0.2), run(3000, 0.1), run(2000, 0.3)],
        "new": [run(2200, 0.1), run(1800, 0.1), run(2400, 0.2)],
    }
    table = ab.summarise(runs)
    assert table["streamable_16"]["old"] == {"calls_per_s": 2000, "proxy_cpu_per_call_ms": 0.2, "p50_ms": 1.0}
    assert table["sse_16"]["new"]["calls_per_s"] is None  # a phase no round measured
    report = ab.render(table, "old", "new")
    assert "| streamable_16 | 2,000 | 2,200 | 1.10 | 0.200 | 0.100 | 0.50 |" in report
    assert "| sse_16 | - | - | - |" in report


def test_callcount_counts_the_same_calls_for_the_same_code() -> None:
    """bench/callcount.py of HEAD against this work tree's src/: a positive count per request, the ratio
    about 1 (the count is deterministic up to timers and scheduling, which is its point)."""
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "callcount.py"),
            "--before",
            "HEAD",
            "--after-src",
            str(BENCH.parent / "src"),
            "--modes",
            "http",
            "--sessions",
            "2",
            "--duration",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[0]
    assert line.startswith("http: calls per request"), line
    ratio = float(line.split("(x", 1)[1].split(")", 1)[0])
    per_request = float(line.split("work tree ", 1)[1].split(" ", 1)[0].rstrip(","))
    assert 50 < per_request < 2000, line
    assert 0.85 < ratio < 1.15, line
