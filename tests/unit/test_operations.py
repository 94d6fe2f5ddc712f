"""The commands each operation yields for given facts (pyinfra's own operation tests follow the
same idea: facts in, commands out)."""

from __future__ import annotations

import json

from pyinfra.context import ctx_host

from operations import venv, watch
from operations.facts.host import PortListener
from operations.server_files import other_manager_retired
from operations.settings import validate
from operations.stages import python_env, service
from tests.conftest import FIXTURES, FakeHost
from tests.unit.flag_table import CHART_MODEL_CONFIG, PINNED, options


def run_op(op, fake: FakeHost, **kwargs) -> list[str]:
    """Run an operation's generator against a fake host; return its commands as text (a
    command streamed as it runs, operations/watch.py: the command it runs)."""
    with ctx_host.use(fake):
        commands = []
        for command in op._inner(**kwargs):
            if getattr(command, "function", None) is watch._streamed:
                commands.append(command.args[0])
            else:
                commands.append(command.get_raw_value() if hasattr(command, "get_raw_value")
                                else repr(command))
        return commands


LAB = validate("lab-1", {"stack": "cu13-stable", "pip_index_url": "http://10.213.0.1:8090/simple"})
PINS = {"torch": "2.14.1", "sglang-kernel": "0.4.10", "flashinfer-python": "0.7.2",
        "sglang": "0.5.23"}


def test_stack_installs_into_a_new_venv_by_uv_then_records():
    fake = FakeHost("lab-1", {"FileContents": None,
                              "Distributions": {"error": "no python"}})
    commands = run_op(python_env.stack_installed, fake, settings=LAB)
    assert commands[0] == "python3 -m venv /opt/sglang/venv"
    # uv into the venv by pip, at its pin, from the stack's own index
    assert commands[1].startswith("/opt/sglang/venv/bin/python -m pip install")
    assert "--index-url http://10.213.0.1:8090/simple" in commands[1]
    assert commands[1].endswith(f" uv=={venv.UV_VERSION}")
    # uv, with its progress said while it runs (files/watch_run.py, against the stack's size)
    watched, uv = commands[2].split(" -- sh -c ", 1)
    assert watched.startswith("python3 -c ") and watched.endswith(
        "'stack cu13-stable installing' /opt/sglang/venv 11000000000 10")
    assert uv.startswith("'/opt/sglang/venv/bin/uv pip install --python "
                         "/opt/sglang/venv/bin/python --compile-bytecode --index-strategy "
                         "unsafe-best-match --index-url http://10.213.0.1:8090/simple")
    assert "torch==2.14.1" in commands[2] and "sglang==0.5.23" in commands[2]
    assert "stack.json" in commands[-2]
    assert commands[-1].endswith("> /opt/sglang/sglang-options.json.new && mv "
                                 "/opt/sglang/sglang-options.json.new "
                                 "/opt/sglang/sglang-options.json")


def test_installer_pip_installs_the_same_pins_by_pip_and_never_fetches_uv():
    settings = validate("lab-1", {"stack": "cu13-stable", "installer": "pip",
                                  "pip_index_url": "http://10.213.0.1:8090/simple"})
    fake = FakeHost("lab-1", {"FileContents": None, "Distributions": {"error": "no python"}})
    commands = run_op(python_env.stack_installed, fake, settings=settings)
    assert not any("uv" in command.split() or "uv==" in command for command in commands)
    pip = commands[1].split(" -- sh -c ", 1)[1]
    assert pip.startswith("'/opt/sglang/venv/bin/python -m pip install")
    assert "--trusted-host 10.213.0.1" in pip
    assert "torch==2.14.1" in pip and "sglang==0.5.23" in pip
    # the record is the installer's business no more than the checks are: the same
    assert venv.wanted_record(settings) == venv.wanted_record(LAB)


