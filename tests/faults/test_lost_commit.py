"""A COMMIT whose answer never arrives, made by a real fault: a TCP hop between pria-ml and
PostgreSQL that drops the connection right at the COMMIT, either after the server answered
(the change is committed; only the caller does not know) or before the server saw it (nothing
was committed). Either way the call returns what the registry holds afterwards, and a rollback,
which is not idempotent, is applied exactly once."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from faultkit import two_prods_and_candidates

from pria_ml.db import Database
from pria_ml.registry import (
    current_prod,
    history,
    rollback,
)


class CommitCutter:
    """Forwards 127.0.0.1:<port> to the server's Unix socket; once armed, cuts the first
    connection that sends COMMIT: after the server's answer ("answered") or instead of
    forwarding it ("unsent")."""

    def __init__(self, socket_path: str, mode: str) -> None:
        self.socket_path, self.mode = socket_path, mode
        self.armed = threading.Event()
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX)
            server.connect(self.socket_path)
            committing = threading.Event()
            threading.Thread(
                target=self._up, args=(client, server, committing), daemon=True
            ).start()
            threading.Thread(
                target=self._down, args=(server, client, committing), daemon=True
            ).start()

    def _up(
        self, client: socket.socket, server: socket.socket, committing: threading.Event
    ) -> None:
        while data := _recv(client):
            if self.armed.is_set() and not self.cut.is_set() and b"COMMIT\x00" in data:
                self.cut.set()
                if self.mode == "unsent":
                    _close(client, server)
                    return
                committing.set()
            server.sendall(data)
        _close(client, server)

    def _down(
        self, server: socket.socket, client: socket.socket, committing: threading.Event
    ) -> None:
        while data := _recv(server):
            if committing.is_set():  # the server's answer to COMMIT: it has committed
                _close(client, server)
                return
            client.sendall(data)
        _close(client, server)

    def close(self) -> None:
        self.listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@pytest.fixture
def registry(registry_db: Database) -> Database:
    return registry_db


@pytest.mark.parametrize("mode", ["answered", "unsent"])
def test_rollback_whose_commit_answer_is_lost_is_applied_once(registry: Database, mode) -> None:
    ids = two_prods_and_candidates(registry, 2)

    url = urlsplit(registry.url)
    socket_path = str(Path(parse_qs(url.query)["host"][0]) / ".s.PGSQL.5432")
    cutter = CommitCutter(socket_path, mode)
    try:
        proxied = Database(
            role="registry",
            url=f"postgresql://postgres@127.0.0.1:{cutter.port}{url.path}",
            embedded=False,
            retry_deadline_s=10,
        )
        current_prod(proxied)  # connected and migrated through the hop before the fault
        cutter.armed.set()
        transition = rollback(proxied, reason=f"lost commit, {mode}")
    finally:
        cutter.close()

    assert cutter.cut.is_set(), "the fault must have happened"
    assert transition.changed and transition.adapter_id == ids[0]
    assert transition.previous_prod == ids[1]
    assert current_prod(registry).adapter_id == ids[0]
    rollbacks = [e for e in history(registry) if e.action == "rollback"]
    assert [(e.adapter_id, e.previous_prod) for e in rollbacks] == [(ids[0], ids[1])]
    assert transition.event_id == rollbacks[0].event_id
    assert ("committed before the connection" in transition.message) == (mode == "answered")


def test_every_event_carries_the_request_id_of_its_call(registry: Database) -> None:
    two_prods_and_candidates(registry, 2)  # 6 calls: 2 x register, gate, promote
    with registry.connect() as conn:
        ids = [row[0] for row in conn.execute("SELECT request_id FROM pria.registry_event")]
    assert len(ids) == 6 and len(set(ids)) == 6
    assert all(isinstance(i, uuid.UUID) for i in ids)
