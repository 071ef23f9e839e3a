"""supervisord, which runs the components, and its client."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import xmlrpc.client
from pathlib import Path

from quiver_dev.stack.components import components
from quiver_dev.stack.process import launcher_folder, write
from quiver_dev.stack.settings import Settings, StackError


class Supervisor:
    """supervisord runs the components; this talks to it over its XML-RPC unix socket."""

    def __init__(self, s: Settings):
        self.s = s
        self.conf = s.run / "supervisord.conf"
        self.pidfile = s.run / "supervisord.pid"
        self.socket = s.run / "supervisord.sock"
        if len(str(self.socket)) > 100:  # unix socket paths are limited to ~108 bytes
            digest = hashlib.sha256(str(s.state).encode()).hexdigest()[:12]
            self.socket = Path("/tmp") / f"quiver-supervisor-{digest}.sock"

    def write_conf(self) -> None:
        s = self.s
        sections = [
            "[unix_http_server]",
            f"file={self.socket}",
            "chmod=0700",
            "",
            "[supervisord]",
            f"logfile={s.state / 'logs' / 'supervisord.log'}",
            f"pidfile={self.pidfile}",
            f"directory={s.state}",
            "nodaemon=false",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{self.socket}",
            "",
        ]
        for c in components(s):
            s.logs(c.name).mkdir(parents=True, exist_ok=True)
            sections += [
                f"[program:{c.name}]",
                f"command={launcher_folder(s, c.name) / (c.name + '.sh')}",
                f"directory={launcher_folder(s, c.name) if c.run_as_postgres else s.state}",
                "autostart=false",
                # A crash shows as EXITED in 'status' instead of a silent restart loop.
                "autorestart=false",
                "startsecs=0",
                "stopsignal=TERM",
                # Graceful first; supervisord sends SIGKILL to the group after this.
                "stopwaitsecs=30",
                "stopasgroup=true",
                "killasgroup=true",
                "redirect_stderr=true",
                f"stdout_logfile={s.log_file(c.name)}",
                "stdout_logfile_maxbytes=50MB",
                "stdout_logfile_backups=3",
            ]
            if c.run_as_postgres and os.geteuid() == 0:
                sections.append("user=postgres")
            sections.append("")
        write(self.conf, "\n".join(sections))

    def proxy(self):
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def running(self) -> bool:
        try:
            return self.proxy().getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault):
            return False

    def ensure_started(self) -> None:
        self.write_conf()
        if self.running():
            # Picks up programs added since supervisord started; starts nothing.
            self.proxy().reloadConfig()
            for name in [c.name for c in components(self.s)]:
                try:
                    self.proxy().addProcessGroup(name)
                except xmlrpc.client.Fault:
                    pass
            return
        supervisord = self.s.venv / "bin" / "supervisord"
        subprocess.run([str(supervisord), "-c", str(self.conf)], check=True)
        deadline = time.monotonic() + 15
        while not self.running():
            if time.monotonic() > deadline:
                raise StackError(f"supervisord did not start: see {self.s.state / 'logs' / 'supervisord.log'}")
            time.sleep(0.1)

    def info(self, name: str) -> dict:
        try:
            return self.proxy().getProcessInfo(name)
        except (OSError, xmlrpc.client.Fault):
            return {"statename": "STOPPED", "pid": 0}

    def start(self, name: str) -> None:
        self.proxy().startProcess(name, True)

    def stop(self, *names: str) -> None:
        """Stops these at once and waits until each has stopped (supervisord sends SIGKILL
        after stopwaitsecs)."""
        for name in names:
            try:
                self.proxy().stopProcess(name, False)
            except xmlrpc.client.Fault as fault:
                if "NOT_RUNNING" not in fault.faultString:
                    raise
        while any(self.info(name)["statename"] in ("RUNNING", "STARTING", "STOPPING") for name in names):
            time.sleep(0.1)

    def pid(self) -> int:
        """supervisord's pid if it is alive, else 0. Standard library only: `check` runs
        before the environment that holds supervisor's own client exists."""
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            return 0
        return pid if _alive(pid) else 0

    def shutdown(self) -> None:
        if self.running():
            pid = self.pid()
            self.proxy().shutdown()
            deadline = time.monotonic() + 10
            while pid and _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