def test_uv_reads_the_hosts_proxy_and_ca_bundle_from_its_environment():
    settings = validate("lab-1", {"stack": "cu13-stable", "pip_proxy": "http://proxy:3128",
                                  "pip_cert": "/etc/lab-ca.pem"})
    [command] = venv.install_commands(settings, venv.wanted_record(settings))
    assert command.startswith("env HTTP_PROXY=http://proxy:3128 HTTPS_PROXY=http://proxy:3128 "
                              "SSL_CERT_FILE=/etc/lab-ca.pem /opt/sglang/venv/bin/uv pip install")
    # ... and the bootstrap's pip its options
    bootstrap = venv.installer_command(settings, venv.wanted_record(settings))
    assert "--proxy http://proxy:3128 --cert /etc/lab-ca.pem" in bootstrap


def test_stack_does_nothing_when_pins_and_record_match():
    record = json.dumps(venv.wanted_record(LAB)).splitlines()
    fake = FakeHost("lab-1", {"FileContents": record, "Distributions": {**PINS, "pip": "23.0"}})
    assert run_op(python_env.stack_installed, fake, settings=LAB) == []


def test_stack_reinstalls_when_kernel_build_differs():
    record = json.dumps(venv.wanted_record(LAB)).splitlines()
    fake = FakeHost("lab-1", {"FileContents": record,
                              "Distributions": {**PINS, "sglang-kernel": "0.4.10+torch2.13"}})
    commands = run_op(python_env.stack_installed, fake, settings=LAB)
    assert commands[0] == "/opt/sglang/venv/bin/python -m pip uninstall -y sglang-kernel"
    assert commands[1].endswith(f" uv=={venv.UV_VERSION}")  # a venv pip made: uv first
    assert "uv pip install" in commands[2] and "sglang-kernel==0.4.10" in commands[2]


def test_uv_at_its_pin_is_not_installed_again():
    record = json.dumps({**venv.wanted_record(LAB), "index_url": "https://old/simple"})
    fake = FakeHost("lab-1", {"FileContents": record.splitlines(),
                              "Distributions": {**PINS, "uv": venv.UV_VERSION}})
    commands = run_op(python_env.stack_installed, fake, settings=LAB)
    assert "uv pip install" in commands[0]
    assert not any(f"uv=={venv.UV_VERSION}" in command for command in commands)


def test_stack_reinstalls_when_the_index_changes():
    old = json.dumps({**venv.wanted_record(LAB), "index_url": "https://old/simple"})
    fake = FakeHost("lab-1", {"FileContents": old.splitlines(),
                              "Distributions": PINS})
    assert run_op(python_env.stack_installed, fake, settings=LAB)


def test_nightly_stack_installs_in_steps_with_nightly_torch_last_but_one():
    settings = validate("gpu-01", {"stack": "cu128-nightly"})
    commands = venv.install_commands(settings, venv.wanted_record(settings))
    assert [c.split()[-1] for c in commands] == ["sglang==0.5.2",
                                                 "torch==2.10.0.dev20250916+cu128",
                                                 "sgl-kernel==0.3.9.post2"]
    # pip's --pre as uv spells it; the nightly index and PyPI searched as pip searches them
    assert "--prerelease=allow" in commands[1] and "--no-deps" in commands[2]
    assert "--index-strategy unsafe-best-match" in commands[0]
    assert "--extra-index-url https://pypi.org/simple" in commands[0]
    settings = validate("gpu-01", {"stack": "cu128-nightly", "installer": "pip"})
    commands = venv.install_commands(settings, venv.wanted_record(settings))
    assert "--pre" in commands[1].split() and "--no-deps" in commands[2].split()


def _service_with_dry_parse(settings, dry_parse: dict) -> str:
    """service.configured on a host whose installed SGLang answers the dry-parse so."""
    facts = {"VenvExists": True, "NvidiaGpus": {"gpus": [object()]}, "Sha256File": None,
             "Pid1": "systemd"}
    answers = iter([{"version": PINNED, "options": sorted(options())}, dry_parse])

    def fact(cls, **kw):
        if cls.__name__ == "FileContents":  # only the model's config.json is on the host
            return [json.dumps(CHART_MODEL_CONFIG)] if kw["path"].endswith("/config.json") \
                else None
        return facts[cls.__name__] if cls.__name__ in facts else next(answers)

    fake = FakeHost("lab-1", facts)
    fake.get_fact = fact
    [command] = run_op(service.configured, fake, settings=settings)
    assert "sglang.service" not in command.split("refuses")[0]  # nothing written
    assert command.endswith("exit 1")
    return command


