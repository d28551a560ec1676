"""grpcurl, the real binary, describes every service, method and message with its comments.

Over reflection the servers used to serve descriptors without source info (no comments) and could
not resolve a method's full name (grpc/grpc#34743); reflection v1 was missing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as rpb

from tests.servers import ROOT

GRPCURL = Path(sys.executable).parent / "grpcurl"
PROTOS = {
    "auth": ROOT / "protos" / "payments" / "auth" / "v1" / "auth.proto",
    "transaction": ROOT / "protos" / "payments" / "transaction" / "v1" / "transaction.proto",
}


def grpcurl(address: str, *args: str, data: str | None = None) -> str:
    flags = ["-plaintext", *(["-d", data] if data is not None else [])]
    result = subprocess.run(
        [str(GRPCURL), *flags, address, *args], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, f"grpcurl {' '.join(args)}: {result.stderr}"
    return result.stdout


def documented(proto: Path, keyword: str) -> dict[str, str]:
    """Declarations of `keyword` (rpc, message, enum, service) -> the first line of their comment."""
    text = proto.read_text()
    found = {}
    for comment, name in re.findall(rf"((?:^ *//[^\n]*\n)+) *{keyword} (\w+)", text, re.M):
        first = next(line.strip() for line in comment.splitlines() if line.strip() != "//")
        if not first.startswith("// buf:lint"):
            found[name] = first
    return found


@pytest.fixture
def addresses(auth_address, tx_address) -> dict[str, str]:
    return {"auth": auth_address, "transaction": tx_address}


@pytest.mark.parametrize("part", ["auth", "transaction"])
def test_grpcurl_describes_each_service_and_method_with_its_comments(addresses, part):
    address, proto = addresses[part], PROTOS[part]
    package = re.search(r"^package ([\w.]+);", proto.read_text(), re.M).group(1)
    (service,) = documented(proto, "service")
    described = grpcurl(address, "describe", f"{package}.{service}")
    assert documented(proto, "service")[service] in described
    methods = documented(proto, "rpc")
    assert methods, "every rpc of our contracts is documented"
    for method, comment in methods.items():
        assert comment in described, method
        one = grpcurl(address, "describe", f"{package}.{service}.{method}")  # grpc/grpc#34743
        assert f"{package}.{service}.{method} is a method" in one and comment in one


@pytest.mark.parametrize("part", ["auth", "transaction"])
def test_grpcurl_describes_messages_and_enums_with_their_comments(addresses, part):
    address, proto = addresses[part], PROTOS[part]
    package = re.search(r"^package ([\w.]+);", proto.read_text(), re.M).group(1)
    for keyword in ("message", "enum"):
        for name, comment in documented(proto, keyword).items():
            assert comment in grpcurl(address, "describe", f"{package}.{name}"), name


def test_grpcurl_describes_a_field_comment_of_a_request(tx_address):
    described = grpcurl(tx_address, "describe", "payments.transaction.v1.CreateTransactionRequest")
    assert "// Required, 1-128 printable ASCII characters, unique per user." in described
    assert "string idempotency_key = 6;" in described


def test_grpcurl_lists_both_reflection_versions_and_health(auth_address):
    listed = grpcurl(auth_address, "list").split()
    assert {
        "payments.auth.v1.AuthService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= set(listed)
    assert "is a method" in grpcurl(auth_address, "describe", "grpc.health.v1.Health.Check")


def test_grpcurl_prints_the_field_names_of_the_contracts(auth_address):
    """Not protoc's JSON names (`jwksJson`): scripts read what grpcurl has always printed."""
    printed = grpcurl(auth_address, "payments.auth.v1.AuthService/GetJwks", data="{}")
    assert '"jwks_json"' in printed and "jwksJson" not in printed


def _reflect(
    address: str, service: str, request: rpb.ServerReflectionRequest
) -> rpb.ServerReflectionResponse:
    """One request over `service` (v1 and v1alpha share their messages byte for byte)."""
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream(
            f"/{service}/ServerReflectionInfo",
            request_serializer=rpb.ServerReflectionRequest.SerializeToString,
            response_deserializer=rpb.ServerReflectionResponse.FromString,
        )
        (response,) = list(call(iter([request]), timeout=10))
    return response


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_answers_over_v1_and_v1alpha_with_source_info(tx_address, version):
    service = f"grpc.reflection.{version}.ServerReflection"
    listed = _reflect(tx_address, service, rpb.ServerReflectionRequest(list_services=""))
    assert "payments.transaction.v1.TransactionService" in {
        s.name for s in listed.list_services_response.service
    }
    symbol = "payments.transaction.v1.TransactionService.CreateTransaction"
    found = _reflect(tx_address, service, rpb.ServerReflectionRequest(file_containing_symbol=symbol))
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in found.file_descriptor_response.file_descriptor_proto
    ]
    ours = next(f for f in files if f.name == "payments/transaction/v1/transaction.proto")
    assert {"google/protobuf/timestamp.proto"} <= {f.name for f in files}  # its imports come along
    assert any("idempotency" in loc.leading_comments for loc in ours.source_code_info.location)
    missing = _reflect(tx_address, service, rpb.ServerReflectionRequest(file_containing_symbol="no.Such"))
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
