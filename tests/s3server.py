"""A real S3 endpoint for tests: moto's server in a thread, bound to 127.0.0.1.

Start it once per session from a *sync* fixture (it runs in its own thread, so it
doesn't care about event loops) and point the AWS_* variables at it with `env`.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

from moto.server import ThreadedMotoServer

REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # e.g. http://127.0.0.1:41234
    env: dict[str, str] = field(default_factory=dict)  # AWS_* settings that reach it


def dummy_env(endpoint: str) -> dict[str, str]:
    """Settings for botocore: fake credentials, and nothing from the developer's ~/.aws."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


# Variables that would override or confuse the dummy settings if the developer has them.
UNSET_VARS = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_DEFAULT_REGION",
              "AWS_ENDPOINT_URL", "AWS_SECURITY_TOKEN")


@contextlib.contextmanager
def moto_s3_server() -> Iterator[S3Server]:
    # Port 0: the kernel picks a free port, so parallel runs can't collide.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        yield S3Server(endpoint=endpoint, env=dummy_env(endpoint))
    finally:
        server.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
