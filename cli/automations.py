"""The studio's automations: Prefect notifies when a studio run fails, crashes or goes late, and when a pool has no
worker left.

They are Prefect's own automations, on the studio's server, each sending through one notification block:
REELFLOW_NOTIFY_BLOCK (`slug/name` of any Prefect notification block: Slack, Microsoft Teams, email, ...), else
REELFLOW_NOTIFY_WEBHOOK (a URL: saved as Prefect's Custom Webhook block posting `{"text": ...}`, the URL kept in the
block's secrets), else the log-line block of reelflow.cli.notify (REELFLOW_HOME/notifications.log and the server's log).
`studio up` and `studio deploy` set them: an automation of the same name is updated in place (its id, and whether a
person disabled it, are kept), never deleted and made again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from reelflow.schemas.errors import ContractError

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.automations import AutomationCore

BLOCK_ENV = "REELFLOW_NOTIFY_BLOCK"
WEBHOOK_ENV = "REELFLOW_NOTIFY_WEBHOOK"
BLOCK_NAME = "reelflow-studio"  # the notification block `up` saves (log line or webhook)
LOG_FILE = "notifications.log"  # under REELFLOW_HOME
FAILED = "reelflow: a studio run failed or crashed"
LATE = "reelflow: a studio run is late"
NO_WORKER = "reelflow: a work pool has no worker"
REAPER = "reap-gpu"  # the deployment that terminates pods whose lease is over

# A flow run's state events carry its name and state; the run itself is read for its link in the UI.
RUN_SUBJECT = "reelflow: {{ event.resource.name }} is {{ event.resource['prefect.state-name'] }}"
RUN_BODY = (
    "Flow run {{ event.resource.name }} of {{ event.resource_in_role['deployment'].name }} on the "
    "{{ event.resource_in_role['work-pool'].name }} pool is {{ event.resource['prefect.state-name'] }} "
    "({{ event.occurred }}). {{ event.resource['prefect.state-message'] }} {{ flow_run|ui_url }}"
)
POOL_SUBJECT = "reelflow: the {{ event.resource.name }} pool has no worker"
POOL_BODY = (
    "Work pool {{ event.resource.name }} is not ready since {{ event.occurred }}: no worker has sent a heartbeat "
    "lately, so its flow runs wait (nightly runs go Late). Check its worker (systemctl status "
    "reelflow-worker@{{ event.resource.name }}, or reelflow studio status)."
)


def notification_block(client: SyncPrefectClient, home: Path) -> tuple[UUID, str]:
    """The block the automations send through, saved now where it is reelflow's; returns its id and `slug/name`."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.exceptions import ObjectNotFound

    from reelflow.cli.notify import LogLineNotification

    if reference := os.environ.get(BLOCK_ENV, "").strip():
        slug, _, name = reference.partition("/")
        if not (slug and name):
            raise ContractError(f"{BLOCK_ENV}: {reference!r} must be a block's slug/name, e.g. slack-webhook/studio")
        try:
            document = client.read_block_document_by_name(name, slug, include_secrets=False)
        except ObjectNotFound:
            raise ContractError(f"{BLOCK_ENV}: no block {reference!r} on the server (slug/name, e.g. "
                                "slack-webhook/studio: create it in the UI's Blocks page)") from None
        schema = document.block_schema
        if schema is None or "notify" not in schema.capabilities:
            raise ContractError(f"{BLOCK_ENV}: {reference!r} is not a notification block")
        return document.id, reference
    if url := os.environ.get(WEBHOOK_ENV, "").strip():
        if not url.startswith(("https://", "http://")):
            raise ContractError(f"{WEBHOOK_ENV}: must be an http(s) URL")
        webhook = CustomWebhookNotificationBlock(name="reelflow studio", url="{{url}}", secrets={"url": url},
                                                 json_data={"text": "{{subject}}\n{{body}}"})
        return webhook.save(BLOCK_NAME, overwrite=True), f"{webhook.get_block_type_slug()}/{BLOCK_NAME}"
    log_line = LogLineNotification(path=str(home / LOG_FILE))
    return log_line.save(BLOCK_NAME, overwrite=True), f"{log_line.get_block_type_slug()}/{BLOCK_NAME}"


def automations(block_id: UUID, pools: tuple[str, ...]) -> list[AutomationCore]:
    """What the studio is told about: its pools' runs failed, crashed or late, and a pool left without a worker."""
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    on_pools = {"prefect.resource.role": "work-pool", "prefect.resource.name": list(pools)}

    def run_event(name: str, description: str, events: set[str], related: Any) -> AutomationCore:
        trigger = EventTrigger(expect=events, match={"prefect.resource.id": "prefect.flow-run.*"},
                               match_related=related, posture=Posture.Reactive, threshold=1, within=0)
        action = SendNotification(block_document_id=block_id, subject=RUN_SUBJECT, body=RUN_BODY)
        return AutomationCore(name=name, description=description, trigger=trigger, actions=[action])

    pool_trigger = EventTrigger(expect={"prefect.work-pool.not-ready"},
                                match={"prefect.resource.id": "prefect.work-pool.*", "prefect.resource.name": list(pools)},
                                posture=Posture.Reactive, threshold=1, within=0)
    return [
        run_event(FAILED, "A flow run on a studio pool ended Failed or Crashed.",
                  {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}, on_pools),
        # Not reap-gpu's: due every few minutes, a gpu pool without a worker would make one late notice each time
        # (the pool's own notice says it once).
        run_event(LATE, "A flow run on a studio pool is Late: no worker started it on time.",
                  {"prefect.flow-run.Late"},
                  [on_pools, {"prefect.resource.role": "deployment", "prefect.resource.name": f"!{REAPER}"}]),
        AutomationCore(name=NO_WORKER, description="The foreman marked the pool not ready: no worker is online.",
                       trigger=pool_trigger,
                       actions=[SendNotification(block_document_id=block_id, subject=POOL_SUBJECT, body=POOL_BODY)]),
    ]


def ensure_automations(client: SyncPrefectClient, block_id: UUID, pools: tuple[str, ...]) -> list[dict[str, Any]]:
    """Create the studio's automations (about `pools`), or update those of the same names in place; returns each
    one's name, id and whether it is enabled."""
    made = []
    for automation in automations(block_id, pools):
        existing = client.read_automations_by_name(automation.name)
        if existing:
            current = existing[0]
            automation.enabled = current.enabled  # a person who turned one off in the UI keeps it off
            client.update_automation(current.id, automation)
            made.append({"name": automation.name, "id": str(current.id), "enabled": current.enabled})
        else:
            made.append({"name": automation.name, "id": str(client.create_automation(automation)), "enabled": True})
    return made
