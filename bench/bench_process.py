"""Benchmark of `ivi process` against a naive pandas script and the pyarrow floor (`make bench`).

Prints figures; it is not a test. Why it is built this way:
- every tool runs in a fresh subprocess, and its peak RSS is that process's `ru_maxrss` from
  `os.wait4`, so imports and the interpreter count as a user would feel them;
- the three tools run interleaved, 4 repetitions each, in the same run, and times are reported
  as a ratio to the floor measured alongside: the machine's load changes absolute times
  (see design.md, "Performance facts"), the ratio much less; the floor and `ivi` take turns
  at running first, because a run is faster or slower after some neighbours (`run_order`);
- the naive script needs pandas, which is deliberately not in the project's venv: it runs in
  `.data/bench/naive-venv`, created here with uv when absent;
- the input files (1M and 3M messy `vendas` rows, cp1252, `;`) are generated once and cached
  under `.data/bench/`; their ground truth is kept beside them, and ivi's counts are checked
  against it so that a fast but wrong run cannot look good.

Usage: .venv/bin/python bench/bench_process.py [--reps 4] [--skip-naive] [--skip-3m]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
DATA = REPO / ".data" / "bench"
NAIVE_VENV = DATA / "naive-venv"
SEED = 20261129
ENCODING, DELIMITER = "cp1252", ";"
COUNTS = ("input_rows", "exported_rows", "quarantined_rows", "duplicate_rows")


@dataclass
class Sample:
    seconds: float
    max_rss_mb: float
    code: int


@dataclass
class Tool:
    name: str
    samples: list[Sample] = field(default_factory=list)

    def median_seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    def peak_rss_mb(self) -> float:
        return max(s.max_rss_mb for s in self.samples)


def ensure_input(rows: int) -> tuple[Path, dict]:
    """The messy file for `rows`, generated once; regenerated when the generator's code changed."""
    DATA.mkdir(parents=True, exist_ok=True)
    csv_path = DATA / f"vendas_{rows // 1_000_000}m.csv"
    truth_path = csv_path.with_suffix(".truth.json")
    stamp = hashlib.sha256((BENCH / "generate_messy.py").read_bytes()).hexdigest()[:16]
    if csv_path.exists() and truth_path.exists():
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
        if truth.get("generator") == stamp and truth.get("seed") == SEED:
            return csv_path, truth
    # Generated in a child process: the bench process must stay small, because a child's
    # ru_maxrss starts from its parent's size at exec (Linux carries the pre-exec high-water
    # mark over), which would hide the tools' real peaks below it.
    print(f"generating {csv_path.relative_to(REPO)} ({rows:,} rows) ...", flush=True)
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import generate_messy as g; "
        "t = g.generate(sys.argv[2], 'vendas', int(sys.argv[3]), int(sys.argv[4]), "
        "encoding=sys.argv[5], delimiter=sys.argv[6], newline='\\r\\n'); "
        "keys = ('input_rows', 'exported_rows', 'quarantined_rows', 'duplicate_rows', "
        "'failures', 'generate_seconds'); "
        "print(json.dumps({k: t[k] for k in keys}))"
    )
    done = subprocess.run([sys.executable, "-c", script, str(BENCH), str(csv_path), str(rows),
                           str(SEED), ENCODING, DELIMITER], check=True, capture_output=True,
                          text=True)
    truth = json.loads(done.stdout)
    truth.update(seed=SEED, generator=stamp)
    truth_path.write_text(json.dumps(truth, indent=1), encoding="utf-8")
    print(f"  written in {truth['generate_seconds']:.1f} s", flush=True)
    return csv_path, truth


