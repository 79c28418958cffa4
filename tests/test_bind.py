"""Servers bind loopback by default and warn when other machines could connect."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import pytest

from streamreel import NonLoopbackWarning, Recorder, Replayer
from streamreel.bind import exposed, is_loopback


@pytest.mark.parametrize("cls", [Replayer, Recorder])
def test_servers_bind_loopback_by_default(cls: type) -> None:
    assert inspect.signature(cls).parameters["host"].default == "127.0.0.1"


def test_a_default_replayer_listens_on_loopback_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonLoopbackWarning)
        with Replayer(None) as server:
            assert server.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("fe80::1%eth0", False),
        ("::ffff:10.0.0.1", False),
        ("example.internal", False),
        ("", False),
    ],
)
def test_what_counts_as_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_exposed_reads_bound_socket_names() -> None:
    assert exposed([("127.0.0.1", 80), ("::1", 80, 0, 0)]) == []
    assert exposed([("127.0.0.1", 80), ("0.0.0.0", 80)]) == ["0.0.0.0"]


def test_binding_every_interface_warns_once_saying_who_can_connect_and_what_they_get() -> None:
    """Binds 0.0.0.0 for real on a free port and stops at once; nothing is sent to it."""
    with pytest.warns(NonLoopbackWarning) as caught:
        with Replayer(None, host="0.0.0.0") as server:
            port = server.port
    [message] = [str(w.message) for w in caught if issubclass(w.category, NonLoopbackWarning)]  # once; not another test's ResourceWarning
    assert f"Replayer at http://0.0.0.0:{port} listens on 0.0.0.0, which is not loopback" in message
    assert "accept connections from other machines" in message and "cassettes' contents" in message
    assert "Bind 127.0.0.1" in message


async def test_an_async_replayer_warns_too() -> None:
    with pytest.warns(NonLoopbackWarning, match="listens on 0.0.0.0"):
        async with Replayer(None, host="0.0.0.0"):
            pass


def test_a_recorder_on_every_interface_also_says_it_forwards_upstream(tmp_path: Path) -> None:
    """The upstream is never contacted: nothing is sent to the recorder."""
    with pytest.warns(NonLoopbackWarning) as caught:
        with Recorder(cassette=tmp_path / "c.yaml", upstream="http://127.0.0.1:9", host="0.0.0.0"):
            pass
    [warned] = [str(w.message) for w in caught if issubclass(w.category, NonLoopbackWarning)]  # not another test's ResourceWarning
    assert "Recorder at http://0.0.0.0:" in warned
    assert "forward their requests to http://127.0.0.1:9" in warned


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_hosts_do_not_warn(host: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonLoopbackWarning)
        with Replayer(None, host=host) as server:
            assert server.port > 0


# ---------------------------------------------------------------- what cannot be meant


@pytest.mark.parametrize("cls", [Replayer, Recorder])
@pytest.mark.parametrize(("host", "port"), [("", 0), ("  ", 0), (None, 0), ("127.0.0.1", -1), ("127.0.0.1", 65536), ("127.0.0.1", 70000), ("127.0.0.1", True), ("127.0.0.1", 1.5)])
def test_an_empty_host_or_a_port_out_of_range_is_refused_before_binding(tmp_path: Path, cls: type, host: object, port: object) -> None:
    extra = {"cassette": tmp_path / "c.yaml"} if cls is Recorder else {}
    with pytest.raises(ValueError, match=r"host must be an address|port must be a whole number from 0 to 65535"):
        cls(host=host, port=port, **extra)


def test_a_host_with_several_addresses_gets_the_same_port_on_each(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name resolving to 127.0.0.1 and ::1 (as ``localhost`` does on many machines): one URL, one port, both addresses."""
    import socket

    real = socket.getaddrinfo

    def resolve(host: object, *args: object, **kwargs: object) -> list:
        if host == "dual.test":
            return real("127.0.0.1", *args, **kwargs) + real("::1", *args, **kwargs)  # type: ignore[arg-type]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    for _ in range(20):
        with Replayer(None, host="dual.test") as server:
            ports = {address[1] for address in server._runner.addresses}  # type: ignore[union-attr]
            hosts = {address[0] for address in server._runner.addresses}  # type: ignore[union-attr]
            assert ports == {server.port} and hosts == {"127.0.0.1", "::1"}
            for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                with socket.socket(family) as s:
                    s.connect((address, server.port))
