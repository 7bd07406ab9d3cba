"""The MQTT side of telemetry: one thread that (re)connects, drains the spool in order and deletes
each message when the broker acknowledges it (PUBACK → ``on_publish``).

A fresh paho client is made for every connection, so after a reconnect the spool is simply sent
again from its oldest message: a message in flight when the link broke may arrive twice
(at-least-once; receivers de-duplicate by ``(device, seq)``), none is lost. Connection problems
(refused, unknown host, TLS, bad credentials, ACL denials) are reported through ``on_error`` with a
message that says what to check, and retried with exponential back-off.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from sdk.errors import TelemetryError
from sdk.telemetry.settings import TelemetrySettings
from sdk.telemetry.spool import Spool

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
ErrorHook = Callable[[str, str], None]


def status_payload(settings: TelemetrySettings, state: str) -> bytes:
    return json.dumps({"schema": SCHEMA_VERSION, "device": settings.device_id, "fleet": settings.fleet,
                       "state": state, "ts": time.time()}).encode()


class MqttLink:
    """Publishes ``spool``'s messages to the broker in ``settings``; ``start()``/``stop()``."""

    def __init__(self, settings: TelemetrySettings, spool: Spool, on_error: ErrorHook,
                 on_command: Callable[[bytes], None] | None = None,
                 on_ack: Callable[[list[int]], None] | None = None,
                 on_bundle: Callable[[str, bytes], None] | None = None) -> None:
        self.s = settings
        self.on_bundle = on_bundle
        self.spool = spool
        self.on_error = on_error
        self.on_command = on_command
        self.on_ack = on_ack
        self.connected = threading.Event()
        self.last_error: tuple[str, str] | None = None
        self.counts = {"published": 0, "acked": 0, "denied": 0, "connects": 0, "connect_failures": 0}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._inflight: dict[int, tuple[int, str]] = {}
        self._acked: list[int] = []
        self._cursor = 0
        self._backoff = settings.reconnect_min_s
        self._connect_started = 0.0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"ember-mqtt-{self.s.device_id}", daemon=True)
            self._thread.start()

    def kick(self) -> None:
        """A new message was spooled: send it soon."""
        self._wake.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Flush for up to ``timeout`` s, publish ``offline`` (retained) and disconnect cleanly."""
        deadline = time.monotonic() + timeout
        while self.connected.is_set() and (self.spool.count or self._inflight) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, deadline - time.monotonic() + 1.0))
            self._thread = None

    # -- the link thread -------------------------------------------------------------------------
    def _run(self) -> None:
        next_try = 0.0
        while not self._stop.is_set():
            client = self._client
            if client is None:
                if time.monotonic() >= next_try:
                    self._try_connect()
                    next_try = time.monotonic() + self._backoff
                self._wake.wait(min(0.1, max(0.0, next_try - time.monotonic())))
                self._wake.clear()
                continue
            busy = self._wake.is_set() or bool(self._inflight)
            rc = client.loop(timeout=0.01 if busy else 0.2)
            self._flush_acks()
            lost = rc != mqtt.MQTT_ERR_SUCCESS or (self.connected.is_set() and not client.is_connected())
            stalled = not self.connected.is_set() and time.monotonic() - self._connect_started > 10.0
            if lost or stalled:
                why = mqtt.error_string(rc) if rc != mqtt.MQTT_ERR_SUCCESS else "no CONNACK" if stalled else "closed"
                self._drop_client(f"connection to {self.s.host}:{self.s.port} lost ({why})")
                next_try = time.monotonic() + self._backoff
                continue
            if self.connected.is_set() and self._wake.is_set():
                self._wake.clear()
                self._drain(client)
        self._shutdown()

    def _try_connect(self) -> None:
        client = self._new_client()
        try:
            client.connect(self.s.host, self.s.port, keepalive=self.s.keepalive, **session_args(self.s))
        except Exception as e:  # noqa: BLE001 - classified into a clear message
            self.counts["connect_failures"] += 1
            self._error(*classify_connect_error(e, self.s))
            self._backoff = min(self.s.reconnect_max_s, self._backoff * 2)
            _close_quietly(client)
            return
        self._client = client
        self._connect_started = time.monotonic()
        self._inflight.clear()
        self._cursor = 0

    def _new_client(self) -> mqtt.Client:
        s = self.s
        c = new_client(s, s.client_id)
        c.max_inflight_messages_set(s.max_inflight)
        c.max_queued_messages_set(0)
        c.will_set(f"{s.base_topic}/status", status_payload(s, "offline"), qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        return c

    def _on_connect(self, client: mqtt.Client, _u: Any, _flags: Any, rc: ReasonCode, _p: Properties | None) -> None:
        if rc.is_failure:
            self.counts["connect_failures"] += 1
            self._error("connect_refused", f"broker {self.s.host}:{self.s.port} rejected the connection: {rc} "
                        "(check telemetry.username/password, client id and the broker's ACL)")
            self._backoff = min(self.s.reconnect_max_s, max(self._backoff * 2, 1.0))
            return
        self.counts["connects"] += 1
        self._backoff = self.s.reconnect_min_s
        client.publish(f"{self.s.base_topic}/status", status_payload(self.s, "online"), qos=1, retain=True)
        topics = [(f"{self.s.base_topic}/cmd", 1)]
        if self.on_bundle is not None:
            topics.append((f"{self.s.base_topic}/bundle/+", 1))  # model bundles sent as MQTT chunks
        client.subscribe(topics)
        self.connected.set()
        self.last_error = None
        self._wake.set()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Properties | None) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return
        if rc.is_failure:
            self.counts["denied"] += 1
            self.spool.count_event("denied")
            self._error("publish_denied", f"broker refused the message to {entry[1]}: {rc} "
                        f"(check the broker's ACL for user {self.s.username or '(anonymous)'}); message dropped")
        self._acked.append(entry[0])

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, rcs: list[ReasonCode], _p: Any) -> None:
        if rcs and rcs[0].is_failure:
            self._error("subscribe_denied", f"broker refused the subscription to {self.s.base_topic}/cmd: "
                        f"{rcs[0]} (check the broker's ACL); remote commands are off")
        elif len(rcs) > 1 and rcs[1].is_failure:
            self._error("subscribe_denied", f"broker refused the subscription to {self.s.base_topic}/bundle/+: "
                        f"{rcs[1]} (check the broker's ACL); bundles can only come by URL")

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if self.on_command is not None and msg.topic == f"{self.s.base_topic}/cmd":
            self.on_command(msg.payload)
        elif self.on_bundle is not None and msg.topic.startswith(f"{self.s.base_topic}/bundle/"):
            self.on_bundle(msg.topic.rsplit("/", 1)[1], msg.payload)

    def _drain(self, client: mqtt.Client) -> None:
        room = self.s.max_inflight - len(self._inflight)
        if room <= 0:
            return
        batch = self.spool.pending(after=self._cursor, limit=room)
        if len(batch) == room:
            self._wake.set()  # more to send once acks free the window
        for m in batch:
            info = client.publish(m.topic, m.payload, qos=m.qos)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self._wake.set()
                return
            self._cursor = m.id
            self.counts["published"] += 1
            if m.qos == 0 and info.is_published():
                self._acked.append(m.id)
            else:
                self._inflight[info.mid] = (m.id, m.topic)

    def _flush_acks(self) -> None:
        if not self._acked:
            return
        ids, self._acked = self._acked, []
        self._wake.set()  # the in-flight window has room again
        if self.on_ack is not None:
            self.on_ack(ids)
        try:
            self.spool.ack(ids)
        except TelemetryError as e:
            self._error("spool_error", str(e))
        self.counts["acked"] += len(ids)

    def _drop_client(self, why: str) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if self._client is not None:
            _close_quietly(self._client)
        self._client = None
        self._inflight.clear()
        if was:
            self._error("disconnected", why)

    def _shutdown(self) -> None:
        c = self._client
        if c is not None and self.connected.is_set():
            info = c.publish(f"{self.s.base_topic}/status", status_payload(self.s, "offline"), qos=1, retain=True)
            deadline = time.monotonic() + 1.0
            while not info.is_published() and time.monotonic() < deadline and c.loop(0.05) == 0:
                pass
            self._flush_acks()
            c.disconnect()
        if c is not None:
            _close_quietly(c)
        self._client = None
        self.connected.clear()

    def _error(self, code: str, message: str) -> None:
        repeat = self.last_error == (code, message)
        self.last_error = (code, message)
        if not repeat:
            log.warning("telemetry: %s", message)
            self.on_error(code, message)


def session_args(s: TelemetrySettings) -> dict[str, Any]:
    """Connect arguments: with ``session_expiry_s`` > 0 the broker keeps the device's session (its
    ``cmd`` subscription and the QoS 1 commands sent meanwhile) while the device is offline."""
    if s.session_expiry_s <= 0:
        return {"clean_start": True}
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = int(s.session_expiry_s)
    return {"clean_start": False, "properties": props}


def new_client(s: TelemetrySettings, client_id: str, cls: type[mqtt.Client] = mqtt.Client) -> mqtt.Client:
    """A paho MQTT v5 client (of class ``cls``) with the credentials and TLS files of ``s``; a TLS file
    problem is a ``TelemetryError`` naming the settings to check."""
    c = cls(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if s.username:
        c.username_pw_set(s.username, s.password or None)
    if s.use_tls:
        try:
            c.tls_set(ca_certs=s.ca_certs or None, certfile=s.certfile or None, keyfile=s.keyfile or None)
        except (OSError, ssl.SSLError, ValueError) as e:
            raise TelemetryError(f"TLS setup failed ({e}): check telemetry.ca_certs, certfile and keyfile") from None
    return c


def classify_connect_error(e: BaseException, s: TelemetrySettings) -> tuple[str, str]:
    """``(code, message)`` for a failed connect, naming what to check."""
    where = f"{s.host}:{s.port}"
    if isinstance(e, TelemetryError):
        return "tls_setup", str(e)
    if isinstance(e, ssl.SSLCertVerificationError):
        return "tls_verify", (f"TLS certificate of broker {where} not trusted: {e.verify_message} "
                              "(check telemetry.ca_certs names the CA that signed the broker certificate, "
                              "and that the host name matches it)")
    if isinstance(e, ssl.SSLError):
        return "tls_error", (f"TLS handshake with broker {where} failed: {e.reason or e} "
                             "(check telemetry.ca_certs/certfile/keyfile and that the port speaks TLS)")
    if isinstance(e, ConnectionRefusedError):
        return "refused", f"connection refused by {where}: is the broker running and listening on that port?"
    if isinstance(e, socket.gaierror):
        return "dns", f"cannot resolve broker host {s.host!r} ({e.strerror}): check telemetry.broker"
    if isinstance(e, (TimeoutError, socket.timeout)):
        return "timeout", f"timed out connecting to {where}: check the address and any firewall"
    if isinstance(e, OSError):
        return "network", f"cannot connect to {where}: {e.strerror or e}"
    return "connect_error", f"cannot connect to {where}: {type(e).__name__}: {e}"


def _close_quietly(c: mqtt.Client) -> None:
    try:
        sock = c.socket()
        if sock is not None:
            sock.close()
    except Exception:  # noqa: BLE001, S110 - best effort on a dead socket
        pass