def test_service_refuses_an_argv_the_installed_sglang_rejects():
    rejection = ("usage: sglang.launch_server [-h]\nsglang.launch_server: error: ambiguous "
                 "option: --disable-flashinfer could match --disable-flashinfer-autotune, "
                 "--disable-flashinfer-cutlass-moe-fp4-allgather")
    command = _service_with_dry_parse(validate("lab-1", {"extra_flags": ["--disable-flashinfer"]}),
                                      {"error": rejection, "status": 2})
    assert "SGLang 0.5.23 refuses the server argv" in command
    assert "ambiguous option: --disable-flashinfer" in command


def test_service_refuses_what_sglangs_validation_refuses_after_parsing():
    """Real SGLang 0.5.16 on an H200 (tests/fixtures/sglang-real/README.md): argparse accepts
    --quantization gptq, ServerArgs.__post_init__ refuses it for an AWQ checkpoint."""
    said = json.loads((FIXTURES / "sglang-real" / "gptq-on-awq.dry-parse.json").read_text())
    command = _service_with_dry_parse(
        validate("lab-1", {"extra_flags": ["--quantization", "gptq"]}), said)
    assert ("ValueError: Quantization method specified in the model config (awq) does not "
            "match the quantization method specified in the `quantization` argument (gptq)."
            ) in command


def test_port_listener_fact_reads_proc_output():
    fact = PortListener()
    assert fact.process([]) is None
    assert fact.process(["812 python sglang.service", "listening"]) == [
        {"pid": 812, "comm": "python", "unit": "sglang.service"}]
    assert fact.process(["listening"]) == []


def test_facts_read_ahead_in_one_command_give_what_each_gives_alone(tmp_path):
    """The survey (a no-op deploy's one round trip per host), run here by a real shell: each
    fact's value is what its own command gives, a file without a final newline included, and
    the system python3's snippets, run in one interpreter, as each run alone (output, exit
    status, an exit with a message); a fact whose command fails or is missing has no value
    (the operation reads it itself)."""
    import subprocess

    from pyinfra.api import FactBase
    from pyinfra.facts.files import FileContents

    from operations import survey
    from operations.facts.host import Pid1, UserExists
    from operations.facts.python import PythonJson

    class Absent(FactBase):
        requires_command = "no-such-command-here"

        def command(self) -> str:
            return "echo never"

    def run(command) -> list[str]:  # noqa: ANN001 (a string or pyinfra's StringCommand)
        return subprocess.run(["sh", "-c", str(command)], capture_output=True, text=True
                              ).stdout.splitlines()

    (tmp_path / "unended").write_text("first\nlast without newline")
    facts = [(Pid1(), {}), (UserExists(), {"user": "no-such-user-here"}),
             (PythonJson(), {"python": "/no/python", "code": "print(1)"}),
             (FileContents(), {"path": str(tmp_path / "unended")}),
             (FileContents(), {"path": str(tmp_path / "absent")}), (Absent(), {}),
             *((PythonJson(), {"python": "python3", "code": code, "args": args, "env": ()})
               for code, args in (("import json, sys; print(json.dumps(sys.argv[1:]))",
                                   ("a", "b c")),
                                  ("import sys; sys.exit('refused: no')", ()),
                                  ("import sys; print('{}', end=''); sys.exit(2)", ())))]
    found = survey.values(facts, run(survey.command(facts)))
    alone = [fact.process(run(fact.command(**kwargs))) for fact, kwargs in facts]
    assert found[0] == alone[0] and found[2] == alone[2] and found[4] == alone[4] is None
    assert found[2]["status"] == 3 and "no python at /no/python" in found[2]["error"]
    assert found[3] == alone[3] == ["first", "last without newline"]
    assert found[1] is alone[1] is False
    assert 5 not in found
    assert found[6] == alone[6] == ["a", "b c"]
    assert found[7] == alone[7] == {"error": "refused: no", "status": 1}
    assert found[8] == alone[8] == {"error": "{}", "status": 2}


