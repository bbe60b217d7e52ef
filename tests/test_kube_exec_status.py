"""How Kube.exec reads the Status a kubelet writes on an exec's error channel (the exec itself,
against a real API server and kwok, is in test_kube_exec.py): the forms k8s.io/cri-streaming's
ServeExec writes, and kwok v0.8's wrapped exit."""

from __future__ import annotations

import json

import pytest

from failover_drill.platforms.kube.client import exec_exit_code


def test_success_and_a_non_zero_exit_code() -> None:
    assert exec_exit_code('{"metadata":{},"status":"Success"}') == 0
    non_zero = {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},  # a StatusCause's type is "reason"
    }
    assert exec_exit_code(json.dumps(non_zero)) == 3


def test_kwoks_wrapped_exit_is_read_from_its_message() -> None:
    # as the API server relays it from kwok's node
    msg = (
        "error while streaming remote command: error executing remote command: Internal error occurred: "
        "error executing command in container: cmd wait: sh -c echo x\nexit 4: exit status 4"
    )
    status = {"status": "Failure", "message": f"Internal error occurred: {msg}", "reason": "InternalError", "code": 500}
    assert exec_exit_code(json.dumps(status)) == 4


@pytest.mark.parametrize(
    ("status", "why"),
    [
        ("", "without the command's exit status"),
        ("not json", "not JSON"),
        ("[1]", "not a Status"),
        (
            json.dumps(
                {
                    "status": "Failure",
                    "reason": "InternalError",
                    "message": 'error executing command in container: cmd start: exec: "nope": not found',
                }
            ),
            "not found",
        ),
        (
            json.dumps({"status": "Failure", "message": "error executing command in container: signal: killed"}),
            "killed",
        ),
    ],
)
def test_a_command_that_did_not_run_to_an_exit_says_why(status: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        exec_exit_code(status)
