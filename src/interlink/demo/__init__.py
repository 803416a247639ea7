"""``make demo``: interlink shown live on this machine, against an upstream it starts itself."""

from interlink.demo._resilience import DemoReport, run_resilience_demo

__all__ = ["DemoReport", "run_resilience_demo"]
