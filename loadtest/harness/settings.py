"""The harness's arguments: on the command line, in `loadtest/locust.conf`, or in the web UI.

Locust forwards them from the master to every worker, so `HarnessSettings.of(environment)` gives
the same answer on each process. This module does not import Locust (which patches the standard
library for gevent on import), so `python -m loadtest.harness.seeding` can use it in a plain process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecard import ClientOptions, TLSConfig
from loadtest.harness.slo import Thresholds

if TYPE_CHECKING:
    from locust.env import Environment


def add_merchant_counts(parser: Any) -> None:
    """--pharmacies and --hospitals: the seeded merchants (the failover rig makes their certificates too)."""
    parser.add_argument("--pharmacies", type=int, default=20, help="pharmacies seeded (default 20)")
    parser.add_argument("--hospitals", type=int, default=4, help="hospitals seeded (default 4)")


def add_arguments(parser: Any) -> None:
    """Adds the harness's arguments to Locust's parser (hooks.py registers this) or to a plain argparse one."""
    load = parser.add_argument_group("ecard workload (open model)")
    load.add_argument("--arrival-rate", type=float, default=40.0,
                      help="visits per second, all scenarios together; their weights split it (default 40)")
    load.add_argument("--visit-interval", type=float, default=1.0,
                      help="mean seconds between visits at one simulated counter; users = rate x interval (default 1)")
    load.add_argument("--arrivals", choices=["poisson", "uniform"], default="poisson",
                      help="arrival process at each counter (default poisson)")
    load.add_argument("--max-in-flight", type=int, default=20,
                      help="visits one counter may have open before its scheduled starts turn late (default 20)")
    load.add_argument("--late-tolerance", type=float, default=0.1,
                      help="a visit starting more than this many seconds after its schedule is late (default 0.1)")
    load.add_argument("--call-timeout", type=float, default=5.0, help="deadline of each RPC in seconds (default 5)")

    seed = parser.add_argument_group("ecard seeding (through the public API)")
    seed.add_argument("--seed-file", default="",
                      help="seed JSON to reuse; seeded and written there when it does not exist yet")
    seed.add_argument("--seed-tag", default="", help="letters/digits naming the seeded ids (default: random)")
    seed.add_argument("--cards", type=int, default=20_000, help="physical cards enrolled with EnrollCards")
    seed.add_argument("--ecards", type=int, default=1_000, help="e-cards issued (and used) among them")
    seed.add_argument("--lost-ecards", type=int, default=20, help="e-cards reported lost, for the hostile mix")
    add_merchant_counts(seed)

    gate = parser.add_argument_group("ecard SLO gate (checked on the master)")
    gate.add_argument("--slo-checkout-p99", type=float, default=3.0, help="seconds (default 3)")
    gate.add_argument("--slo-checkout-p50", type=float, default=1.0, help="seconds (default 1)")
    gate.add_argument("--slo-failure-ratio", type=float, default=0.001, help="failed / all requests (default 0.001)")
    gate.add_argument("--slo-wrong-verdicts", type=int, default=0, help="verdicts other than expected (default 0)")
    gate.add_argument("--report-prefix", default="reports/loadtest",
                      help="writes PREFIX.report.txt, PREFIX.report.json and PREFIX.seed.json")

    steps = parser.add_argument_group("ecard capacity search (loadtest/capacity.py)")
    steps.add_argument("--step-start-rate", type=float, default=20.0, help="first step's arrival rate (visits/s)")
    steps.add_argument("--step-rate-increase", type=float, default=20.0, help="added at each step (visits/s)")
    steps.add_argument("--step-duration", type=float, default=15.0, help="seconds per step")
    steps.add_argument("--step-max-rate", type=float, default=400.0, help="stop stepping past this rate")

    tls = parser.add_argument_group("ecard mTLS (a real deployment)")
    tls.add_argument("--tls-ca", default="", help="CA PEM of the server certificate; enables mTLS")
    tls.add_argument("--tls-cert-dir", default="",
                     help="client certificates NAME.crt + NAME.key, NAME = admin | merchant-ID | channel-ID")
    tls.add_argument("--tls-server-name", default="", help="name checked against the server certificate")


@dataclass(frozen=True)
class HarnessSettings:
    """The parsed arguments, typed."""

    arrival_rate: float
    visit_interval: float
    arrivals: str
    max_in_flight: int
    late_tolerance: float
    call_timeout: float
    seed_file: str
    seed_tag: str
    cards: int
    ecards: int
    lost_ecards: int
    pharmacies: int
    hospitals: int
    thresholds: Thresholds
    report_prefix: str
    step_start_rate: float
    step_rate_increase: float
    step_duration: float
    step_max_rate: float
    tls_ca: str
    tls_cert_dir: str
    tls_server_name: str

    @classmethod
    def from_options(cls, options: Any) -> HarnessSettings:
        settings = cls(
            arrival_rate=float(options.arrival_rate),
            visit_interval=float(options.visit_interval),
            arrivals=str(options.arrivals),
            max_in_flight=int(options.max_in_flight),
            late_tolerance=float(options.late_tolerance),
            call_timeout=float(options.call_timeout),
            seed_file=str(options.seed_file or ""),
            seed_tag=str(options.seed_tag or ""),
            cards=int(options.cards),
            ecards=int(options.ecards),
            lost_ecards=int(options.lost_ecards),
            pharmacies=int(options.pharmacies),
            hospitals=int(options.hospitals),
            thresholds=Thresholds(
                checkout_p99_s=float(options.slo_checkout_p99),
                checkout_p50_s=float(options.slo_checkout_p50),
                failure_ratio=float(options.slo_failure_ratio),
                wrong_verdicts=int(options.slo_wrong_verdicts),
            ),
            report_prefix=str(options.report_prefix),
            step_start_rate=float(options.step_start_rate),
            step_rate_increase=float(options.step_rate_increase),
            step_duration=float(options.step_duration),
            step_max_rate=float(options.step_max_rate),
            tls_ca=str(options.tls_ca or ""),
            tls_cert_dir=str(options.tls_cert_dir or ""),
            tls_server_name=str(options.tls_server_name or ""),
        )
        settings.check()
        return settings

    @classmethod
    def of(cls, environment: Environment) -> HarnessSettings:
        return cls.from_options(environment.parsed_options)

    def check(self) -> None:
        """Raises ValueError naming the first argument that cannot work."""
        positive = {"--arrival-rate": self.arrival_rate, "--visit-interval": self.visit_interval,
                    "--max-in-flight": self.max_in_flight, "--call-timeout": self.call_timeout,
                    "--step-duration": self.step_duration, "--step-start-rate": self.step_start_rate}
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, not {value}")
        if self.ecards < 2 or self.cards < self.ecards:
            raise ValueError("need --ecards of at least 2 and --cards of at least --ecards")
        if not 1 <= self.lost_ecards < self.ecards // 2:
            raise ValueError("--lost-ecards must be at least 1 and below half of --ecards")
        if self.pharmacies < 1 or self.hospitals < 1:
            raise ValueError("need at least one pharmacy and one hospital")
        if bool(self.tls_ca) != bool(self.tls_cert_dir):
            raise ValueError("mTLS needs both --tls-ca and --tls-cert-dir")

    def users_for(self, arrival_rate: float) -> int:
        """Simulated counters needed so that their visits add up to `arrival_rate` per second."""
        return max(1, math.ceil(arrival_rate * self.visit_interval - 1e-9))

    def client_options(self, principal: str, *, interceptors: tuple[object, ...] = ()) -> ClientOptions:
        """SDK options for one principal (`admin`, `merchant:ID`, `channel:ID`).

        Development mode names the principal in metadata (loopback only). With mTLS the principal is
        the client certificate, read from --tls-cert-dir. Retries stay the SDK's own, as at a real
        counter: each attempt is a request in the report, and the checkout's time includes them.
        """
        tls = None
        if self.tls_ca:
            name = principal.replace(":", "-")
            folder = Path(self.tls_cert_dir)
            tls = TLSConfig(
                ca_cert=Path(self.tls_ca).read_bytes(),
                client_cert=(folder / f"{name}.crt").read_bytes(),
                client_key=(folder / f"{name}.key").read_bytes(),
                server_name=self.tls_server_name or None,
            )
        return ClientOptions(tls=tls, timeout=self.call_timeout, interceptors=interceptors)
