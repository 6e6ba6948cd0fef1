"""Private PostgreSQL, Redis and RabbitMQ instances for the fault suite.

The fault tests stop, kill and restart the services under the product. They must never touch
the machine's shared instances (other test runs use them), so each run starts its own copies of
the same real servers, from the machine's binaries, on free ports, in a temporary directory:

* Redis: ``redis-server`` as a child process; a restart loses all data (nothing is saved);
* PostgreSQL: ``initdb`` + ``pg_ctl`` as the ``postgres`` user (PostgreSQL refuses root);
* RabbitMQ: a second node (its own node name, ports, Mnesia directory, cookie and config) run
  as the ``rabbitmq`` user, faulted with ``rabbitmqctl stop_app`` / ``start_app``.

Every wait is bounded; :class:`PrivateServices` stops everything in ``finally`` blocks and kills
what did not stop (only processes it started, by pid).
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
RABBITMQ_BIN = "/usr/lib/rabbitmq/bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(what: str, predicate: object, timeout: float, interval: float = 0.1) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(interval)


def pg_bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def missing_binaries() -> str | None:
    """Why the private services cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "the fault suite starts private PostgreSQL/RabbitMQ as their users: needs root"
    if not Path(REDIS_SERVER).exists():
        return "redis-server is not installed"
    if pg_bin_dir() is None:
        return "PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are not installed"
    if not Path(RABBITMQ_BIN, "rabbitmq-server").exists():
        return "rabbitmq-server is not installed"
    if shutil.which("runuser") is None:
        return "runuser is not available"
    for user in ("postgres", "rabbitmq"):
        if subprocess.run(["id", "-u", user], capture_output=True).returncode != 0:
            return f"the system user {user!r} does not exist"
    return None


def _chown(path: Path, user: str) -> None:
    shutil.chown(path, user, user)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            shutil.chown(os.path.join(root, name), user, user)


def _kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _pids_with(marker: str) -> list[int]:
    """Pids whose command line contains ``marker`` (a name unique to this run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


# --------------------------------------------------------------------------- Redis


class PrivateRedis:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 15) -> None:
        assert not self.running
        self.starts += 1
        log = (self.root / f"redis-{self.starts}.log").open("wb")
        try:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--dir", str(self.root),
                 "--protected-mode", "no"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        wait_for("redis start", self.ping, timeout)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 10) -> None:
        """Stop the server (SIGTERM, then SIGKILL): all its data is gone."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def command(self, *args: str) -> str:
        """Run one command with redis-cli; returns its output."""
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), "--raw", *args],
            capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout

    def delete_session(self, session_id: str) -> list[str]:
        """Delete every key of a session's event log (``wc:{sid}:*``); returns them."""
        keys = [k for k in self.command("--scan", "--pattern", f"wc:{{{session_id}}}:*")
                .splitlines() if k]
        if keys:
            self.command("DEL", *keys)
        return keys


# --------------------------------------------------------------------------- PostgreSQL


class PrivatePostgres:
    DB = "wastecoach"

    def __init__(self, root: Path) -> None:
        bindir = pg_bin_dir()
        assert bindir is not None
        self.bin = bindir
        self.root = root
        self.data = root / "data"
        self.sock = root / "sock"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.DB}"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True,
            timeout=timeout, cwd=self.root,
        )

    def init(self) -> None:
        self.sock.mkdir(parents=True, exist_ok=True)
        _chown(self.root, "postgres")
        out = self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust",
                        "-U", "postgres", "-E", "UTF8", "--no-sync")
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed: {out.stdout}\n{out.stderr}")

    def start(self, timeout: int = 60) -> None:
        options = (f"-p {self.port} -h 127.0.0.1 -k {self.sock} -c fsync=off "
                   "-c full_page_writes=off -c synchronous_commit=off -c max_connections=300")
        out = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                        str(self.root / "postgres.log"), "-w", "-t", str(timeout), "-o", options,
                        "start", timeout=timeout + 10)
        if out.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {out.stdout}\n{out.stderr}")

    def stop(self, mode: str = "fast", timeout: int = 30) -> None:
        out = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t",
                        str(timeout), "-m", mode, "stop", timeout=timeout + 10)
        if out.returncode != 0 and "Is server running?" not in out.stderr:
            raise RuntimeError(f"pg_ctl stop failed: {out.stdout}\n{out.stderr}")

    @property
    def running(self) -> bool:
        return port_open(self.port)

    def psql(self, sql: str) -> str:
        out = self._run("psql", "-h", str(self.sock), "-p", str(self.port), "-U", "postgres",
                        "-d", self.DB, "-tAX", "-F", "\t", "-c", sql, timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr}")
        return out.stdout

    def create_database(self) -> None:
        out = self._run("psql", "-h", str(self.sock), "-p", str(self.port), "-U", "postgres",
                        "-d", "postgres", "-c", f'CREATE DATABASE "{self.DB}"', timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f"CREATE DATABASE failed: {out.stderr}")

    def kill_leftovers(self) -> None:
        pidfile = self.data / "postmaster.pid"
        if pidfile.exists():
            with contextlib.suppress(ValueError, OSError):
                _kill_pid(int(pidfile.read_text().split()[0]))


