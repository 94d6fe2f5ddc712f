"""Restart a systemd unit after a change, decided by the operations it depends on: when they
changed something (in a preview, when they would), and only then, so a preview lists exactly the
restarts a run makes.

Example::

    unit = files.template(src="files/x.service.j2", dest="/etc/systemd/system/x.service")
    restarts.after(name="x.service restarted after a change", service="x.service",
                   changes=[unit], daemon_reload=True)
"""

from __future__ import annotations

import shlex

from pyinfra.api import StringCommand, operation
from pyinfra.api.operation import OperationMeta


@operation(is_idempotent=True)
def after(service: str, changes: list[OperationMeta], daemon_reload: bool = False,
          reload: bool = False):
    """Restart ``service`` if any of ``changes`` changed.

    + service: the systemd unit
    + changes: the operations whose change needs the restart
    + daemon_reload: reload systemd's units first (a unit file changed)
    + reload: reload it instead where it runs (a server whose transfers must go on)
    """
    if not any(change.changed for change in changes):
        return
    if daemon_reload:
        yield StringCommand("systemctl daemon-reload")
    how = "reload-or-restart" if reload else "restart"
    yield StringCommand(f"systemctl {how} {shlex.quote(service)}")
