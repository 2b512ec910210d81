"""Run the side-by-side benchmarks and print Markdown tables of medians and ratios.

    bench/peers/install.sh                 # once: mitmproxy, WireMock (and py-spy) into bench/.work
    .venv/bin/python bench/run.py          # full: 5 rounds, 5 s per load
    .venv/bin/python bench/run.py --quick  # 3 rounds, 1 s per load, -c8 only: under 5 minutes
    .venv/bin/python bench/run.py --only mock --rounds 3
    .venv/bin/python bench/run.py --profile          # profiles only (no measurement rounds)

Method: every configuration runs once per round; rounds repeat the whole list (configurations
interleaved, order reversed every other round), so slow drift and a noisy neighbour hit every
column alike. Tables show the median over rounds; a ratio is computed within each round (against
"direct", or against wiretape, measured in that same round) and the median of those is shown.
Raw samples go to bench/.work/results/<stamp>.json, the tables to <stamp>.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import harness
from harness import LOGS, WORK, Sample, log, median, peer_status
from inbound import CONFIGS as INBOUND_CONFIGS

RESULTS = WORK / "results"


def _fmt(x: float, digits: int = 0) -> str:
    if math.isnan(x):
        return "n/a"
    return f"{x:,.{digits}f}"


def _ratio(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    return f"{x:.3f}×" if x < 10 else f"{x:.1f}×"


def _cpu(samples: Sequence[Sample], target: str, config: str) -> str:
    """Median user+system CPU per request of the process in front (the app itself for direct)."""
    if config == "direct" and target == "nginx":
        return "(workers not measured)"
    vals = [
        s.extra["cpu_user_us_per_req"] + s.extra["cpu_sys_us_per_req"]
        for s in samples
        if "cpu_user_us_per_req" in s.extra
    ]
    if not vals:
        return "n/a"
    text = _fmt(median(vals))
    return f"{text} (app)" if config == "direct" else text


def _is(config: str) -> Callable[[Sample], bool]:
    return lambda s: s.config == config


def _round_ratios(
    samples: Sequence[Sample],
    num: Callable[[Sample], bool],
    den: Callable[[Sample], bool],
    value: Callable[[Sample], float],
) -> list[float]:
    """value(num)/value(den) within each round where both were measured."""
    nums = {s.round: value(s) for s in samples if num(s)}
    dens = {s.round: value(s) for s in samples if den(s)}
    return [nums[r] / dens[r] for r in sorted(nums) if dens.get(r)]


# --- report -----------------------------------------------------------------------------------


def inbound_tables(samples: list[Sample]) -> tuple[str, dict[str, float]]:
    lines: list[str] = []
    verdict: dict[str, float] = {}
    inbound = [s for s in samples if s.bench == "inbound"]
    groups: dict[tuple[str, int], list[Sample]] = defaultdict(list)
    for s in inbound:
        groups[(s.target, s.conns)].append(s)
    for (target, conns), group in sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        rounds = len({s.round for s in group})
        lines += [
            f"#### {target}, wrk -t1 -c{conns} (median of {rounds} rounds)",
            "",
            "| configuration | req/s | × direct | p50 ms | p50 × direct | p99 ms | p99 × direct "
            "| front CPU µs/req | non-2xx / errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        configs = [c for c in INBOUND_CONFIGS if any(s.config == c for s in group)]
        for config in configs:
            mine = [s for s in group if s.config == config]
            is_me, is_direct = _is(config), _is("direct")
            rps_x = median(_round_ratios(group, is_me, is_direct, lambda s: s.rps))
            p50_x = median(_round_ratios(group, is_me, is_direct, lambda s: s.p50_ms))
            p99_x = median(_round_ratios(group, is_me, is_direct, lambda s: s.p99_ms))
            bad = sum(s.non2xx for s in mine), sum(s.socket_errors for s in mine)
            lines.append(
                f"| {config} | {_fmt(median([s.rps for s in mine]))} | {_ratio(rps_x)} "
                f"| {_fmt(median([s.p50_ms for s in mine]), 3)} | {_ratio(p50_x)} "
                f"| {_fmt(median([s.p99_ms for s in mine]), 3)} | {_ratio(p99_x)} "
                f"| {_cpu(mine, target, config)} | {bad[0]} / {bad[1]} |"
            )
            verdict[f"{target}.c{conns}.{config}.rps_x_direct"] = rps_x
        for wt in (
            "wiretape",
            "wiretape-nopoll",
            "wiretape-concurrent",
            "python-forward",
            "python-forward-lane",
        ):
            vs = _round_ratios(group, _is(wt), _is("mitmdump"), lambda s: s.rps)
            if vs:
                verdict[f"{target}.c{conns}.{wt}.rps_x_mitmdump"] = median(vs)
        lines.append("")
    # One row per proxy run (the extras are per started stack, so take one conns value).
    first = {(s.target, s.config, s.round): s for s in inbound if s.extra.get("peak_rss_mb")}
    if first:
        lines += [
            "#### The proxy process itself (median per started stack)",
            "",
            "| target | configuration | peak RSS MiB | tests written / requests wrk completed "
            "| `record` stop s |",
            "|---|---|---:|---:|---:|",
        ]
        for target, config in sorted({(t, c) for t, c, _ in first}):
            runs = [v for (t, c, _), v in first.items() if (t, c) == (target, config)]
            rss = median([r.extra["peak_rss_mb"] for r in runs])
            if config.startswith("wiretape"):
                written = median([r.extra.get("tests_written", math.nan) for r in runs])
                sent = median([r.extra.get("wrk_requests_total", math.nan) for r in runs])
                stop = median([r.extra.get("stop_s", math.nan) for r in runs])
                lines.append(
                    f"| {target} | {config} | {_fmt(rss)} | {_fmt(written)} / {_fmt(sent)} "
                    f"| {_fmt(stop, 1)} |"
                )
            else:
                lines.append(f"| {target} | {config} | {_fmt(rss)} | | |")
        lines.append("")
    return "\n".join(lines), verdict


def mock_tables(samples: list[Sample]) -> tuple[str, dict[str, float]]:
    lines: list[str] = []
    verdict: dict[str, float] = {}
    mock = [s for s in samples if s.bench == "mock"]
    if not mock:
        return "", verdict
    ns = sorted({int(s.target.split("=")[1]) for s in mock})
    for n in ns:
        group = [s for s in mock if s.target == f"N={n}"]
        rounds = len({s.round for s in group})
        conns = group[0].conns
        lines += [
            f"#### N = {n:,} distinct mocks, wrk -t1 -c{conns} cycling over all N paths "
            f"(median of {rounds} rounds)",
            "",
            "| server | req/s | wiretape × this | p50 ms | p99 ms | CPU µs/req | start-up s "
            "| peak RSS MiB | non-2xx / errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for server in ("wiretape", "wiremock", "mitmdump"):
            mine = [s for s in group if s.config == server]
            if not mine:
                continue
            x = median(_round_ratios(group, _is("wiretape"), _is(server), lambda s: s.rps))
            verdict[f"N={n}.wiretape_x_{server}"] = x
            lines.append(
                f"| {server} | {_fmt(median([s.rps for s in mine]))} | {_ratio(x)} "
                f"| {_fmt(median([s.p50_ms for s in mine]), 3)} "
                f"| {_fmt(median([s.p99_ms for s in mine]), 3)} | {_cpu(mine, '', server)} "
                f"| {_fmt(median([s.extra.get('startup_s', math.nan) for s in mine]), 1)} "
                f"| {_fmt(median([s.extra.get('peak_rss_mb', math.nan) for s in mine]))} "
                f"| {sum(s.non2xx for s in mine)} / {sum(s.socket_errors for s in mine)} |"
            )
        lines.append("")
    if len(ns) >= 2:
        lo, hi = ns[0], ns[-1]
        lines += [
            f"#### Per-request cost at N = {hi:,} relative to N = {lo:,} "
            "(median over rounds of req/s(lo) / req/s(hi), same round)",
            "",
            "| server | cost(hi) / cost(lo) |",
            "|---|---:|",
        ]
        for server in ("wiretape", "wiremock", "mitmdump"):
            lo_r = {s.round: s.rps for s in mock if s.config == server and s.target == f"N={lo}"}
            hi_r = {s.round: s.rps for s in mock if s.config == server and s.target == f"N={hi}"}
            vals = [lo_r[r] / hi_r[r] for r in lo_r if hi_r.get(r)]
            if vals:
                verdict[f"{server}.cost_{hi}_over_{lo}"] = median(vals)
                lines.append(f"| {server} | {_ratio(median(vals))} |")
        lines.append("")
    return "\n".join(lines), verdict


def targets_table(verdict: dict[str, float]) -> str:
    def met(x: float, goal: float) -> str:
        if math.isnan(x):
            return "not measured"
        return "**met**" if x >= goal else "**not met**"

    rows = ["| target | measured (median) | verdict |", "|---|---:|---|"]
    for conns in (8, 1):
        for cfg in ("wiretape", "wiretape-nopoll", "wiretape-concurrent"):
            x = verdict.get(f"shop.c{conns}.{cfg}.rps_x_direct", math.nan)
            if not math.isnan(x):
                rows.append(
                    f"| record ≥ 0.9× direct, shop, c{conns}, `{cfg}` | {_ratio(x)} "
                    f"| {met(x, 0.9)} |"
                )
    for conns in (8, 1):
        for cfg in ("wiretape", "wiretape-nopoll", "wiretape-concurrent"):
            x = verdict.get(f"nginx.c{conns}.{cfg}.rps_x_mitmdump", math.nan)
            if not math.isnan(x):
                rows.append(
                    f"| wiretape ≥ 10× mitmdump, nginx, c{conns}, `{cfg}` | {_ratio(x)} "
                    f"| {met(x, 10)} |"
                )
        for floor in ("python-forward", "python-forward-lane"):
            x = verdict.get(f"nginx.c{conns}.{floor}.rps_x_mitmdump", math.nan)
            if not math.isnan(x):
                rows.append(
                    f"| (the floor) `{floor}` × mitmdump, nginx, c{conns} | {_ratio(x)} "
                    "| for reference |"
                )
    for key, x in sorted(verdict.items()):
        if key.endswith("wiretape_x_wiremock"):
            rows.append(
                f"| mocks ≥ 2× WireMock req/s, {key.split('.')[0]} | {_ratio(x)} | {met(x, 2)} |"
            )
    for key, x in sorted(verdict.items()):
        if key.startswith("wiretape.cost_"):
            v = "not measured" if math.isnan(x) else ("**met**" if x <= 1.2 else "**not met**")
            rows.append(f"| wiretape per-request cost 10k ≤ 1.2× 1k | {_ratio(x)} | {v} |")
    return "\n".join(rows) + "\n"


def report(samples: list[Sample], meta: dict[str, Any]) -> str:
    versions: dict[str, str] = meta["versions"]
    skipped: dict[str, str] = meta["skipped"]
    inbound_md, v1 = inbound_tables(samples)
    mock_md, v2 = mock_tables(samples)
    verdict = {**v1, **v2}
    parts = [
        f"## Run {meta['stamp']}",
        "",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['machine']}",
        f"- wiretape source: {meta.get('source', 'unknown')}"
        + (
            f" — **changed during the run**, at the end: {meta['source_at_end']}"
            if meta.get("source_at_end", meta.get("source")) != meta.get("source")
            else ""
        ),
        f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}",
        f"- rounds: {meta['rounds']}, load {meta['duration']} s per measurement, "
        f"warm-up {meta['warmup']} s (+{meta['jvm_warmup']} s more for WireMock's JIT)",
        f"- wall time: {meta['elapsed']:.0f} s",
        "",
    ]
    for name, why in skipped.items():
        parts.append(f"- skipped {name}: {why}")
    parts += ["", "### Targets", "", targets_table(verdict)]
    if inbound_md:
        parts += ["### 1. Inbound record-proxy overhead", "", inbound_md]
    if mock_md:
        parts += ["### 2. Mock serving", "", mock_md]
    parts += ["### Every round's req/s (to judge the noise)", "", rounds_table(samples)]
    return "\n".join(parts)


def rounds_table(samples: Sequence[Sample]) -> str:
    rows: dict[tuple[str, str, str, int], dict[int, float]] = defaultdict(dict)
    for s in samples:
        rows[(s.bench, s.target, s.config, s.conns)][s.round] = s.rps
    n = max((s.round for s in samples), default=0)
    head = "| benchmark | target | configuration | -c | " + " | ".join(
        f"r{r}" for r in range(1, n + 1)
    )
    lines = [head + " | spread |", "|---|---|---|---:|" + "---:|" * n + "---:|"]
    for (bench, target, config, conns), by_round in rows.items():
        vals = [by_round.get(r, math.nan) for r in range(1, n + 1)]
        real = [v for v in vals if not math.isnan(v)]
        spread = (max(real) - min(real)) / median(real) if real else math.nan
        lines.append(
            f"| {bench} | {target} | {config} | {conns} | "
            + " | ".join(_fmt(v) for v in vals)
            + f" | {spread * 100:.0f}% |"
        )
    return "\n".join(lines) + "\n"


# --- driver -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--quick", action="store_true", help="3 rounds of 1 s loads, inbound -c8 only (< 5 minutes)"
    )
    p.add_argument("--rounds", type=int)
    p.add_argument("--duration", type=int, help="seconds per measured wrk run")
    p.add_argument("--warmup", type=int, help="seconds of wrk warm-up per started server")
    p.add_argument("--jvm-warmup", type=int, help="extra warm-up seconds for WireMock")
    p.add_argument("--only", choices=("inbound", "mock"), action="append")
    p.add_argument("--targets", default="nginx,shop", help="inbound targets (nginx,shop)")
    p.add_argument(
        "--configs",
        default="direct,wiretape,wiretape-nopoll,wiretape-concurrent,python-forward,"
        "python-forward-lane,mitmdump",
    )
    p.add_argument("--conns", help="wrk -c values for the inbound benchmark (8,1; quick: 8)")
    p.add_argument("--mock-sizes", default="1000,10000")
    p.add_argument("--servers", default="wiretape,wiremock,mitmdump")
    p.add_argument(
        "--profile",
        action="store_true",
        help="profile wiretape record (nginx) and the mock server (10k) instead",
    )
    p.add_argument("--report", type=Path, help="re-print the tables of a results .json")
    args = p.parse_args(argv)

    if args.report is not None:
        data = json.loads(args.report.read_text())
        print(report([Sample(**s) for s in data["samples"]], data["meta"]))
        return 0

    rounds = args.rounds or (3 if args.quick else 5)
    duration = args.duration or (1 if args.quick else 5)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    jvm_warmup = args.jvm_warmup if args.jvm_warmup is not None else (2 if args.quick else 6)
    only = set(args.only or ("inbound", "mock"))

    WORK.mkdir(parents=True, exist_ok=True)
    harness.rmtree(LOGS)
    LOGS.mkdir(parents=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    peers = peer_status()
    if peers["wrk"] is not None:
        print(f"bench: {peers['wrk']}", file=sys.stderr)
        return 2
    skipped: dict[str, str] = {}

    import inbound
    import mockserve

    if args.profile:
        out = WORK / "profiles"
        inbound.profile("nginx", "wiretape", duration=duration, conns=8, out=out)
        inbound.profile("shop", "wiretape", duration=duration, conns=8, out=out)
        ds = mockserve.prepare(10_000, peers)
        prof = out / "mockserver-10000.pstats"
        with mockserve.wiretape_server(ds, harness.free_port(), cprofile=prof) as (base, _):
            env = {"WT_PATHS": str(ds.n), "WT_PREFIX": "/item/"}
            harness.run_wrk(f"{base}/", conns=8, duration=duration, script=mockserve.LUA, env=env)
        log(f"cProfile of the mock server: {prof}")
        return 0

    targets = [t for t in args.targets.split(",") if t]
    configs = [c for c in args.configs.split(",") if c]
    if peers["nginx"] is not None and "nginx" in targets:
        skipped["nginx target"] = str(peers["nginx"])
        targets.remove("nginx")
    if peers["mitmproxy"] is not None and "mitmdump" in configs:
        skipped["mitmdump (inbound)"] = str(peers["mitmproxy"])
        configs.remove("mitmdump")
    servers = [s for s in args.servers.split(",") if s]
    for name in list(servers):
        need = mockserve.SERVERS[name][1]
        if need is not None and peers.get(need) is not None:
            skipped[f"{name} (mocks)"] = str(peers[need])
            servers.remove(name)
    for name, why in skipped.items():
        log(f"skipping {name}: {why}")

    conns_list = [int(c) for c in (args.conns or ("8" if args.quick else "8,1")).split(",") if c]
    sizes = [int(n) for n in args.mock_sizes.split(",") if n]
    t_start = time.perf_counter()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    meta: dict[str, Any] = {
        "stamp": stamp,
        "command": " ".join(["bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": harness.machine_note(),
        "source": harness.source_state(),
        "versions": harness.versions(),
        "rounds": rounds,
        "duration": duration,
        "warmup": warmup,
        "jvm_warmup": jvm_warmup,
        "skipped": skipped,
    }
    datasets = {}
    if "mock" in only:
        for n in sizes:
            ds = mockserve.prepare(n, peers)
            datasets[n] = ds
            log(f"mock data N={n}: generation seconds (nan = reused) {ds.gen_seconds}")
        meta["mock_generation_s"] = {n: ds.gen_seconds for n, ds in datasets.items()}

    samples: list[Sample] = []
    out_json = RESULTS / (time.strftime("%Y%m%d-%H%M%S") + ".json")

    def save() -> None:
        meta["elapsed"] = time.perf_counter() - t_start
        meta["source_at_end"] = harness.source_state()
        out_json.write_text(
            json.dumps({"meta": meta, "samples": [s.to_dict() for s in samples]}, indent=1)
        )

    try:
        for rnd in range(1, rounds + 1):
            flip = rnd % 2 == 0
            if "inbound" in only:
                for target in targets:
                    order = list(reversed(configs)) if flip else list(configs)
                    samples += inbound.run_round(
                        target,
                        order,
                        rnd,
                        duration=duration,
                        warmup=warmup,
                        conns_list=conns_list,
                    )
                    save()
            if "mock" in only:
                for n in sizes:
                    order = list(reversed(servers)) if flip else list(servers)
                    samples += mockserve.run_round(
                        datasets[n],
                        order,
                        rnd,
                        duration=duration,
                        warmup=warmup,
                        jvm_warmup=jvm_warmup,
                        conns=8,
                    )
                    save()
    finally:
        save()
    md = report(samples, meta)
    out_md = out_json.with_suffix(".md")
    out_md.write_text(md)
    print(md)
    log(f"raw samples: {out_json}; tables: {out_md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
