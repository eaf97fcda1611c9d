"""The job kinds Kith runs in the background, wired to their queue tables."""

from __future__ import annotations

from datetime import timedelta

from server.federation import outbox_totals
from server.federation.delivery import Delivery
from server.federation.sender import DeliverySender
from server.groups import polls
from server.groups.fanout import Fanout, FanoutSender
from server.groups.routine import Routine
from server.groups.survey import SoftwareSurvey
from server.inbox.dispatch import batchable, dispatch
from server.inbox.store import InboxItem
from server.instance import beat
from server.local_actors import signing_key
from server.moderation.blocklist import imports
from server.moderation.digests import send_notices
from server.moderation.notices import NoticeSend
from server.queue import Outcome
from server.retention import Pruner
from server.services import Services
from server.tables import blocklist_imports, deliveries, fanouts, inbox_items, mod_notice_sends
from server.worker import JobKind, Worker


def build_worker(services: Services, *, delivery_concurrency: int = 100) -> Worker:
    """A worker for inbox processing, deliveries, group fan-outs, moderation notices, imports and schedules."""

    async def process(item: InboxItem) -> Outcome:
        await dispatch(services, item)
        return Outcome.done()

    async def refresh_policy() -> None:
        # A block written a moment ago by another process must hold for every row claimed after it.
        await services.blocklist.refresh_if_changed()

    async def signing_key_of(actor_id: int) -> tuple[str, str]:
        async with services.db.read() as conn:
            key = await signing_key(conn, actor_id)
        return services.links.key_id(key.kind, key.name), key.private_key_pem

    sender = DeliverySender(services.db, services.fetcher, is_blocked=services.is_blocked, signing_key=signing_key_of)
    fanout_lease = timedelta(minutes=5)
    fanout = FanoutSender(
        services.db, sender, is_blocked=services.is_blocked, lease=fanout_lease, in_flight=delivery_concurrency
    )
    worker = Worker(
        services.db,
        [
            JobKind(
                "inbox",
                inbox_items,
                InboxItem,
                process,
                batch=100,
                concurrency=20,
                max_attempts=8,
                key=lambda item: item.actor_uri,
                before_batch=refresh_policy,
                # Creates run ten to a transaction (one commit for ten), ten transactions side
                # by side so that their round trips overlap (python -m bench.processing).
                batchable=batchable,
                together=10,
            ),
            # Moderation notices: one direct message per moderator per group per minute, with all
            # that waits for them; a moderator's rows run one after another (one lane). Before the
            # deliveries, so one pass of the worker tells a moderator and delivers the message.
            JobKind(
                "mod_notice",
                mod_notice_sends,
                NoticeSend,
                lambda send: send_notices(services, send),
                batch=100,
                key=lambda send: f"{send.group_id} {send.recipient}",
                before_batch=refresh_policy,
            ),
            # Four loops of 50: a loop waits for its whole batch, and a server that answers
            # nothing holds its request for up to the client's deadline (30 s), so one such
            # server in a batch holds up a quarter of the sending, not all of it.
            JobKind(
                "delivery",
                deliveries,
                Delivery,
                sender,
                batch=50,
                loops=4,
                concurrency=delivery_concurrency,
                where=sender.circuit_closed,
                before_batch=refresh_policy,
            ),
            # One per loop, four loops: each sends to many servers at once (``in_flight`` shared by all).
            # A remote's failure never fails a fan-out (it becomes a delivery row), so a fan-out
            # that keeps failing is our fault (the database, a bug): give up after ~8 hours.
            JobKind(
                "fanout",
                fanouts,
                Fanout,
                fanout,
                batch=1,
                loops=4,
                lease=fanout_lease,
                max_attempts=10,
                before_batch=refresh_policy,
            ),
            # An admin's blocklist import: one line per transaction, resumable, so a crash costs nothing.
            JobKind(
                "blocklist_import",
                blocklist_imports,
                imports.BlocklistImport,
                lambda item: imports.run(services.db, item),
                batch=1,
                lease=imports.LEASE,
                max_attempts=5,
            ),
        ],
        heartbeat=beat,  # `kith check` reads it to tell that a worker runs
    )
    worker.periodic.append(Pruner(services.db, services.settings.retention).run_forever)
    # Recurring threads: each due occurrence posted once, by whichever worker claims it.
    worker.periodic.append(Routine(services).run_forever)
    # Which software each member server runs, so fan-outs send it only the form it displays.
    worker.periodic.append(SoftwareSurvey(services.db, services.fetcher, is_blocked=services.is_blocked).run_forever)
    # Each outbox's total kept, so that its totalItems is not a count of every row.
    worker.periodic.append(outbox_totals.OutboxTotals(services.db).run_forever)
    # The group's polls: Update(Question) with new counts at most once a minute, and at their end.
    worker.periodic.append(lambda stop: polls.sweep_forever(services, stop))
    # Work queued here wakes this worker's loops and rings the others; their rings wake these loops.
    worker.wake.bell = services.doorbell
    worker.periodic.append(lambda stop: services.doorbell.listen(worker.wake.hear, stop))
    services.wake = worker.wake
    fanout.wake = lambda: worker.wake.set("fanout")
    return worker
