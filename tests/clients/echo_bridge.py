"""A small echo bridge on mautrix-python's application service framework (PyPI `mautrix`).

It joins rooms its bot is invited to and reports the typing, read receipts and to-device
messages it is sent (MSC2409); for every message of a person there, it registers a
puppet `@echo_<localpart>` (m.login.application_service), invites it, and has it answer
"echo: <body>" as that puppet (the framework masquerades with `user_id`). It also answers
the third-party lookups of its protocol `echo`, pings the homeserver on start, and prints one
JSON line per thing it did, so the test can follow it.

Usage: echo_bridge.py '<json config>'  (homeserver, domain, as_token, hs_token, id, port)
"""

import asyncio
import json
import sys

from aiohttp import web
from mautrix.appservice import AppService
from mautrix.errors import MForbidden
from mautrix.types import EventType, Membership, TextMessageEventContent, MessageType


def say(**fields):
    print(json.dumps(fields), flush=True)


async def main():
    cfg = json.loads(sys.argv[1])
    domain = cfg["domain"]
    bot = f"@echo_bot:{domain}"

    async def query_user(user_id):
        # The homeserver asks before an invite or profile lookup: create the puppet then.
        if user_id.startswith("@echo_"):
            await appservice.intent.user(user_id).ensure_registered()
            say(event="query_user", user_id=user_id)
            # mautrix answers 404 for an empty (falsy) result.
            return {"user_id": user_id}
        return None

    async def query_alias(alias):
        # An unknown #echo_… alias: the bridge creates its room on demand.
        localpart = alias[1:].split(":")[0]
        if not localpart.startswith("echo_"):
            return None
        room_id = await appservice.intent.create_room(
            alias_localpart=localpart, name=f"Bridged {localpart}"
        )
        say(event="query_alias", alias=alias, room_id=room_id)
        return {"room_id": room_id}

    appservice = AppService(
        server=cfg["homeserver"],
        domain=domain,
        as_token=cfg["as_token"],
        hs_token=cfg["hs_token"],
        bot_localpart="echo_bot",
        id=cfg["id"],
        query_user=query_user,
        query_alias=query_alias,
        ephemeral_events=True,
        # To-device messages for its users' devices (what bridged encryption needs).
        encryption_events=True,
    )

    async def to_device(event):
        say(
            event="to_device",
            sender=event.sender,
            type=str(event.type),
            to_user_id=event.to_user_id,
            to_device_id=event.to_device_id,
        )

    appservice.to_device_handler = to_device

    async def protocol(_request):
        return web.json_response(
            {
                "user_fields": ["name"],
                "location_fields": ["channel"],
                "icon": "mxc://example.org/echo",
                "field_types": {
                    "name": {"regexp": ".*", "placeholder": "alice"},
                    "channel": {"regexp": ".*", "placeholder": "general"},
                },
                "instances": [
                    {"desc": "Echo", "network_id": "echo-net", "fields": {}}
                ],
            }
        )

    async def thirdparty_user(request):
        name = request.query.get("name", "")
        return web.json_response(
            [{"userid": f"@echo_{name}:{domain}", "protocol": "echo", "fields": {"name": name}}]
        )

    appservice.app.router.add_get("/_matrix/app/v1/thirdparty/protocol/echo", protocol)
    appservice.app.router.add_get("/_matrix/app/v1/thirdparty/user/echo", thirdparty_user)

    @appservice.matrix_event_handler
    async def handle(event):
        if event.type == EventType.RECEIPT:
            # {event ID: {receipt type: [user IDs]}}
            content = {
                str(event_id): {
                    getattr(kind, "value", str(kind)): [str(user) for user in users]
                    for kind, users in kinds.items()
                }
                for event_id, kinds in event.content.items()
            }
            say(event="receipt", room_id=event.room_id, content=content)
            return
        if event.type == EventType.TYPING:
            say(event="typing", room_id=event.room_id, user_ids=event.content.user_ids)
            return
        if event.type == EventType.ROOM_MEMBER:
            if event.state_key == bot and event.content.membership == Membership.INVITE:
                await appservice.intent.join_room(event.room_id)
                say(event="joined", room_id=event.room_id)
            return
        if event.type != EventType.ROOM_MESSAGE or event.sender.startswith("@echo_"):
            return
        body = event.content.body
        localpart = event.sender[1:].split(":")[0]
        puppet = appservice.intent.user(f"@echo_{localpart}:{domain}")
        await puppet.ensure_registered()
        try:
            await appservice.intent.invite_user(event.room_id, puppet.mxid)
        except MForbidden:
            pass  # joined already (the state file of an earlier run may not know it)
        await puppet.join_room(event.room_id)
        answer = await puppet.send_message(
            event.room_id, TextMessageEventContent(msgtype=MessageType.TEXT, body=f"echo: {body}")
        )
        say(event="echoed", puppet=puppet.mxid, event_id=answer, of=event.event_id)

    await appservice.start(host="127.0.0.1", port=cfg["port"])
    ping_ms = await appservice.ping_self(txn_id="startup-ping")
    say(event="ready", ping_ms=ping_ms)
    # Runs until the test ends it.
    await asyncio.Event().wait()


asyncio.run(main())