# --------------------------------------------------------------------------- RabbitMQ


class PrivateRabbit:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.node = f"wcfault-{secrets.token_hex(4)}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.home = root / "home"
        self.env = {
            "HOME": str(self.home),
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(root / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(root / "rabbit.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":
                "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        # runuser resets HOME (where the CLI and the node find the Erlang cookie): set the
        # environment after the switch.
        env = [f"{k}={v}" for k, v in self.env.items()]
        return subprocess.run(
            ["runuser", "-u", "rabbitmq", "--", "env", *env, *args], capture_output=True,
            text=True, timeout=timeout, cwd=self.root,
        )

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self._run(f"{RABBITMQ_BIN}/rabbitmqctl", "-q", "-n", self.node, *args,
                         timeout=timeout)

    def prepare(self) -> None:
        for sub in ("mnesia", "log", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            "log.console = false\nlog.file.level = warning\n"
        )
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq-env.conf").write_text("")
        cookie = self.home / ".erlang.cookie"
        cookie.write_text("WCFAULT" + secrets.token_hex(16).upper())
        _chown(self.root, "rabbitmq")
        cookie.chmod(0o400)
        self.root.chmod(0o755)

    def start(self, timeout: float = 120) -> None:
        out = self._run(f"{RABBITMQ_BIN}/rabbitmq-server", "-detached", timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f"rabbitmq-server failed: {out.stdout}\n{out.stderr}")
        # -detached returns at once; await_startup fails at once on a node epmd does not know.
        short = self.node.split("@", 1)[0]
        wait_for("RabbitMQ node registration", lambda: self._registered(short), 60, 0.5)
        self.await_startup(timeout)

    def _registered(self, short: str) -> bool:
        out = subprocess.run(["epmd", "-names"], capture_output=True, text=True, timeout=10)
        return f"name {short} at port" in out.stdout

    def await_startup(self, timeout: float = 120) -> None:
        out = self.ctl("await_startup", "--timeout", str(int(timeout)), timeout=timeout + 15)
        if out.returncode != 0 or not port_open(self.port):
            raise RuntimeError(f"RabbitMQ node {self.node} did not start: {out.stderr}")

    def stop_app(self) -> None:
        out = self.ctl("stop_app", timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"stop_app failed: {out.stderr}")

    def start_app(self) -> None:
        out = self.ctl("start_app", timeout=90)
        if out.returncode != 0:
            raise RuntimeError(f"start_app failed: {out.stderr}")
        wait_for("AMQP listener", lambda: port_open(self.port), 30)

    def stop(self) -> None:
        short = self.node.split("@", 1)[0]
        try:
            self.ctl("stop", timeout=60)
            with contextlib.suppress(TimeoutError):
                wait_for("RabbitMQ node exit", lambda: not _pids_with(short), 15, 0.2)
        finally:
            self.kill_leftovers()

    def kill_leftovers(self) -> None:
        """SIGKILL the processes of this node (found by its unique node name), if any."""
        for pid in _pids_with(self.node.split("@", 1)[0]):
            _kill_pid(pid)


# --------------------------------------------------------------------------- all three


class PrivateServices:
    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("redis", "pg", "rabbit"):
            (root / sub).mkdir()
        self.redis = PrivateRedis(root / "redis")
        self.pg = PrivatePostgres(root / "pg")
        self.rabbit = PrivateRabbit(root / "rabbit")

    def ensure_up(self) -> None:
        """Bring back whatever a test left stopped (a failed test must not break the next)."""
        if not self.redis.running:
            self.redis.stop()
            self.redis.start()
        if not self.pg.running:
            self.pg.start()
        if not port_open(self.rabbit.port):
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.rabbit.start_app()
            if not port_open(self.rabbit.port):
                self.rabbit.start()


@contextlib.contextmanager
def private_services() -> Iterator[PrivateServices]:
    """Start the three services; always stop them and remove their files afterwards."""
    from server.migrate import upgrade

    root = Path(tempfile.mkdtemp(prefix="wcfault-"))
    root.chmod(0o755)
    services = PrivateServices(root)
    try:
        services.redis.start()
        services.pg.init()
        services.pg.start()
        services.pg.create_database()
        upgrade(services.pg.url)
        services.rabbit.prepare()
        services.rabbit.start()
        yield services
    finally:
        with contextlib.suppress(Exception):
            services.redis.stop()
        try:
            services.pg.stop("fast")
        except Exception:
            with contextlib.suppress(Exception):
                services.pg.stop("immediate")
        finally:
            services.pg.kill_leftovers()
        try:
            services.rabbit.stop()
        except Exception:
            services.rabbit.kill_leftovers()
        if not os.environ.get("WASTECOACH_FAULT_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
