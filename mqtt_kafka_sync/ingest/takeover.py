"""Adopting the MQTT session of a worker that died, so its share of the traffic is not stranded.

Mosquitto (like most brokers) keeps delivering a shared subscription's messages into the
persistent session of a member that crashed, and keeps its unacknowledged ones there too, until the
member comes back or the session expires, when they are gone. So every task announces itself on a
retained *membership* topic, with a will that marks it ``offline``. When a member is ``offline`` or
``stopped`` for longer than ``mqtt.takeover.delay.seconds``, the next online member in client-id
order connects with the dead member's client id, unsubscribes its shared filters (new messages then
go to live members only), produces what the session still held to Kafka and acknowledges it like
any message, then ends the session and clears the membership record.

If the dead member returns meanwhile, the broker hands its session back to it and the adopter lets
go: anything not yet acknowledged is delivered to the returning member. At least once, either way.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mqtt_kafka_sync.mqtt.packets import Publish

logger = logging.getLogger(__name__)

MEMBERSHIP_PREFIX = "mqtt-kafka-sync/members"
ONLINE, OFFLINE, STOPPED = "online", "offline", "stopped"


def membership_topic(group: str, client_id: str) -> str:
    return f"{MEMBERSHIP_PREFIX}/{group}/{client_id}"


def membership_filter(group: str) -> str:
    return f"{MEMBERSHIP_PREFIX}/{group}/+"


def membership_payload(state: str, filters: tuple[str, ...]) -> bytes:
    return json.dumps({"state": state, "filters": list(filters), "at": round(time.time(), 3)}).encode()


@dataclass
class Member:
    client_id: str
    state: str
    filters: tuple[str, ...]
    since: float


class Membership:
    """The members of one shared group as seen from one task, and who should adopt whom."""

    def __init__(self, group: str, self_id: str) -> None:
        self.group = group
        self.self_id = self_id
        self._prefix = f"{MEMBERSHIP_PREFIX}/{group}/"
        self._members: dict[str, Member] = {}
        self._lock = threading.Lock()

    def is_membership(self, topic: str) -> bool:
        return topic.startswith(self._prefix)

    def update(self, message: Publish, now: float) -> None:
        client_id = message.topic[len(self._prefix) :]
        with self._lock:
            if not message.payload:
                self._members.pop(client_id, None)
                return
            try:
                data = json.loads(message.payload)
                state, filters = str(data["state"]), tuple(str(f) for f in data.get("filters", ()))
            except (ValueError, KeyError, TypeError):
                logger.warning("ignoring malformed membership record for %s", client_id)
                return
            previous = self._members.get(client_id)
            since = previous.since if previous is not None and previous.state == state else now
            self._members[client_id] = Member(client_id, state, filters, since)

    def orphans_for_me(self, now: float, delay: float) -> list[Member]:
        """Members down for longer than ``delay`` whose adopter (next online member after them) is me."""
        with self._lock:
            online = sorted(m.client_id for m in self._members.values() if m.state == ONLINE)
            if self.self_id not in online:
                online = sorted([*online, self.self_id])
            result = []
            for member in self._members.values():
                if member.state == ONLINE or member.client_id == self.self_id or now - member.since < delay:
                    continue
                successor = next((c for c in online if c > member.client_id), online[0])
                if successor == self.self_id:
                    result.append(member)
            return result

    def forget(self, client_id: str) -> None:
        with self._lock:
            self._members.pop(client_id, None)


class Adoption(threading.Thread):
    """Drains one dead member's session through ``run_session``, in the background."""

    def __init__(
        self,
        member: Member,
        run_session: Callable[[Member], bool],
        on_finished: Callable[[Member, bool], None],
    ) -> None:
        super().__init__(name=f"adopt-{member.client_id}", daemon=True)
        self.member = member
        self._run_session = run_session
        self._on_finished = on_finished

    def run(self) -> None:
        ok = False
        try:
            ok = self._run_session(self.member)
        except Exception:
            logger.exception("adopting the session of %s failed; will try again", self.member.client_id)
        finally:
            self._on_finished(self.member, ok)
