"""A webhook receiver process for the crash test: uvicorn on an inherited listening socket.

``python -m tests.webhooks.receiver_proc <broker url> <fd>``: the test holds the
socket, so a restarted process serves the same port and connections made
while none runs wait in the backlog.
"""

from __future__ import annotations

import sys

import uvicorn

from interlink.webhooks import WebhookReceiver, WebhookSource
from tests.webhooks.signing import SECRET

QUEUE = "crash.events"


def main() -> None:
    broker_url, fd = sys.argv[1], int(sys.argv[2])
    source = WebhookSource(
        "crash", path="/webhooks/crash", scheme="standard", secrets=[SECRET], queue=QUEUE
    )
    receiver = WebhookReceiver([source], broker=broker_url)
    uvicorn.run(receiver, fd=fd, lifespan="on", log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
