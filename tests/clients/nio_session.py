"""Drives a Conclave server with matrix-nio, a real third-party Matrix client.

Usage: nio_session.py BASE_URL USER_ID PASSWORD
Logs in, checks whoami, sets and reads back a display name, lists devices and logs out.
Prints one JSON line with what it saw; exits non-zero on any failure.
"""

import asyncio
import json
import sys

from nio import (
    AsyncClient,
    DevicesResponse,
    LoginResponse,
    LogoutResponse,
    ProfileGetDisplayNameResponse,
    ProfileSetDisplayNameResponse,
)


async def main(base_url: str, user_id: str, password: str) -> int:
    client = AsyncClient(base_url, user_id)
    try:
        login = await client.login(password, device_name="matrix-nio test")
        if not isinstance(login, LoginResponse):
            print(f"login failed: {login}", file=sys.stderr)
            return 1

        whoami = await client.whoami()
        if getattr(whoami, "user_id", None) != user_id:
            print(f"whoami failed: {whoami}", file=sys.stderr)
            return 1

        set_name = await client.set_displayname("Nio Tester")
        if not isinstance(set_name, ProfileSetDisplayNameResponse):
            print(f"set_displayname failed: {set_name}", file=sys.stderr)
            return 1
        get_name = await client.get_displayname()
        if not isinstance(get_name, ProfileGetDisplayNameResponse):
            print(f"get_displayname failed: {get_name}", file=sys.stderr)
            return 1

        devices = await client.devices()
        if not isinstance(devices, DevicesResponse):
            print(f"devices failed: {devices}", file=sys.stderr)
            return 1
        device_names = {d.id: d.display_name for d in devices.devices}

        logout = await client.logout()
        if not isinstance(logout, LogoutResponse):
            print(f"logout failed: {logout}", file=sys.stderr)
            return 1

        print(
            json.dumps(
                {
                    "user_id": login.user_id,
                    "device_id": login.device_id,
                    "whoami": whoami.user_id,
                    "displayname": get_name.displayname,
                    "devices": device_names,
                }
            )
        )
        return 0
    finally:
        await client.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3])))
