"""The device side of a model push: desired manifest -> windowed chunk download -> install.

The host leaves the model on the broker as retained messages: one signed manifest on a
*desired* topic (per device, per group or for all) and the chunks on
`keywire/<fleet>/model/<sha256>/chunk/<i>`. A device pulls the chunks itself through a small
window of subscriptions (subscribe to chunk i, store it, unsubscribe, subscribe to the next
missing one), so no broker ever queues more than `window` chunks for it, however large the
model. Verified chunks are kept on disk: a transfer interrupted by a disconnect or an agent
restart resumes with the missing chunks only. A device offline during a push finds the
retained manifest when it returns and fetches the retained chunks; the host need not be
running.

Every step is reported on the device's `push` topic (per-chunk acknowledgement, final
outcome); every rejection names its reason. All methods run on the fleet service's single
worker thread.

Nothing unsigned touches the transfer state: a manifest counts as seen, pending or handled
only under the digest of the content its verified signature covers, so a forged copy of a
real manifest (same fields, no valid signature) cannot shadow the genuine one on another
topic. Rejections of unverified input are answered at a bounded rate, and everything kept
per manifest is bounded, however many forgeries arrive.

Every report names the manifest it answers by its `push_id` (signature included): a refused
forged copy of a genuine manifest carries the forgery's id, never the genuine one's, so the
host that published the genuine manifest does not take the refusal for its answer.
"""
from __future__ import annotations

import collections
import hashlib
import json
import logging
import time
from typing import Callable, Mapping, Optional, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keywire.protocol.errors import FleetError, MessageError, ModelRejected, SignatureError
from keywire.protocol.manifest import Manifest
from keywire.protocol.messages import ACTIVE, REJECTED, RECEIVING, SELF_TEST, VERIFYING, Progress
from keywire.protocol.topics import DeviceTopics, FleetTopics

from .selftest import DeviceProfile, check_manifest
from .store import ModelStore, Staging, checked_digest

log = logging.getLogger("keywire.fleet.push")


class Transport(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> object: ...

    def subscribe(self, topic: str, qos: int = 1) -> None: ...

    def unsubscribe(self, topic: str) -> None: ...


Activate = Callable[[bytes, Manifest], str]    # self-test, install, switch -> a note; ModelRejected on failure
Report = Callable[[Progress], None]

SEEN_DIGESTS = 64          # verified manifests remembered as handled (the newest ones)


class RejectionLimiter:
    """Answers to unverified input at a bounded rate: a token bucket (`burst`, then one per
    `every_s`) and no second answer to a payload answered recently. Bounded memory."""

    def __init__(self, burst: int = 8, every_s: float = 2.0, remember: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.every_s, self._clock = burst, every_s, clock
        self._tokens = float(burst)
        self._at = clock()
        self._recent: "collections.OrderedDict[str, None]" = collections.OrderedDict()
        self._remember = remember
        self.suppressed = 0

    def allow(self, payload: bytes) -> bool:
        key = hashlib.sha256(payload).hexdigest()
        if key in self._recent:
            self._recent.move_to_end(key)
            self.suppressed += 1
            return False
        self._recent[key] = None
        while len(self._recent) > self._remember:
            self._recent.popitem(last=False)
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) / self.every_s)
        self._at = now
        if self._tokens < 1.0:
            self.suppressed += 1
            return False
        self._tokens -= 1.0
        return True


def signed_digest(m: Manifest) -> str:
    """The digest of what a manifest's signature covers: its identity once verified."""
    return hashlib.sha256(m.signed_bytes()).hexdigest()


