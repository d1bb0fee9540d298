"""The harness's Locust event listeners, registered by `register(events)`: the locustfile calls it
(explicitly, where Locust can see it), never an import's side effect.

- init_command_line_parser: the harness's arguments (`loadtest/harness/settings.py`).
- init: the master (or the single local process) seeds the target, or loads `--seed-file`;
  a worker registers to receive the seed.
- test_start: the master sends the seed to every worker (before their users spawn); tallies restart.
- report_to_master / worker_report: each worker's tally joins the master's, as Locust's statistics do.
- quitting: on the master only, the report is written and the gate sets the exit code, naming each
  threshold that failed.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from locust.env import Environment
from locust.event import Events
from locust.runners import MasterRunner, WorkerRunner

from loadtest.harness import report
from loadtest.harness.run_context import context_of
from loadtest.harness.seeding import Seed, SeedingError, seed_deployment
from loadtest.harness.settings import add_arguments
from loadtest.shapes import CHECKOUT

log = logging.getLogger("loadtest")
SEED_MESSAGE = "ecard_seed"
TALLY_KEY = "ecard_tally"

def on_init(environment: Environment, **_: Any) -> None:
    if environment.parsed_options is None:  # Locust used as a library, without the harness's arguments
        return
    try:
        context = context_of(environment)
    except ValueError as exc:
        log.error("bad load-test arguments: %s", exc)
        sys.exit(2)
    checkout_type, checkout_name = CHECKOUT[1], CHECKOUT[0]

    def on_request(request_type: str, name: str, response_time: float, **_: Any) -> None:
        if request_type == checkout_type and name == checkout_name:  # exact, beside Locust's rounded buckets
            context.tally.record_checkout(response_time / 1000)

    environment.events.request.add_listener(on_request)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message(SEED_MESSAGE, lambda msg, **_: context.share_seed(Seed.from_dict(msg.data)))
        return
    if not environment.host:
        log.error("give the ecard server as --host HOST:PORT")
        sys.exit(2)
    try:
        context.share_seed(_obtain_seed(environment.host, context.settings))
    except (SeedingError, ValueError, OSError) as exc:
        log.error("seeding %s failed: %s", environment.host, exc)
        sys.exit(2)
    except Exception as exc:  # an RPC error: the target is down, refuses us, or is not ecard
        log.error("seeding %s failed: %s: %s", environment.host, type(exc).__name__, exc)
        sys.exit(2)


def _obtain_seed(host: str, settings: Any) -> Seed:
    if settings.seed_file and Path(settings.seed_file).exists():
        seed = Seed.load(settings.seed_file)
        if seed.target != host:
            log.warning("seed %s was made for %s, the target is %s", settings.seed_file, seed.target, host)
        log.info("seed %s loaded from %s", seed.tag, settings.seed_file)
        return seed
    seed = seed_deployment(
        host, cards=settings.cards, ecards=settings.ecards, lost_ecards=settings.lost_ecards,
        pharmacies=settings.pharmacies, hospitals=settings.hospitals, tag=settings.seed_tag,
        options_for=settings.client_options, log=log.info,
    )
    path = seed.save(settings.seed_file or f"{settings.report_prefix}.seed.json")
    log.info("seed %s written to %s", seed.tag, path)
    return seed


def on_test_start(environment: Environment, **_: Any) -> None:
    if environment.parsed_options is None:
        return
    context = context_of(environment)
    context.tally.reset()
    context.started_at, context.stopped_at = time.time(), None
    if isinstance(environment.runner, MasterRunner) and context.seed is not None:
        environment.runner.send_message(SEED_MESSAGE, context.seed.to_dict())


def on_test_stop(environment: Environment, **_: Any) -> None:
    if environment.parsed_options is not None:
        context_of(environment).stopped_at = time.time()


def on_report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
    environment = _environment_of_worker()
    if environment is not None:
        data[TALLY_KEY] = context_of(environment).tally.drain()


def on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    environment = _environment_of_master()
    if environment is not None and TALLY_KEY in data:
        context = context_of(environment)
        context.workers.add(client_id)
        context.tally.merge(data[TALLY_KEY])


def on_quitting(environment: Environment, **_: Any) -> None:
    if environment.parsed_options is None or isinstance(environment.runner, WorkerRunner):
        return
    context = context_of(environment)
    if context.started_at is None:
        return  # never started (e.g. seeding failed, or a web UI closed before a run)
    breaches = report.gate(environment, context)
    content = report.build(environment, context, breaches)
    json_path, text_path = report.write(content, context.settings.report_prefix)
    sys.stdout.write("\n" + report.render(content) + f"(report: {text_path}, {json_path})\n")
    sys.stdout.flush()
    for breach in breaches:
        log.error("SLO threshold failed: %s", breach)
    environment.process_exit_code = 1 if breaches else 0


# report_to_master and worker_report carry no environment; the runner's is the one of this process.
_environments: list[Environment] = []


def _remember_environment(environment: Environment, **_: Any) -> None:
    _environments.append(environment)


def _environment_of_worker() -> Environment | None:
    return next((e for e in _environments if isinstance(e.runner, WorkerRunner)), None)


def _environment_of_master() -> Environment | None:
    return next((e for e in _environments if isinstance(e.runner, MasterRunner)), None)


_registered: list[Events] = []


def register(events: Events) -> None:
    """Adds the harness's listeners to Locust's `events` (once per Events object)."""
    if any(known is events for known in _registered):
        return
    _registered.append(events)
    events.init_command_line_parser.add_listener(add_arguments)
    events.init.add_listener(on_init)
    events.init.add_listener(_remember_environment)
    events.test_start.add_listener(on_test_start)
    events.test_stop.add_listener(on_test_stop)
    events.report_to_master.add_listener(on_report_to_master)
    events.worker_report.add_listener(on_worker_report)
    events.quitting.add_listener(on_quitting)
