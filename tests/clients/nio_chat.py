"""Two matrix-nio clients chat through a Conclave server, in the clear and end-to-end encrypted.

Usage: nio_chat.py BASE_URL ALICE_ID BOB_ID PASSWORD STORE_DIR [BOB_BASE_URL]
With BOB_BASE_URL, Bob is on another server (federation): his keys, the room keys sent to
his device and the encrypted messages all cross between the two servers.
Alice creates a plain room and an encrypted room, inviting Bob; Bob joins both with nio's
join() (which sends no request body); each sends a message in each room and reads the other's,
the encrypted ones decrypted by nio (vodozemac, `matrix-nio[e2e]`). Then Bob logs in on a
new device, and Alice's next encrypted message must be decrypted there: the new device
reached Alice's client and it shared the room key with it.
Prints one JSON line with what each saw; exits non-zero on any failure.
"""

import asyncio
import json
import os
import sys
import time

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    LoginResponse,
    MegolmEvent,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

DEADLINE_SECS = 60


class Failure(Exception):
    pass


def expect(response, kind, what):
    if not isinstance(response, kind):
        raise Failure(f"{what} failed: {response}")
    return response


async def new_client(base_url, user_id, password, store_dir, name):
    path = os.path.join(store_dir, name)
    os.makedirs(path, exist_ok=True)
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    client = AsyncClient(base_url, user_id, store_path=path, config=config)
    expect(await client.login(password, device_name=f"nio {name}"), LoginResponse, f"{name} login")
    if client.should_upload_keys:
        await client.keys_upload()
    return client


async def sync_once(client, seen):
    """One sync plus the key housekeeping nio's sync_forever would do; records messages."""
    response = expect(await client.sync(timeout=500), SyncResponse, f"{client.user_id} sync")
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())
    for room_id, room in response.rooms.join.items():
        for event in room.timeline.events:
            if isinstance(event, RoomMessageText):
                seen.append({"room": room_id, "sender": event.sender, "body": event.body})
            elif isinstance(event, MegolmEvent):
                seen.append({"room": room_id, "sender": event.sender, "undecrypted": True})
    return response


async def until(what, check, *clients_and_logs):
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > DEADLINE_SECS:
            raise Failure(f"timed out waiting for {what}")
        for client, seen in clients_and_logs:
            await sync_once(client, seen)


def has(seen, room, sender, body):
    return any(
        m.get("room") == room and m.get("sender") == sender and m.get("body") == body for m in seen
    )


async def main(base_url, alice_id, bob_id, password, store_dir, bob_base_url=None):
    alice = await new_client(base_url, alice_id, password, store_dir, "alice")
    bob = await new_client(bob_base_url or base_url, bob_id, password, store_dir, "bob")
    alice_seen, bob_seen, bob2_seen = [], [], []
    try:
        await sync_once(alice, alice_seen)
        await sync_once(bob, bob_seen)

        plain = expect(
            await alice.room_create(name="nio plain", invite=[bob_id]),
            RoomCreateResponse,
            "create the plain room",
        ).room_id
        secret = expect(
            await alice.room_create(
                name="nio secret",
                invite=[bob_id],
                initial_state=[
                    {
                        "type": "m.room.encryption",
                        "state_key": "",
                        "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                    }
                ],
            ),
            RoomCreateResponse,
            "create the encrypted room",
        ).room_id

        await until("Bob's invites", lambda: {plain, secret} <= set(bob.invited_rooms), (bob, bob_seen))
        joined = []
        for room_id in (plain, secret):
            # nio's join() posts to /join/{room} without a body.
            response = expect(await bob.join(room_id), JoinResponse, f"Bob joining {room_id}")
            joined.append(response.room_id)

        def bob_joined_for_alice():
            return all(
                bob_id in alice.rooms[r].users for r in (plain, secret) if r in alice.rooms
            ) and {plain, secret} <= set(alice.rooms)

        await until("Bob's joins, seen by Alice", bob_joined_for_alice, (alice, alice_seen))
        await until("Alice sees the encrypted room", lambda: alice.rooms[secret].encrypted, (alice, alice_seen))

        for room_id, body in ((plain, "hello from alice"), (secret, "secret from alice")):
            expect(
                await alice.room_send(
                    room_id,
                    "m.room.message",
                    {"msgtype": "m.text", "body": body},
                    ignore_unverified_devices=True,
                ),
                RoomSendResponse,
                f"Alice sending to {room_id}",
            )
        await until(
            "Alice's messages at Bob",
            lambda: has(bob_seen, plain, alice_id, "hello from alice")
            and has(bob_seen, secret, alice_id, "secret from alice"),
            (bob, bob_seen),
        )

        for room_id, body in ((plain, "hello from bob"), (secret, "secret from bob")):
            expect(
                await bob.room_send(
                    room_id,
                    "m.room.message",
                    {"msgtype": "m.text", "body": body},
                    ignore_unverified_devices=True,
                ),
                RoomSendResponse,
                f"Bob sending to {room_id}",
            )
        await until(
            "Bob's messages at Alice",
            lambda: has(alice_seen, plain, bob_id, "hello from bob")
            and has(alice_seen, secret, bob_id, "secret from bob"),
            (alice, alice_seen),
        )

        # Bob logs in on a new device: Alice's client hears of it (device_lists.changed, then
        # a key query across the servers) and her next encrypted message reaches it too.
        bob2 = await new_client(bob_base_url or base_url, bob_id, password, store_dir, "bob2")
        try:
            await sync_once(bob2, bob2_seen)
            await until(
                "Bob's new device, known to Alice",
                lambda: bob2.device_id in alice.device_store[bob_id],
                (alice, alice_seen),
            )
            expect(
                await alice.room_send(
                    secret,
                    "m.room.message",
                    {"msgtype": "m.text", "body": "secret for the new device"},
                    ignore_unverified_devices=True,
                ),
                RoomSendResponse,
                "Alice sending after Bob's new device",
            )
            await until(
                "Alice's message decrypted by Bob's new device",
                lambda: has(bob2_seen, secret, alice_id, "secret for the new device"),
                (bob2, bob2_seen),
            )
        finally:
            await bob2.close()

        print(
            json.dumps(
                {
                    "new_device_saw": bob2_seen,
                    "plain": plain,
                    "secret": secret,
                    "joined": joined,
                    "secret_encrypted": alice.rooms[secret].encrypted,
                    "alice_saw": alice_seen,
                    "bob_saw": bob_seen,
                }
            )
        )
        return 0
    except Failure as failure:
        print(
            f"{failure}\nalice saw {alice_seen}\nbob saw {bob_seen}\nbob's new device saw {bob2_seen}",
            file=sys.stderr,
        )
        return 1
    finally:
        await alice.close()
        await bob.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:7])))
