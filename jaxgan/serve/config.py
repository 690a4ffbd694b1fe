"""The settings of `jaxgan serve`, with their defaults, defined once (the command line and `create_app` read them)."""

import dataclasses
import ipaddress

LOOPBACK = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """How the server listens, what it accepts, and how its engine batches."""

    host: str = LOOPBACK
    port: int = 8000
    token: str | None = None          # clients send `Authorization: Bearer TOKEN`; required off loopback
    insecure: bool = False            # allow a non-loopback bind without a token
    cors_origins: tuple = ()          # no CORS headers unless origins are given
    max_sessions: int | None = None   # None: from the compiled step's memory and the device memory
    session_ttl: float = 900.0        # seconds an idle session (not running, untouched) lives
    max_body_bytes: int = 32 * 2 ** 20
    max_image_pixels: int = 4096 * 4096  # larger uploads are refused from their header, before decoding
    max_points: int = 8               # handle points per drag (the padded point count of the compiled step)
    max_steps: int = 2000             # cap on a session's steps
    max_seeds: int = 64               # images per generate request
    max_batch: int = 16               # largest session batch (a power of two) one compiled step holds
    batch_wait_ms: float = 5.0        # how long a stateless request waits for others to batch with
    request_timeout: float = 120.0    # seconds a request waits for the engine before a 503
    warmup: bool = False              # compile the default programs for every bucket at start
    memory_fraction: float = 0.5      # share of the device memory sessions may take (for the default capacity)

    def __post_init__(self):
        if self.max_batch < 1 or self.max_batch & (self.max_batch - 1):
            raise ValueError(f"max_batch must be a power of two, got {self.max_batch}")
        if self.max_sessions is not None and self.max_sessions < 1:
            raise ValueError("max_sessions must be >= 1")
        if self.session_ttl <= 0:
            raise ValueError("session_ttl must be > 0")

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def check_exposure(self) -> None:
        """Refuse to listen beyond this machine without a token, unless `insecure` says so."""
        if not self.loopback and self.token is None and not self.insecure:
            raise ValueError(f"--host {self.host} is reachable from other machines: give --token T (clients then "
                             "send 'Authorization: Bearer T'), or --insecure to serve without one")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
