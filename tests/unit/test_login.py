"""A host reached as a user other than root: the login is judged before any command that needs
root, and a login that cannot change the host is one preflight line, not a permission error
half-way through a stage; root-only files are still written root-only over sudo."""

from __future__ import annotations

from pyinfra.api import FileUploadCommand, StringCommand
from pyinfra.context import ctx_host

from operations import secrets
from operations.facts.host import Login
from operations.readiness import login_failure
from tests.conftest import FakeHost

OPS = {"user": "ops", "uid": 1000, "sudo": "ok", "said": ""}


def test_the_login_fact_reads_what_sudo_said():
    assert Login().process(["ops", "1000", "ok"]) == OPS
    assert Login().process(["root", "0", "missing"])["uid"] == 0
    asked = Login().process(["ops", "1000", "refused", "sudo: a password is required"])
    assert asked["sudo"] == "password"
    rust = Login().process(["ops", "1000", "refused",
                            "sudo-rs: interactive authentication is required"])
    assert rust["sudo"] == "password"
    denied = Login().process(["ops", "1000", "refused",
                              "Sorry, user ops may not run sudo on lab-3."])
    assert denied == {**OPS, "sudo": "denied",
                      "said": "Sorry, user ops may not run sudo on lab-3."}
    assert Login().process([]) == Login.default()


def test_root_and_a_user_with_passwordless_sudo_may_change_the_host():
    assert login_failure({**OPS, "user": "root", "uid": 0}, sudo=False, sudo_password=False) \
        is None
    assert login_failure(OPS, sudo=True, sudo_password=False) is None


def test_a_user_without_sudo_turned_on_is_told_to_turn_it_on():
    line = login_failure(OPS, sudo=False, sudo_password=False).line("lab-3")
    assert line.startswith("lab-3: preflight login failed: found login ops (uid 1000), not "
                           "root, and sudo is off; needed root, or a user with sudo")
    assert "run with --sudo, or set _sudo=True" in line


def test_a_user_sudo_refuses_is_named_with_sudos_words_and_the_sudoers_line_it_needs():
    said = "Sorry, user ops may not run sudo on lab-3."
    line = login_failure({**OPS, "sudo": "denied", "said": said}, sudo=True,
                         sudo_password=False).line("lab-3")
    assert f"found login ops (uid 1000) may not use sudo ({said})" in line
    assert "'ops ALL=(ALL) NOPASSWD: ALL' in /etc/sudoers.d/ops" in line


def test_sudo_asking_for_a_password_needs_one_given_or_nopasswd():
    asks = {**OPS, "sudo": "password"}
    line = login_failure(asks, sudo=True, sudo_password=False).line("lab-2")
    assert "sudo asks for a password and none was given (ops may need its password for " \
        "sudo, or may not use sudo at all)" in line
    assert "set _sudo_password for this host" in line
    assert login_failure(asks, sudo=True, sudo_password=True) is None
    missing = login_failure({**OPS, "sudo": "missing"}, sudo=True, sudo_password=False)
    assert "sudo is not installed" in missing.found


def private_commands(sudo: bool) -> list:
    fake = FakeHost("lab-1", {"Sha256File": None})
    fake.current_op_global_arguments = {"_sudo": sudo}
    with ctx_host.use(fake):
        commands = list(secrets.put_private("/etc/sglang/sglang.env", "HF_TOKEN=hf_secret\n"))
    # First the root-only directory it lives in, then the file's own commands.
    assert [str(c) for c in commands[:2]] == ["mkdir -p /etc/sglang", "chmod 700 /etc/sglang"]
    return commands[2:]


def test_over_sudo_a_secret_is_staged_in_a_file_only_the_login_can_read():
    staged, upload, install = private_commands(sudo=True)
    assert isinstance(staged, StringCommand) and staged.connector_arguments == {"_sudo": False}
    path = upload.remote_temp_filename
    assert path.startswith("/tmp/pyinfra-")
    assert str(staged) == f"(umask 077 && rm -f {path} && : > {path})"
    assert isinstance(upload, FileUploadCommand) and upload.dest == "/etc/sglang/sglang.env.upload"
    assert "chmod 600" in str(install) and "chown root:root" in str(install)
    assert not any("hf_secret" in str(command) for command in (staged, upload, install))


def test_as_root_a_secret_is_uploaded_straight_into_its_root_only_directory():
    upload, _ = private_commands(sudo=False)
    assert upload.remote_temp_filename is None
    assert upload.dest == "/etc/sglang/sglang.env.upload"


def test_an_unreadable_login_or_root_sudo_without_sudo_is_named_not_let_through():
    unreadable = login_failure(Login.default(), sudo=True, sudo_password=False)
    assert unreadable.check == "login" and "no answer to `id`" in unreadable.found
    root = {**OPS, "user": "root", "uid": 0}
    assert login_failure({**root, "sudo": "missing"}, sudo=False, sudo_password=False) is None
    assert "sudo is not installed" in login_failure({**root, "sudo": "missing"}, sudo=True,
                                                    sudo_password=False).found
