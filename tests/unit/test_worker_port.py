"""The port PROCESSES workers share: reserved once for all, refused when another program listens."""

from __future__ import annotations

import socket

import pytest
from pydantic import ValidationError

from payments_common.config import TransactionSettings, describe_error
from payments_common.processes import reserve_port


def test_port_0_is_reserved_as_one_port_that_every_worker_can_bind_with_so_reuseport():
    reserved = reserve_port("127.0.0.1", 0)
    with reserved, socket.socket() as worker:
        port = reserved.getsockname()[1]
        worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        worker.bind(("127.0.0.1", port))  # what grpc does in each worker with grpc.so_reuseport=1
        worker.listen()
        assert port > 0


def test_a_port_another_program_listens_on_is_refused_with_one_line():
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(SystemExit, match=f"cannot listen on 127.0.0.1:{port}"):
            reserve_port("127.0.0.1", port)


def test_several_processes_without_a_shared_page_token_key_are_refused_naming_the_setting():
    with pytest.raises(ValidationError) as refused:
        TransactionSettings(_env_file=None, processes=2, database_url="postgresql://x@/y")  # type: ignore[call-arg]
    assert describe_error(refused.value).startswith("PAGE_TOKEN_KEY: required when PROCESSES > 1")
    assert TransactionSettings(_env_file=None, processes=2, page_token_key="k" * 32).processes == 2  # type: ignore[call-arg]
