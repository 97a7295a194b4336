"""A command whose SSH session dies says so, instead of "exited 255:" with nothing after it."""

from __future__ import annotations

import anyio
import pytest

from lxr.api.resources import SSHConfig
from lxr.schedulers.ssh import SSHTransport
from lxr.schedulers.transport import CommandResult, TransportError


def test_a_silent_failure_says_it_printed_nothing() -> None:
    res = CommandResult(("qsub", "-terse", "job.sh"), 1, "", "", 0.1)
    assert res.describe() == "`qsub -terse job.sh` exited 1: (no output)"


@pytest.mark.integration
def test_dropped_session_and_killed_command_over_ssh_are_named(
    dev_cluster: dict[str, str],
) -> None:
    transport = SSHTransport(
        SSHConfig(
            host=dev_cluster["LXR_DEV_SSH_HOST"],
            port=int(dev_cluster["LXR_DEV_SSH_PORT"]),
            user=dev_cluster["LXR_DEV_SSH_USER"],
            identity_file=dev_cluster["LXR_DEV_SSH_KEY"],
            known_hosts=dev_cluster["LXR_DEV_SSH_KNOWN_HOSTS"],
        )
    )

    async def main() -> None:
        try:
            # the session's sshd dies mid-command, as when the connection drops during a qsub
            with pytest.raises(TransportError, match="session closed before the command"):
                await transport.run(["sh", "-c", "kill -9 $PPID"])
            killed = await transport.run(["sh", "-c", "kill -9 $$"])
            assert "killed by signal KILL" in killed.describe(), killed
            # and the transport works again afterwards (a new connection)
            assert (await transport.run(["echo", "ok"])).stdout == "ok\n"
        finally:
            await transport.close()

    anyio.run(main)