def ensure_naive_venv() -> Path | None:
    """A separate venv with pandas + pandera + pyarrow for the naive baseline (uv, else pip)."""
    python = NAIVE_VENV / "bin" / "python"
    if python.exists():
        return python
    print("creating .data/bench/naive-venv (pandas, pandera, pyarrow) ...", flush=True)
    uv = shutil.which("uv")
    try:
        if uv:
            subprocess.run([uv, "venv", "-q", "--python", "3.11", str(NAIVE_VENV)], check=True)
            subprocess.run([uv, "pip", "install", "-q", "pandas", "pandera", "pyarrow"],
                           check=True, env={**os.environ, "VIRTUAL_ENV": str(NAIVE_VENV)})
        else:
            subprocess.run([sys.executable, "-m", "venv", str(NAIVE_VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "pandas", "pandera",
                            "pyarrow"], check=True)
    except (subprocess.CalledProcessError, OSError) as error:
        print(f"  could not create it ({error}); the naive baseline is skipped", flush=True)
        shutil.rmtree(NAIVE_VENV, ignore_errors=True)
        return None
    return python


def measure(argv: list[str]) -> Sample:
    """Run one command in a fresh process; wall time and that process's peak RSS."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(f"  ! {' '.join(argv[:3])} exited {proc.returncode}: {err.strip()[-300:]}",
              flush=True)
    return Sample(seconds, usage.ru_maxrss / 1024, proc.returncode)


OUT = DATA / "out"


def commands(csv_path: Path, naive_python: Path | None) -> dict[str, list[str]]:
    out = OUT
    ivi = REPO / ".venv" / "bin" / "ivi"
    cmds = {
        "floor (pyarrow read + CSV/NDJSON write)": [
            sys.executable, str(BENCH / "floor_pyarrow.py"), str(csv_path), str(out / "floor"),
            "--encoding", ENCODING, "--delimiter", DELIMITER],
        "ivi process": [str(ivi), "process", str(csv_path), "--contract", "vendas", "--out",
                        str(out / "ivi")],
    }
    if naive_python:
        cmds["naive pandas + pandera"] = [str(naive_python), str(BENCH / "naive_pandas.py"),
                                          str(csv_path), str(out / "naive")]
    return cmds


def check_ivi_counts(csv_path: Path, truth: dict) -> str:
    report = DATA / "out" / "ivi" / f"{csv_path.stem}.report.json"
    if not report.exists():
        return "no report"
    got = json.loads(report.read_text(encoding="utf-8"))
    diff = {k: (got.get(k), truth[k]) for k in COUNTS if got.get(k) != truth[k]}
    return "counts match the ground truth" if not diff else f"COUNTS DIFFER (got, truth): {diff}"


def run_order(names: list[str], rep: int) -> list[str]:
    """The tools in the order of repetition `rep`: the ones that take seconds alternate, the
    naive script (half a minute) comes last.

    Why: a run's time depends on what ran just before it. Measured on the 1M file, the
    same minutes: the floor took 1.38 s right after the naive script and 1.70 s after `ivi`;
    in another run `ivi` took 2.50 s right after the naive script and 2.37 s after the floor.
    A fixed order gives one tool the same neighbour every time; alternating gives each
    both, and the medians of an even number of repetitions weigh them equally.
    """
    quick = [name for name in names if not name.startswith("naive")]
    slow = [name for name in names if name.startswith("naive")]
    return (quick if rep % 2 == 0 else quick[::-1]) + slow


def run_interleaved(cmds: dict[str, list[str]], reps: int) -> dict[str, Tool]:
    tools = {name: Tool(name) for name in cmds}
    for rep in range(reps):
        for name in run_order(list(cmds), rep):
            argv = cmds[name]
            for arg in argv:  # every run starts with an empty output directory
                if arg.startswith(str(OUT)):
                    shutil.rmtree(arg, ignore_errors=True)
            sample = measure(argv)
            tools[name].samples.append(sample)
            print(f"  rep {rep + 1}: {name:<42} {sample.seconds:6.2f} s "
                  f"{sample.max_rss_mb:7.0f} MB", flush=True)
    return tools


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-3m", action="store_true")
    args = parser.parse_args(argv)

    file_1m, truth_1m = ensure_input(1_000_000)
    file_3m, truth_3m = (None, None) if args.skip_3m else ensure_input(3_000_000)
    naive = None if args.skip_naive else ensure_naive_venv()
    print(f"\n1M rows: {file_1m.stat().st_size / 1e6:.0f} MB, {ENCODING}, '{DELIMITER}', "
          f"{truth_1m['quarantined_rows']:,} invalid, {truth_1m['duplicate_rows']:,} duplicate "
          f"rows; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}", flush=True)
    tools = run_interleaved(commands(file_1m, naive), args.reps)
    ivi_check = check_ivi_counts(file_1m, truth_1m)

    floor_tool = next(t for n, t in tools.items() if n.startswith("floor"))
    floor = floor_tool.median_seconds()
    print(f"\n{'tool (1M rows, median of ' + str(args.reps) + ')':<44} {'time':>8} "
          f"{'x floor':>8} {'x floor/rep':>12} {'peak RSS':>10}")
    for name, tool in tools.items():
        failed = " (FAILED)" if any(s.code for s in tool.samples) else ""
        # ratio within each repetition (same moment, same load), then the median of those
        per_rep = statistics.median(s.seconds / f.seconds
                                    for s, f in zip(tool.samples, floor_tool.samples, strict=True))
        print(f"{name:<44} {tool.median_seconds():7.2f}s {tool.median_seconds() / floor:7.2f}x "
              f"{per_rep:11.2f}x {tool.peak_rss_mb():8.0f} MB{failed}")
    print(f"ivi on 1M rows: {ivi_check}")

    if file_3m is not None and truth_3m is not None:
        print(f"\n3M rows: {file_3m.stat().st_size / 1e6:.0f} MB", flush=True)
        big = run_interleaved({"ivi process": commands(file_3m, None)["ivi process"]},
                              args.reps)["ivi process"]
        rss_1m = tools["ivi process"].peak_rss_mb()
        rss_3m = big.peak_rss_mb()
        print(f"\nivi peak RSS: 1M rows {rss_1m:.0f} MB, 3M rows {rss_3m:.0f} MB, growth "
              f"{rss_3m - rss_1m:+.0f} MB ({rss_3m / rss_1m:.2f}x for 3x the rows); "
              f"3M time {big.median_seconds():.2f} s")
        print(f"ivi on 3M rows: {check_ivi_counts(file_3m, truth_3m)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
