"""CLI: run the simulator as a process (for `make` targets and manual pipeline runs)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from .config import Faults, SimulatorConfig, parse_utc
from .server import Simulator
from .tls import make_self_signed_cert

#: Where the CLI reads the webhook secret token (never an argument: a command line is visible to all)
WEBHOOK_TOKEN_ENV = "ZOOM_SIM_WEBHOOK_SECRET_TOKEN"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m include.zoom_simulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--api-key", default="sim-key")
    p.add_argument("--api-secret", default="sim-secret")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--now", help="anchor time, ISO-8601 (default: real time at start)")
    p.add_argument("--sessions-per-day", type=int, default=12)
    p.add_argument("--clock-speed", type=float, default=0.0,
                   help="simulated seconds per real second: 0 = frozen at --now (default); 1 = real time; "
                        "60 = live sessions gain a sample a second")
    p.add_argument("--live-scenarios", type=int, default=3,
                   help="scripted live sessions around the anchor (churn, degrading, ending...; default 3)")
    p.add_argument("--live-anchor", help="where the live sessions sit, ISO-8601 (default: --now)")
    p.add_argument("--quality-scenarios", action="store_true",
                   help="add six scripted past sessions with known call-quality causes on the UTC day "
                        "before the anchor's (GET /_sim/quality_scenarios lists them)")
    p.add_argument("--unit-faults", action="store_true",
                   help="serve a few metric values in units no loader knows (\"23 furlongs\"), which Zoom "
                        "does not send: for tests of how a loader counts what it cannot parse")
    p.add_argument("--duration-faults", action="store_true",
                   help="make ~3 %% of sessions' duration disagree with end - start by over 60 s (like the "
                        "definition's example, \"30:00\" for ten minutes): for tests of that check")
    p.add_argument("--ending-every", type=float, default=240.0,
                   help="seconds between the ends of the scripted ending live sessions")
    p.add_argument("--webhook-url", help="POST Zoom's event notifications (session.ended, session.alert) "
                   "here, signed with the token in $ZOOM_SIM_WEBHOOK_SECRET_TOKEN")
    p.add_argument("--webhook-time-scale", type=float, default=1.0,
                   help="wall seconds per second of Zoom's retry schedule "
                   "(1/30: retries after 10 s, 40 s, 2 min)")
    p.add_argument("--token-ttl", type=float, default=900.0, help="page token lifetime in seconds")
    p.add_argument("--daily-limit", type=int, default=60000)
    p.add_argument("--no-rate-limits", action="store_true", help="do not enforce rate limits")
    p.add_argument("--faults", help="JSON object of Faults fields to start with")
    p.add_argument("--ready-file", help="write the base URL here once listening")
    p.add_argument("--verbose", action="store_true", help="log one line per request to stderr")
    p.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (needs --tls-key)")
    p.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    p.add_argument("--tls", action="store_true",
                   help="serve HTTPS with a self-signed certificate for 127.0.0.1/localhost made into a temp "
                        "dir; its path is printed (and written to READY_FILE.cert) for clients to trust")
    args = p.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        p.error("--tls-cert and --tls-key go together")
    if args.tls and args.tls_cert:
        p.error("--tls makes its own certificate: give either --tls or --tls-cert/--tls-key")
    return args


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT, then shut down cleanly (exit status 0)."""
    args = _parse_args(argv)
    try:
        if not 0 <= args.clock_speed < float("inf") or args.live_scenarios < 0:
            raise ValueError("--clock-speed (finite) and --live-scenarios must be >= 0")
        now = parse_utc(args.now) if args.now else None
        anchor = parse_utc(args.live_anchor) if args.live_anchor else None
        faults = Faults.from_dict(json.loads(args.faults)) if args.faults else Faults()
        webhook_token = os.environ.get(WEBHOOK_TOKEN_ENV) if args.webhook_url else None
        if args.webhook_url and not webhook_token:
            raise ValueError(f"--webhook-url needs the secret token in ${WEBHOOK_TOKEN_ENV}")
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cert, key = args.tls_cert, args.tls_key
    if args.tls:
        made_cert, made_key = make_self_signed_cert()
        cert, key = str(made_cert), str(made_key)
    config = SimulatorConfig(
        api_key=args.api_key, api_secret=args.api_secret, seed=args.seed, now=now,
        sessions_per_day=args.sessions_per_day, page_token_ttl_seconds=args.token_ttl,
        daily_limit=args.daily_limit,
        enforce_rate_limits=not args.no_rate_limits, tls_cert=cert, tls_key=key,
        clock_speed=args.clock_speed, live_scenarios=args.live_scenarios, live_anchor=anchor,
        quality_scenarios=args.quality_scenarios, unit_faults=args.unit_faults,
        duration_faults=args.duration_faults, ending_every_seconds=args.ending_every,
        webhook_url=args.webhook_url, webhook_secret_token=webhook_token,
        webhook_time_scale=args.webhook_time_scale,
    )
    try:
        sim = Simulator(config, host=args.host, port=args.port, verbose=args.verbose)
    except (ValueError, OSError) as exc:  # e.g. a certificate or key that cannot be loaded
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sim.set_faults(faults)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sim.start()
    print(f"Zoom API simulator listening on {sim.base_url}", flush=True)
    if config.clock_speed:
        print(f"Simulated clock from {sim.now.isoformat()} at x{config.clock_speed:g}", flush=True)
    if sim.webhooks is not None:
        print(f"Sending Zoom's event notifications to {sim.webhooks.url}", flush=True)
    if cert:
        print(f"TLS certificate (clients trust this file): {cert}", flush=True)
    if args.ready_file:
        if cert:  # before the ready file: whoever sees it may read the certificate's path at once
            with open(f"{args.ready_file}.cert", "w", encoding="utf-8") as fh:
                fh.write(cert + "\n")
        tmp = f"{args.ready_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(sim.base_url + "\n")
        os.replace(tmp, args.ready_file)
    while not stop.wait(0.5):
        pass
    sim.stop()
    print("Zoom API simulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