def test_a_venvs_distributions_are_read_from_its_dist_info_names_without_starting_python(
        tmp_path):
    """What pip installed, as the venv's own importlib.metadata names it (lower case, "-" for
    "_"), read by a real shell from the directory names; no such Python: an error."""
    import subprocess

    from operations.facts.venv import Distributions

    site = tmp_path / "venv" / "lib" / "python3.12" / "site-packages"
    for name in ("sglang-0.5.23.dist-info", "sglang_router-0.3.2.dist-info",
                 "PyYAML-6.0.1.dist-info", "torch"):
        (site / name).mkdir(parents=True)
    (site / "stray-1.0.dist-info").touch()  # not a directory: not a distribution
    (tmp_path / "venv" / "bin").mkdir()
    (tmp_path / "venv" / "bin" / "python").touch(mode=0o755)

    def read(python: str) -> dict:
        fact = Distributions()
        return fact.process(subprocess.run(["sh", "-c", fact.command(python=python)],
                                           capture_output=True, text=True).stdout.splitlines())

    assert read(str(tmp_path / "venv" / "bin" / "python")) == {
        "sglang": "0.5.23", "sglang-router": "0.3.2", "pyyaml": "6.0.1"}
    missing = read(str(tmp_path / "none" / "bin" / "python"))
    assert missing["status"] == 3 and "no python at" in missing["error"]


def test_read_ahead_answers_a_hosts_reads_only_until_it_runs_a_command(monkeypatch):
    """The survey's one rule: a read is answered from what was read ahead until the host runs
    a command (then every read goes to the host); a read that looks at other hosts (a router's
    view) is stale as soon as one of those runs a command, the host's other reads are not; a
    fact's own command is not a change."""
    from pyinfra.facts.files import File

    from operations import survey

    class Host:
        def __init__(self, name: str):
            self.name, self.read = name, []

        def get_fact(self, fact, **kwargs):  # noqa: ANN001, ANN202
            self.read.append(kwargs["path"])
            self.run_shell_command(f"stat {kwargs['path']}")  # a read's command: no change
            return f"read on {self.name}"

        def run_shell_command(self, command):  # noqa: ANN001, ANN202
            return True, []

        def put_file(self, *args):  # noqa: ANN002, ANN202
            return True

    monkeypatch.setattr(survey, "_ANSWERS", {})
    monkeypatch.setattr(survey, "_CHANGED", set())
    monkeypatch.setattr(survey, "_keys", lambda host, fact, args, kwargs: (kwargs["path"],))
    worker, gateway = Host("worker"), Host("gateway")
    for one in (worker, gateway):
        survey._hook(one)
    answers = survey._ANSWERS["worker"]
    answers.values.update({"/local": "ahead", "/router-view": "ahead"})
    answers.after["/router-view"] = ("gateway",)

    assert worker.get_fact(File, path="/local") == "ahead"
    assert worker.get_fact(File, path="/router-view") == "ahead"
    gateway.run_shell_command("systemctl restart sglang-router")
    assert worker.get_fact(File, path="/router-view") == "read on worker"
    assert worker.get_fact(File, path="/local") == "ahead" and worker.read == ["/router-view"]
    worker.put_file("unit", "/etc/systemd/system/sglang.service")
    assert worker.get_fact(File, path="/local") == "read on worker"


def test_a_changed_service_manager_retires_the_other_managers_server():
    """One server per host: the definition under the manager no longer used is stopped and
    removed (it would hold the port, and come back at the next boot)."""
    conf, unit = "/etc/supervisor/conf.d/sglang.conf", "/etc/systemd/system/sglang.service"
    both = {("Sha256File", (("path", repr(conf)),)): "ab12",
            ("Sha256File", (("path", repr(unit)),)): "cd34", "Pid1": "systemd"}
    [command] = run_op(other_manager_retired, FakeHost("lab-1", both), setting="systemd")
    assert command.startswith("supervisorctl stop sglang") and f"rm -f {conf}" in command
    [command] = run_op(other_manager_retired, FakeHost("lab-1", both), setting="supervisor")
    assert command.startswith("systemctl disable --now sglang.service") and unit in command
    alone = {("Sha256File", (("path", repr(conf)),)): None, "Sha256File": "cd34",
             "Pid1": "systemd"}
    assert run_op(other_manager_retired, FakeHost("lab-1", alone), setting="auto") == []
