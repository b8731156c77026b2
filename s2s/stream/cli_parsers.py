"""`s2s serve`, `s2s produce`, `s2s consume`, `s2s status`.

    s2s serve --config cluster/serve/toy.yaml --duration 60
    printf 'k1\t1 2 a\nk2\t3 b c\n' | s2s produce --topic toy-in --key-sep TAB
    s2s consume --topic toy-out --count 2 --timeout 60 --from-beginning --headers
    s2s status --address auto --json

Parsers only: Ray and Kafka are imported inside the handlers, so `s2s translate` never pays
for them (tests/unit/test_core_imports.py checks it).
"""
from __future__ import annotations

import argparse
import logging
import sys

KEY_SEPARATORS = {"TAB": "\t", "SPACE": " "}


def register(sub) -> None:
    _serve_parser(sub)
    _produce_parser(sub)
    _consume_parser(sub)
    _status_parser(sub)


def _serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="run the Kafka -> Serve -> Kafka streaming app locally")
    p.add_argument("--config", required=True, help="Serve config file (cluster/serve/*.yaml)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--address", default="local",
                   help="Ray cluster: 'local' starts a private one (default), 'auto' or HOST:PORT joins one")
    p.set_defaults(func=serve_command)


def _bootstrap_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", help="host:port[,...] (default: $S2S_KAFKA_BOOTSTRAP or 127.0.0.1:19092)")


def _security_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--security-config", metavar="FILE",
                   help="YAML with the keys of a stream config's kafka.security (TLS/SASL; secrets only by "
                        "env var name or file path); default: $S2S_KAFKA_SECURITY, else PLAINTEXT")


def _security(args: argparse.Namespace):
    """The --security-config file's settings; None leaves them to $S2S_KAFKA_SECURITY."""
    from .security import load_security_file

    return load_security_file(args.security_config) if args.security_config else None


def _produce_parser(sub) -> None:
    p = sub.add_parser("produce", help="send lines (stdin or --file) to a topic, one record each")
    p.add_argument("--topic", required=True)
    p.add_argument("--file", help="text file (default: stdin)")
    p.add_argument("--key-sep", help="split 'KEY<sep>VALUE'; TAB and SPACE name those characters")
    _bootstrap_arg(p)
    _security_arg(p)
    p.set_defaults(func=produce_command)


def _consume_parser(sub) -> None:
    p = sub.add_parser("consume", help="print records of a topic as KEY<TAB>VALUE")
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, help="stop after N records")
    p.add_argument("--timeout", type=float, default=30.0, help="stop after S seconds (default 30)")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest record, not the end")
    p.add_argument("--headers", action="store_true", help="append the headers as a JSON object")
    p.add_argument("--read-committed", action="store_true", help="skip records of open/aborted transactions")
    _bootstrap_arg(p)
    _security_arg(p)
    p.set_defaults(func=consume_command)


def _status_parser(sub) -> None:
    p = sub.add_parser("status", help="replicas, lag, throughput and latency of the running s2s applications")
    p.add_argument("--address", default="auto", help="Ray cluster to join: 'auto' (default) or HOST:PORT")
    p.add_argument("--json", action="store_true", help="print one JSON list instead of tables")
    _bootstrap_arg(p)
    _security_arg(p)
    p.set_defaults(func=status_command)


def _bootstrap(args: argparse.Namespace) -> str:
    from .kafka_admin import bootstrap_from_env

    _quiet_clients(args)
    return args.bootstrap or bootstrap_from_env()


def _quiet_clients(args: argparse.Namespace) -> None:
    """kafka-python logs every connection at INFO; only -v should show that."""
    if not getattr(args, "verbose", False):
        logging.getLogger("kafka").setLevel(logging.WARNING)


def serve_command(args: argparse.Namespace) -> int:
    from .local import run_local

    if args.duration is not None and args.duration <= 0:
        raise ValueError("--duration must be positive")
    _quiet_clients(args)
    return run_local(args.config, args.duration, args.address)


def produce_command(args: argparse.Namespace) -> int:
    from .console import produce_lines

    key_sep = KEY_SEPARATORS.get(args.key_sep, args.key_sep)
    bootstrap, security = _bootstrap(args), _security(args)
    if args.file:
        with open(args.file, encoding="utf-8") as lines:  # FileNotFoundError -> "s2s: error: ..."
            sent = produce_lines(bootstrap, args.topic, lines, key_sep, security=security)
    else:
        sent = produce_lines(bootstrap, args.topic, sys.stdin, key_sep, security=security)
    print(f"produced {sent} records to {args.topic}", file=sys.stderr)
    return 0


def consume_command(args: argparse.Namespace) -> int:
    from .console import print_records, read_records

    if args.count is not None and args.count < 1:
        raise ValueError("--count must be at least 1")
    records = read_records(_bootstrap(args), args.topic, args.count, args.timeout, args.from_beginning,
                           args.read_committed, security=_security(args))
    printed = print_records(records, sys.stdout, args.headers)
    if args.count is not None and printed < args.count:
        print(f"s2s: only {printed} of {args.count} records within {args.timeout:g} s", file=sys.stderr)
        return 1
    return 0


def status_command(args: argparse.Namespace) -> int:
    import ray

    from .status import collect, format_status, to_json

    bootstrap, security = _bootstrap(args), _security(args)  # a bad security file: an error before Ray
    try:
        ray.init(address=args.address, log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as err:  # -> "s2s: error: ...", exit 2
        raise ValueError(f"no Ray cluster at --address {args.address}: {err}") from err
    try:
        apps = collect(bootstrap, security)
    finally:
        ray.shutdown()
    print(to_json(apps) if args.json else format_status(apps))
    return 0
