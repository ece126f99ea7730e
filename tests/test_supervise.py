"""``make run``'s supervisord configuration, made from the Procfile: every process of the Procfile
is a program that is started again when it exits (the demo, which runs once, when it fails) and
is stopped with its whole process group, its output on supervisord's. The processes coming back
for real are in test_make_run.py."""

import configparser
from pathlib import Path

from dev_identity.supervise import configuration, procfile_processes

REPO = Path(__file__).resolve().parents[1]


def test_every_procfile_process_is_a_program_restarted_when_it_exits(tmp_path: Path) -> None:
    processes = procfile_processes(REPO / "Procfile")
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(configuration(processes, REPO, tmp_path))
    programs = {
        section.removeprefix("program:"): parsed[section]
        for section in parsed.sections()
        if section.startswith("program:")
    }
    assert set(programs) == set(processes) >= {"crm", "timeline", "gateway", "demo"}
    for name, program in programs.items():
        assert program["command"] == processes[name]
        assert program["autorestart"] == ("unexpected" if name == "demo" else "true")
        assert program["exitcodes"] == "0"
        assert program["stopasgroup"] == program["killasgroup"] == "true"
        assert program["stdout_logfile"] == "/dev/stdout"
    assert parsed["supervisord"]["nodaemon"] == "true"


def test_a_percent_sign_in_a_command_is_escaped_from_supervisords_expansion(tmp_path: Path) -> None:
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(configuration({"echo": "printf 100%"}, tmp_path, tmp_path))
    # supervisord expands %(name)s itself: a literal % is written doubled
    assert parsed["program:echo"]["command"] == "printf 100%%"
