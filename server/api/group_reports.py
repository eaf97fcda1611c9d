"""Reports through Kith's API: a group's reports and what its moderators do with them, and
reporting remote content (``/api/kith/v1/reports``).

Each action is the same as its ``kith report`` command (``moderation.reports``). A reporter
is never named to another server: reports go out as a ``Flag`` from the instance actor.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.api.auth import Caller, api_endpoint, read_params, services_of
from server.api.groups import GROUP, PREFIX, READ, WRITE, Moderating, acting_user, moderation_endpoint, paged
from server.api.operation import Operation, answer, body_from, read_body, read_path, read_query
from server.api.requests import GroupPath, ReportActionPath, ReportRequest, ReportsQuery, ResolveRequest
from server.api.schemas import Report, ReportForwarded
from server.errors import NotFound, Unprocessable
from server.federation.actors import InvalidActor
from server.federation.client import FetchError
from server.federation.urls import UnsafeUrl
from server.moderation import reports

REPORT_WRITE = ("write", "write:reports")  # Mastodon's scope for filing a report
REPORT_STATES = {"assign": "assigned", "unassign": "open", "reject": "rejected", "reopen": "open"}


def report_of(row: reports.Report) -> Report:
    """A report as the API answers it."""
    return Report.model_validate(reports.report_json(row))


@moderation_endpoint(*READ)
async def group_reports(request: Request, mod: Moderating) -> Response:
    """``GET .../reports[?state=open|assigned|resolved|rejected]``: reports about the group's content."""
    page = read_query(request, ReportsQuery)
    async with mod.services.db.read() as conn:
        rows = await reports.list_reports(
            conn, user_name=mod.user, state=page.state, group_name=mod.group.name, limit=page.limit, max_id=page.max_id
        )
    return paged(request, [report_of(r) for r in rows], rows[-1].id if rows else None, page, state=page.state or "")


async def _group_report(mod: Moderating, report_id: int) -> Any:
    """The report with this id about this group, else 404 (another group's report is not found here)."""
    async with mod.services.db.read() as conn:
        row = await reports.get_report(conn, report_id)
    if row.group_id != mod.group.id:
        raise NotFound("no such report")
    return row


@moderation_endpoint(*WRITE)
async def report_action(request: Request, mod: Moderating) -> Response:
    """``POST .../reports/{id}/{action}``: assign (to yourself), unassign, resolve ``{action, reason}``,
    reject, reopen or forward (to the reported server, without the reporter)."""
    path = read_path(request, ReportActionPath)
    params = await read_params(request)  # a malformed body is refused (400) whatever the action
    row = await _group_report(mod, path.id)
    if path.action == "resolve":
        body = body_from(params, ResolveRequest)
        row = await reports.resolve(mod.services, row.id, mod.user, action=body.action, reason=body.reason)
        return answer(report_of(row))
    if path.action == "forward":
        inboxes = await reports.forward(mod.services, row.id, mod.user)
        async with mod.services.db.read() as conn:
            row = await reports.get_report(conn, row.id)
        return answer(ReportForwarded(**reports.report_json(row), forwarded_to=inboxes))
    row = await reports.set_state(mod.services, row.id, mod.user, REPORT_STATES[path.action])
    return answer(report_of(row))


@api_endpoint(*REPORT_WRITE)
async def create_report(request: Request, caller: Caller) -> Response:
    """``POST /api/kith/v1/reports`` ``{uris, comment}``: report remote posts (or an account) to their
    server, as a ``Flag`` from the instance actor. Admins, or moderators of the posts' groups."""
    user = acting_user(caller)
    body = await read_body(request, ReportRequest)
    try:
        row = await reports.report_remote(services_of(request), user, list(dict.fromkeys(body.uris)), body.comment)
    except (FetchError, InvalidActor, UnsafeUrl) as exc:
        # The reported account's server decides whether it answers; that is no fault of ours.
        raise Unprocessable(f"the reported account could not be fetched: {exc}") from None
    return answer(report_of(row))


operations = [
    Operation(
        "GET",
        GROUP + "/reports",
        group_reports,
        "Reports about the group's content",
        response=list[Report],
        answers="reports, newest first",
        params=GroupPath,
        query=ReportsQuery,
    ),
    Operation(
        "POST",
        GROUP + "/reports/{id}/{action}",
        report_action,
        "Assign to yourself, unassign, resolve, reject, reopen or forward a report",
        response=ReportForwarded | Report,
        answers="the report afterwards (with `forwarded_to` after forward)",
        params=ReportActionPath,
        body=ResolveRequest,
        description="Only resolve reads the body: `action` remove takes the reported posts down, ban bans the "
        "reported account. Forward sends the report on as a Flag from the instance actor, never naming the "
        "reporter; 400 when there is nowhere to send it.",
    ),
    Operation(
        "POST",
        PREFIX + "/reports",
        create_report,
        "Report remote posts (or an account) to their server",
        response=Report,
        answers="the report, as sent",
        body=ReportRequest,
        description="Sent as a Flag from the instance actor: the reporter is never named. Admins may report "
        "anything; a group's moderators the posts in their groups (otherwise 403).",
    ),
]
