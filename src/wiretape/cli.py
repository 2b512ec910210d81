"""The ``wiretape`` command line: a thin layer over the runner.

Exit codes: 0 every test passed (or the recording succeeded), 1 a test failed (or the traffic
command failed), 2 a usage, configuration or set-up error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import wiretape
from wiretape.config import Config, apply_overrides, find_config, load_config
from wiretape.errors import SetupError, WiretapeError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
T = TypeVar("T")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"wiretape: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c", "--config", type=Path, help="wiretape.yaml to use (default: search upward)"
    )
    p.add_argument("--command", help="override app.command")
    p.add_argument("--port", type=int, help="override app.port")
    p.add_argument("--health", help="override app.health")
    p.add_argument("--dir", type=Path, help="where sets live (default: wiretape/ by the config)")
    p.add_argument("--set", dest="set_name", help="the test set's name")
    p.add_argument("--startup-timeout", type=float, help="seconds to wait for the app")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the results")
    p.add_argument("--app-output", action="store_true", help="echo the app's output")
    p.add_argument("-v", "--verbose", action="store_true", help="log proxy details")


def _time_offset(text: str) -> float:
    from wiretape.runner.clock import parse_offset

    try:
        return parse_offset(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wiretape",
        description=(
            "Record a service's real traffic as tests and mocks; replay it deterministically."
        ),
    )
    parser.add_argument("--version", action="version", version=f"wiretape {wiretape.__version__}")
    sub = parser.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    rec = sub.add_parser("record", help="start the app behind wiretape and record a test set")
    _common(rec)
    rec.add_argument(
        "--run",
        metavar="CMD",
        help="run CMD as the traffic source (WIRETAPE_URL is the proxy URL); "
        "stop when it exits and fail if it fails",
    )
    rec.add_argument("--listen", help="HOST:PORT for the record proxy (default from `listen:`)")
    rec.add_argument(
        "--concurrent",
        action="store_true",
        help="let requests through in parallel (links mocks by traceparent/window)",
    )
    rec.add_argument("--overwrite", action="store_true", help="replace an existing set")
    rec.add_argument(
        "--learn-noise",
        action="store_true",
        help="then replay the new set twice and write the fields the app generates as noise",
    )
    rec.add_argument("--fsync", action="store_true", help="fsync every file (power-loss safety)")
    rec.add_argument(
        "--no-outbound-proxy", action="store_true", help="do not export HTTP(S)_PROXY to the app"
    )
    rec.add_argument("--extra-ca", type=Path, help="extra CA file trusted for upstreams")
    rec.add_argument(
        "--insecure-upstream", action="store_true", help="do not verify upstream TLS certificates"
    )

    tst = sub.add_parser("test", help="replay a test set against the app with mocked dependencies")
    _common(tst)
    tst.add_argument("--strict", action="store_true", help="unused mocks fail their test")
    tst.add_argument(
        "--learn-noise",
        action="store_true",
        help="replay twice, write the fields that differ between the two runs as noise",
    )
    tst.add_argument(
        "--dry-run", action="store_true", help="with --learn-noise: print, do not write"
    )
    tst.add_argument(
        "--strict-values",
        action="store_true",
        help="compare timestamps, UUIDs, JWTs and epoch times by value too",
    )
    tst.add_argument(
        "--format",
        choices=("text", "json", "junit"),
        default="text",
        help="what to print on stdout",
    )
    tst.add_argument(
        "--latency",
        choices=("recorded", "none"),
        default="recorded",
        help="generic TCP mocks answer with the recorded pauses (default) or at once",
    )
    clock = tst.add_mutually_exclusive_group()
    clock.add_argument(
        "--freeze-time",
        action="store_true",
        help="run the app under libfaketime with its clock at each test's recorded time",
    )
    clock.add_argument(
        "--time-shift",
        metavar="OFFSET",
        type=_time_offset,
        help="run the app under libfaketime with its clock moved by OFFSET from now: +1d, -3h, "
        "+90s, +2w, -1d12h (units w d h m s)",
    )

    sec = sub.add_parser("secrets", help="work with credentials in recorded sets")
    sec_sub = sec.add_subparsers(dest="secrets_cmd", required=True, parser_class=_Parser)
    scan = sec_sub.add_parser(
        "scan", help="report credential-looking values left in a set (exit 1 if any)"
    )
    scan.add_argument("set", nargs="?", help="set name or folder (default: the newest set)")
    scan.add_argument("-c", "--config", type=Path)
    scan.add_argument("--dir", type=Path)

    tpl = sub.add_parser(
        "templatize",
        help="find values that responses hand out and later requests send back (tokens, ids)",
    )
    tpl.add_argument("set", nargs="?", help="set name or folder (default: the newest set)")
    tpl.add_argument("-c", "--config", type=Path)
    tpl.add_argument("--dir", type=Path)
    tpl.add_argument(
        "--dry-run", action="store_true", help="print the chains without writing the tests"
    )

    rep = sub.add_parser("report", help="print the last run again")
    rep.add_argument("-c", "--config", type=Path)
    rep.add_argument("--dir", type=Path)
    rep.add_argument("--run", dest="run_id", help="a run id (default: the latest)")
    rep.add_argument("--format", choices=("text", "json", "junit"), default="text")
    rep.add_argument("--verbose", "-v", action="store_true")
    return parser


def _load(args: argparse.Namespace) -> Config:
    path = args.config
    if path is None:
        path = find_config(Path.cwd())
        if path is None:
            raise WiretapeError(
                "no wiretape.yaml found in this directory or its parents\n"
                "  hint: create one (see the README's config reference) or pass -c FILE"
            )
    cfg = load_config(path)
    overrides: dict[str, object] = {
        "command": getattr(args, "command", None),
        "port": getattr(args, "port", None),
        "health": getattr(args, "health", None),
        "dir": getattr(args, "dir", None),
        "set_name": getattr(args, "set_name", None),
        "startup_timeout": getattr(args, "startup_timeout", None),
        "listen": getattr(args, "listen", None),
        "extra_ca": getattr(args, "extra_ca", None),
    }
    if getattr(args, "no_outbound_proxy", False):
        overrides["outbound_http"] = "off"
    if getattr(args, "insecure_upstream", False):
        overrides["verify_upstream"] = False
    return apply_overrides(cfg, **overrides)


def _render(report: object, fmt: str, verbose: bool = False) -> str:
    from wiretape.compare.render import render_json, render_junit, render_text
    from wiretape.compare.report import RunReport

    assert isinstance(report, RunReport)
    if fmt == "json":
        return render_json(report)
    if fmt == "junit":
        return render_junit(report)
    return render_text(report, color=sys.stdout.isatty(), verbose=verbose)


def cmd_record(args: argparse.Namespace) -> int:
    from wiretape.runner.record import RecordOptions, record

    cfg = _load(args)
    opts = RecordOptions(
        run=args.run,
        concurrent=args.concurrent,
        overwrite=args.overwrite,
        quiet=args.quiet,
        fsync=args.fsync,
        echo_app=args.app_output,
    )
    code = _run(record(cfg, opts))
    if code != 0 or not args.learn_noise:
        return code
    from wiretape.runner.replay import TestOptions

    return _learn(cfg, TestOptions(set_name=cfg.set_name, quiet=args.quiet), dry_run=False)


def _learn(cfg: Config, opts: Any, *, dry_run: bool) -> int:
    from wiretape.runner.learn import learn_noise

    result = _run(learn_noise(cfg, opts, dry_run=dry_run))
    for test_id, paths in result.noise.items():
        for path in paths:
            print(f"{test_id}: {path}")
    for test_id in result.unanswered:
        print(
            f"wiretape: {test_id}: no answer in one of the replays; nothing learned",
            file=sys.stderr,
        )
    verb = "would add" if dry_run else "added"
    count = sum(len(p) for p in result.noise.values())
    print(
        f"wiretape: {verb} {count} noise path(s) to {len(result.noise)} test(s) in "
        f"{result.set_path}",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    from wiretape.runner.replay import TestOptions, replay

    cfg = _load(args)
    opts = TestOptions(
        set_name=args.set_name,
        strict=args.strict,
        strict_values=args.strict_values,
        quiet=args.quiet,
        echo_app=args.app_output,
        freeze_time=args.freeze_time,
        time_shift=args.time_shift,
        latency=args.latency,
    )
    if args.learn_noise:
        return _learn(cfg, opts, dry_run=args.dry_run)
    if args.dry_run:
        raise SetupError("--dry-run goes with --learn-noise")
    report, run_dir = _run(replay(cfg, opts))
    out = _render(report, args.format, args.verbose)
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    if not args.quiet:
        print(f"wiretape: reports in {run_dir}", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_report(args: argparse.Namespace) -> int:
    import json

    from wiretape.compare.report import report_from_dict
    from wiretape.runner.replay import latest_run

    cfg = _load(args)
    run_dir = latest_run(cfg, args.run_id)
    if run_dir is None:
        what = f"run {args.run_id!r}" if args.run_id else "any run"
        raise WiretapeError(
            f"no report for {what} under {cfg.dir / '.runs'}\n  hint: run `wiretape test` first"
        )
    report = report_from_dict(json.loads((run_dir / "report.json").read_text("utf-8")))
    out = _render(report, args.format, args.verbose)
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return EXIT_OK if report.ok else EXIT_FAILED


def _run(coro: Coroutine[Any, Any, T]) -> T:
    from wiretape.proxy.server import install_fast_loop

    install_fast_loop()
    return asyncio.run(coro)


def cmd_secrets(args: argparse.Namespace) -> int:
    from wiretape.scan import scan_set
    from wiretape.store.reader import resolve_set

    cfg: Config | None = None
    if args.set is not None and Path(args.set).is_dir():
        path = Path(args.set)
        with contextlib.suppress(WiretapeError):
            cfg = _load(args)  # the project's own secret keys and headers, when there is one
    else:
        cfg = _load(args)
        path = resolve_set(cfg.dir, args.set)
    if cfg is None:
        findings = scan_set(path)
    else:
        findings = scan_set(path, keys=cfg.secrets.all_keys, headers=cfg.secrets.all_headers)
    for finding in findings:
        print(finding)
    if findings:
        print(f"wiretape: {len(findings)} credential-looking value(s) in {path}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wiretape: no credential-looking values in {path}", file=sys.stderr)
    return EXIT_OK


def cmd_templatize(args: argparse.Namespace) -> int:
    from wiretape.runner.templatize import templatize
    from wiretape.store.reader import resolve_set

    if args.set is not None and Path(args.set).is_dir():
        path = Path(args.set)
    else:
        cfg = _load(args)
        path = resolve_set(cfg.dir, args.set)
    result = templatize(path, dry_run=args.dry_run)
    for test in result.changed:
        for chain in test.chains:
            print(f"{test.id}: {', '.join(chain.targets)} <- {chain.path} of {chain.source}")
        if not test.chains:
            print(f"{test.id}: no chained values any more")
    verb = "would update" if args.dry_run else "updated"
    print(
        f"wiretape: {result.chains} chained value(s) in {path}; {verb} {result.tests} test(s)",
        file=sys.stderr,
    )
    return EXIT_OK


def _negative_offsets(argv: Sequence[str]) -> list[str]:
    """``--time-shift -1d`` as ``--time-shift=-1d``: argparse takes ``-1d`` for an option."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--time-shift" and arg[:1] == "-" and arg[1:2].isdigit():
            out[-1] = f"--time-shift={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_negative_offsets(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="wiretape: %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handlers = {
        "record": cmd_record,
        "test": cmd_test,
        "report": cmd_report,
        "secrets": cmd_secrets,
        "templatize": cmd_templatize,
    }
    try:
        return handlers[args.cmd](args)
    except WiretapeError as exc:
        print(f"wiretape: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("wiretape: interrupted", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
