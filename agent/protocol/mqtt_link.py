"""The MQTT connection: explicit state, TLS, MQTT 3.1.1 or 5, last will, reconnect with backoff.

One paho-mqtt 2.x client per link, driven by paho's network thread (`loop_start`), which
reconnects with exponential backoff (`reconnect_delay_set`). Callbacks run on that thread and
must stay short; the fleet service hands heavier work to its own worker. QoS 1 messages that
were in flight when the connection dropped are re-sent by paho after reconnecting.
"""
from __future__ import annotations

import enum
import logging
import ssl
import threading
from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import unquote, urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from .errors import ConfigError

log = logging.getLogger("keywire.fleet.link")


@dataclass(frozen=True)
class MqttSettings:
    """Where and how to connect. `url` is mqtt://[user[:pass]@]host[:port] or mqtts://... (TLS)."""

    url: str
    client_id: str = ""
    username: str = ""
    password: str = ""
    ca: str = ""          # CA certificate file (TLS); empty: system CAs
    cert: str = ""        # client certificate (TLS client authentication)
    key: str = ""         # client private key
    protocol: str = "3.1.1"
    keepalive_s: int = 30
    min_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    insecure: bool = False  # skip server hostname check (test brokers on 127.0.0.1 with odd certs)

    def endpoint(self) -> tuple[str, int, bool, str, str]:
        """(host, port, tls, username, password) from the URL and the explicit fields."""
        u = urlparse(self.url)
        if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not u.hostname:
            raise ConfigError(f"invalid MQTT URL {self.url!r} (expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT])")
        tls = u.scheme in ("mqtts", "ssl") or bool(self.ca or self.cert)
        try:
            port = u.port or (8883 if tls else 1883)
        except ValueError:
            raise ConfigError(f"invalid port in MQTT URL {self.url!r}") from None
        user = self.username or unquote(u.username or "")
        password = self.password or unquote(u.password or "")
        return u.hostname, port, tls, user, password

    def validate(self) -> "MqttSettings":
        self.endpoint()
        if self.protocol not in ("3.1.1", "5"):
            raise ConfigError(f"MQTT protocol must be '3.1.1' or '5', got {self.protocol!r}")
        if bool(self.cert) != bool(self.key):
            raise ConfigError("a TLS client certificate needs both cert and key")
        return self


