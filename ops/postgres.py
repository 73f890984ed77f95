"""A PostgreSQL server from Debian's package, on loopback: for the scaled deployment
(``ops.scaled``) and for tests that need a real database they can stop and start."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ops.stack import free_port

STARTUP_SECONDS = 300.0


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class Postgres:
    """A PostgreSQL server (Debian's package) on a free loopback port, under ``root``.

    The cluster is kept under a folder of the caller's choosing, so a second start reuses it
    (conversations and tickets survive); the tests use it to stop and restart a real database.
    As root, the server runs as the postgres user (initdb refuses root); when that user cannot
    reach ``root`` (pytest's tmp folders are private to root), a temporary folder under
    ``/tmp`` is used instead and removed by :meth:`remove`.
    """

    def __init__(self, root: Path, port: int | None = None) -> None:
        bin_dir = _pg_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL server binaries not found: run `make scaled-packages` "
                               "(Debian's postgresql)")
        self.bin = bin_dir
        self.as_user: list[str] = []
        self.temporary = False
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            self.as_user = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--"]
            os.chown(root, user.pw_uid, user.pw_gid)
            if subprocess.run([*self.as_user, "test", "-w", str(root)], check=False).returncode != 0:
                with contextlib.suppress(OSError):
                    root.rmdir()
                root = Path(tempfile.mkdtemp(prefix="guide-scaled-pg-"))
                os.chown(root, user.pw_uid, user.pw_gid)
                self.temporary = True
        self.root = root
        self.data = root / "data"
        self.log = root / "pg.log"
        self.port = port or free_port()
        if not (self.data / "PG_VERSION").exists():
            subprocess.run([*self.as_user, str(bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                            "postgres", "-E", "UTF8", "--locale=C.UTF-8"], check=True, capture_output=True)
        self.url = self.database_url("postgres")

    def database_url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), *args],
                              check=check, capture_output=True)

    def start(self, timeout: float = STARTUP_SECONDS) -> None:
        import sqlalchemy as sa

        if self._ctl("status", check=False).returncode == 0:  # left running by a run that was killed
            self._ctl("-m", "fast", "-w", "stop")
        options = (f"-p {self.port} -h 127.0.0.1 -k {shlex.quote(str(self.root))} "
                   "-c max_connections=200")
        try:
            self._ctl("-l", str(self.log), "-w", "-t", str(int(timeout)), "-o", options, "start")
        except subprocess.CalledProcessError as error:
            raise RuntimeError(f"PostgreSQL did not start: {error.stderr.decode(errors='replace')}\n"
                               f"{self.tail()}") from error
        deadline = time.monotonic() + timeout
        while True:
            engine = sa.create_engine(self.url)
            try:
                with engine.connect():
                    return
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
            finally:
                engine.dispose()

    def create_databases(self, *names: str) -> None:
        """Create each database that does not exist yet."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                for name in names:
                    exists = connection.execute(sa.text("select 1 from pg_database where datname = :name"),
                                                {"name": name}).first()
                    if not exists:
                        connection.execute(sa.text(f'create database "{name}"'))
        finally:
            engine.dispose()

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop, and delete the cluster when it lives in a temporary folder."""
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
        if self.temporary:
            shutil.rmtree(self.root, ignore_errors=True)

    def tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""
