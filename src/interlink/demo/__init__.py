"""``make demo``: interlink shown live on this machine, against simulated upstreams it starts itself.

``interlink demo`` runs the service demo (``run_service_demo``): a payment
provider's webhooks through the whole service, configured by
``examples/demo.yaml``. ``interlink demo-resilience`` runs the shorter
resilience demo (``run_resilience_demo``): one pipeline against an upstream
that misbehaves on cue.
"""

from interlink.demo._provider import OutagePlan
from interlink.demo._report import ServiceDemoReport
from interlink.demo._resilience import DemoReport, run_resilience_demo
from interlink.demo._service import ServiceDemo, run_service_demo

__all__ = [
    "DemoReport",
    "OutagePlan",
    "ServiceDemo",
    "ServiceDemoReport",
    "run_resilience_demo",
    "run_service_demo",
]