class LinkState(str, enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"   # paho retries with backoff
    CLOSED = "closed"


MessageHandler = Callable[[str, bytes], None]


class MqttLink:
    """A supervised MQTT client. `on_connect` runs after every (re)connect, e.g. to subscribe."""

    def __init__(self, settings: MqttSettings, on_message: MessageHandler,
                 on_connect: Optional[Callable[[], None]] = None,
                 on_published: Optional[Callable[[int], None]] = None,
                 will: Optional[tuple[str, bytes, bool]] = None,
                 max_inflight: int = 20) -> None:
        self.settings = settings.validate()
        self._host, self._port, tls, user, password = settings.endpoint()
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_published = on_published
        self.state = LinkState.IDLE
        self.connects = 0
        self.last_error = ""
        self._renewing = False  # a reconnect of our own (renew_will), not a lost connection
        self._connected = threading.Event()
        self._attempted = threading.Event()  # a first connection attempt finished (either way)
        v5 = settings.protocol == "5"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                                  protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                                  clean_session=None if v5 else True)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(max(1, int(settings.min_backoff_s)), max(1, int(settings.max_backoff_s)))
        if user:
            self.client.username_pw_set(user, password or None)
        if tls:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.ca or None)
            if settings.cert:
                try:
                    ctx.load_cert_chain(settings.cert, settings.key)
                except (OSError, ssl.SSLError) as exc:
                    raise ConfigError(f"cannot load TLS client certificate {settings.cert}: {exc}") from None
            if settings.insecure:
                ctx.check_hostname = False
            self.client.tls_set_context(ctx)
        if will:
            self.client.will_set(will[0], will[1], qos=1, retain=will[2])
        self.client.on_connect = self._handle_connect
        self.client.on_disconnect = self._handle_disconnect
        self.client.on_message = self._handle_message
        self.client.on_publish = self._handle_publish
        self.client.on_connect_fail = self._handle_connect_fail

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "MqttLink":
        """Connect in the background; paho keeps retrying with backoff until `close()`."""
        self.state = LinkState.CONNECTING
        kwargs = {}
        if self.settings.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0
            kwargs = {"clean_start": True, "properties": props}
        self.client.connect_async(self._host, self._port, keepalive=self.settings.keepalive_s, **kwargs)
        self.client.loop_start()
        return self

    def wait_connected(self, timeout: float, fail_fast: bool = False) -> bool:
        """True once connected; with `fail_fast`, False as soon as one attempt failed."""
        if fail_fast:
            self._attempted.wait(timeout)
            return self._connected.wait(0.05 if not self._connected.is_set() else 0)
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self.state is LinkState.CONNECTED

    def close(self, final: Optional[tuple[str, bytes, bool]] = None, timeout: float = 2.0) -> None:
        """Optionally publish a last message (e.g. offline status), disconnect, stop the thread."""
        if self.state is LinkState.CLOSED:
            return
        if final and self.connected:
            info = self.client.publish(final[0], final[1], qos=1, retain=final[2])
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self.state = LinkState.CLOSED
        self.client.disconnect()
        self.client.loop_stop()

    def renew_will(self, will: tuple[str, bytes, bool]) -> None:
        """Replace the last will. A broker keeps the will it got with CONNECT, so a connected
        link reconnects: the clean DISCONNECT discards the old will unsent and the new CONNECT
        carries this one; paho sends unacknowledged QoS 1 messages again afterwards. Not for
        paho's own thread (callbacks): it waits for that thread to finish."""
        self.client.will_set(will[0], will[1], qos=1, retain=will[2])
        if self.state is not LinkState.CONNECTED:
            return  # the next CONNECT carries it
        self._renewing = True
        try:
            self.client.disconnect()
            self.client.loop_stop()
        finally:
            self._renewing = False
        if self.state is not LinkState.CLOSED:
            self.start()

    # ------------------------------------------------------------ I/O
    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.client.subscribe(topic, qos)

    def unsubscribe(self, topic: str) -> None:
        self.client.unsubscribe(topic)

    # ------------------------------------------------------------ paho callbacks (network thread)
    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            log.warning("%s", self.last_error)
            self.state = LinkState.DISCONNECTED
            self._attempted.set()
            return
        self.state = LinkState.CONNECTED
        self.connects += 1
        log.info("connected to %s:%d (%s)", self._host, self._port, "reconnect" if self.connects > 1 else "first")
        if self._on_connect:
            try:
                self._on_connect()  # subscriptions are queued before anyone waiting may publish
            except Exception:
                log.exception("on_connect handler failed")
        self._connected.set()
        self._attempted.set()

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if self.state is not LinkState.CLOSED:
            self.state = LinkState.DISCONNECTED
        if self._renewing:
            log.info("MQTT reconnecting to renew the last will")
        elif self.state is not LinkState.CLOSED:
            self.last_error = f"disconnected: {reason_code}" if self.connects else \
                f"connection closed by the broker ({reason_code}; TLS or authentication refused?)"
            # before the first connection this is a failed attempt (e.g. TLS handshake refused)
            log.log(logging.WARNING if self.connects else logging.DEBUG, "MQTT %s; reconnecting with backoff",
                    self.last_error)
        self._attempted.set()

    def _handle_connect_fail(self, client, userdata) -> None:
        self.last_error = "connection failed"
        self._attempted.set()
        if self.state is not LinkState.CLOSED:
            self.state = LinkState.DISCONNECTED

    def _handle_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        try:
            self._on_message(message.topic, bytes(message.payload))
        except Exception:  # a bad message must never stop the network loop
            log.exception("handling a message on %s failed", message.topic)

    def _handle_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if self._on_published:
            try:
                self._on_published(mid)
            except Exception:
                log.exception("on_published handler failed")
