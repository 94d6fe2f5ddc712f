"""System accounts for the fleet's services.

Example::

    users.system_user(name="System user sglang", user="sglang", home="/opt/sglang")
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import StringCommand, operation

from operations.facts.host import UserExists


@operation(is_idempotent=True)
def system_user(user: str, home: str):
    """A system account without a shell or home directory of its own, for a service.

    + user: the account's name
    + home: its home directory (not created)
    """
    if host.get_fact(UserExists, user=user):
        return
    yield StringCommand(shlex.join(["useradd", "--system", "--user-group", "--no-create-home",
                                    "--home-dir", home, "--shell", "/usr/sbin/nologin", user]))