class PushReceiver:
    """State machine of one device's model transfers."""

    def __init__(self, device: DeviceTopics, groups: tuple[str, ...], store: ModelStore,
                 trusted: Mapping[str, Ed25519PublicKey], profile: Callable[[], DeviceProfile],
                 transport: Transport, activate: Activate, report: Report, window: int = 4,
                 report_interval_s: float = 1.0) -> None:
        self.device = device
        self.fleet = FleetTopics(device.fleet)
        self.groups = groups
        self.store = store
        self.trusted = dict(trusted)
        self.profile = profile
        self.transport = transport
        self.activate = activate
        self.report = report
        self.window = max(1, window)
        self.report_interval_s = report_interval_s
        self._last_report = 0.0
        self._candidates: dict[str, Manifest] = {}   # per desired topic: verified manifests only
        self._handled: "collections.OrderedDict[str, None]" = collections.OrderedDict()  # signed digests
        self.limiter = RejectionLimiter()
        self._manifest: Optional[Manifest] = None
        self._staging: Optional[Staging] = None
        self._subscribed: set[int] = set()
        self.corrupt_chunks = 0
        self.chunks_received = 0

    # ------------------------------------------------------------ topics
    def desired_topics(self) -> list[str]:
        return [self.device.desired, self.fleet.desired_all()] + [self.fleet.desired_group(g) for g in self.groups]

    def on_connect(self) -> None:
        """(Re)subscribe: the broker re-sends retained manifests and the chunks of the window."""
        for t in self.desired_topics():
            self.transport.subscribe(t, 1)
        if self._manifest is not None:
            for i in sorted(self._subscribed):
                self.transport.subscribe(self.fleet.chunk(self._manifest.sha256, i), 1)
            self._fill_window()

    @property
    def transferring(self) -> Optional[Manifest]:
        return self._manifest

    # ------------------------------------------------------------ manifests
    def handle_desired(self, topic: str, payload: bytes) -> None:
        if not payload:  # retained manifest cleared by the host
            self._candidates.pop(topic, None)
            return
        parsed: Optional[Manifest] = None
        try:
            m = parsed = Manifest.from_json(payload)
            m.verify(self.trusted)
            checked_digest(m.sha256)
        except (MessageError, SignatureError, FleetError) as exc:
            # Unverified: remembered nowhere but in the limiter, answered at a bounded rate,
            # under the id of exactly what was refused (never that of a signed manifest).
            if self.limiter.allow(payload):
                what = "malformed manifest" if isinstance(exc, MessageError) else "refused manifest"
                self._reject(_sha_hint(payload), f"{what} on {topic}: {exc}",
                             manifest=parsed.push_id if parsed is not None else "")
            return
        if self._candidates.get(topic) == m:
            return  # the same signed manifest again (a retained copy after reconnecting)
        self._candidates[topic] = m
        self._consider()

    def _was_handled(self, digest: str) -> bool:
        """True if this signed manifest was dealt with before; marks it handled otherwise."""
        if digest in self._handled:
            return True
        self._handled[digest] = None
        while len(self._handled) > SEEN_DIGESTS:
            self._handled.popitem(last=False)
        return False

    def _consider(self) -> None:
        if not self._candidates:
            return
        m = max(self._candidates.values(), key=lambda c: c.issued_at)
        digest = signed_digest(m)
        st = self.store.state()
        if self._manifest is not None and self._manifest.sha256 == m.sha256:
            return  # already on it
        if st.active is not None and st.active.sha256 == m.sha256:
            if not self._was_handled(digest):
                self.report(Progress(self.device.device_id, m.sha256, ACTIVE, m.n_chunks, m.n_chunks,
                                     version=m.version, time=time.time(), manifest=m.push_id))
            return
        if self._was_handled(digest):
            return
        if m.sha256 in st.rejected:
            self._reject(m.sha256, "this model failed on this device before; push a new version", m)
            return
        if m.sha256 in st.deferred and m.issued_at <= st.issued_at:
            self._reject(m.sha256, "rolled back on this device (by command, or after the agent stopped "
                                   "uncleanly with it); push it again to retry", m)
            return
        if m.issued_at < st.issued_at:
            log.info("ignoring manifest %s issued before the installed one (replay or stale)", m.sha256[:12])
            return
        try:
            check_manifest(m, self.profile())
        except ModelRejected as exc:
            self._reject(m.sha256, str(exc), m)
            return
        self._start(m)

    # ------------------------------------------------------------ transfer
    def _start(self, m: Manifest) -> None:
        self._abandon()
        self.store.clear_staging(keep=m.sha256)
        self._manifest = m
        self._staging = self.store.staging(m)
        log.info("receiving model %s v%s (%d bytes, %d chunks, %d already on disk)", m.name, m.version, m.size,
                 m.n_chunks, len(self._staging.have))
        self._progress(RECEIVING)
        if self._staging.complete:
            self._finish()
        else:
            self._fill_window()

    def _abandon(self) -> None:
        if self._manifest is not None:
            for i in self._subscribed:
                self.transport.unsubscribe(self.fleet.chunk(self._manifest.sha256, i))
        self._manifest, self._staging, self._subscribed = None, None, set()

    def _fill_window(self) -> None:
        assert self._manifest is not None and self._staging is not None
        for i in self._staging.missing():
            if len(self._subscribed) >= self.window:
                break
            if i not in self._subscribed:
                self._subscribed.add(i)
                self.transport.subscribe(self.fleet.chunk(self._manifest.sha256, i), 1)

    def handle_chunk(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        m, staging = self._manifest, self._staging
        if m is None or staging is None or len(parts) != 6 or parts[3] != m.sha256 or not payload:
            return
        try:
            index = int(parts[5])
        except ValueError:
            return
        try:
            new = staging.put(index, payload)
        except ValueError as exc:
            self.corrupt_chunks += 1
            if self.limiter.allow(payload):  # a flood of bad chunks is answered at a bounded rate too
                log.warning("model %s: %s; waiting for it to be sent again", m.sha256[:12], exc)
                self._progress(RECEIVING, reason=str(exc))
            return
        if index in self._subscribed:
            self._subscribed.discard(index)
            self.transport.unsubscribe(topic)
        if not new:
            return
        self.chunks_received += 1
        if staging.complete:
            self._finish()
        else:
            self._fill_window()
            if time.monotonic() - self._last_report >= self.report_interval_s:
                self._progress(RECEIVING)  # acknowledgements are throttled: thousands of devices, one host

    def _finish(self) -> None:
        m, staging = self._manifest, self._staging
        assert m is not None and staging is not None
        self._progress(VERIFYING)
        try:
            data = staging.assemble()
            self._progress(SELF_TEST)
            note = self.activate(data, m)
        except (ModelRejected, FleetError) as exc:
            self._abandon()
            staging.discard()
            self.store.reject(m.sha256, m.issued_at)
            self._reject(m.sha256, str(exc), m)
            return
        except Exception as exc:  # any failure of a received model is a rejection, never a crash
            log.exception("activating model %s failed", m.sha256[:12])
            self._abandon()
            staging.discard()
            self.store.reject(m.sha256, m.issued_at)
            self._reject(m.sha256, f"activation failed: {exc}", m)
            return
        self._abandon()
        staging.discard()
        self.report(Progress(self.device.device_id, m.sha256, ACTIVE, m.n_chunks, m.n_chunks, reason=note,
                             version=m.version, time=time.time(), manifest=m.push_id))

    # ------------------------------------------------------------ reports
    def _progress(self, state: str, reason: str = "") -> None:
        m, staging = self._manifest, self._staging
        if m is None or staging is None:
            return
        self._last_report = time.monotonic()
        self.report(Progress(self.device.device_id, m.sha256, state, len(staging.have), m.n_chunks,
                             reason=reason, version=m.version, time=time.time(), manifest=m.push_id))

    def _reject(self, sha256: str, reason: str, m: Optional[Manifest] = None, manifest: str = "") -> None:
        """Report a refusal; `m`: the verified manifest refused, `manifest`: else the id of the
        unverified one ('' when it could not be parsed)."""
        log.warning("model %s rejected: %s", sha256[:12] or "?", reason)
        self.report(Progress(self.device.device_id, sha256, REJECTED, 0, m.n_chunks if m else 0, reason=reason,
                             version=m.version if m else "", time=time.time(),
                             manifest=m.push_id if m else manifest))


def _sha_hint(payload: bytes) -> str:
    """The sha256 a malformed manifest claims, if any (so the host can match the rejection)."""
    try:
        obj = json.loads(payload)
        sha = obj.get("sha256") if isinstance(obj, dict) else None
        return checked_digest(sha)
    except FleetError:
        return ""
    except (ValueError, UnicodeDecodeError, RecursionError):  # deeply nested JSON too
        return ""
