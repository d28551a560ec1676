"""Server reflection, `v1` and `v1alpha`, serving our contracts with their comments.

grpcio-reflection serves descriptors without source info (so `grpcurl describe` showed no comments)
and cannot find a method by its full name (grpc/grpc#34743). This serves each .proto file as protoc
parsed it with `--include_source_info` (`payments/descriptor_set.py`), indexes every symbol, methods
and fields included, and answers other files from the default pool; v1 and v1alpha are one protocol.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2 as rpb

from payments.descriptor_set import FILE_DESCRIPTOR_SET

V1 = "grpc.reflection.v1.ServerReflection"
V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
SERVICE_NAMES = (V1, V1ALPHA)
FileProto = descriptor_pb2.FileDescriptorProto


def _symbols(file: FileProto) -> Iterator[str]:
    """Every full name `file` declares, as reflection clients ask for them."""
    prefix = f"{file.package}." if file.package else ""

    def enum(e: descriptor_pb2.EnumDescriptorProto, scope: str) -> Iterator[str]:
        yield scope + e.name
        yield from (scope + v.name for v in e.value)  # values are scoped like their enum

    def message(m: descriptor_pb2.DescriptorProto, scope: str) -> Iterator[str]:
        name = scope + m.name
        yield name
        yield from (f"{name}.{field.name}" for field in [*m.field, *m.extension])
        yield from (f"{name}.{oneof.name}" for oneof in m.oneof_decl)
        for nested in m.nested_type:
            yield from message(nested, f"{name}.")
        for nested_enum in m.enum_type:
            yield from enum(nested_enum, f"{name}.")

    for m in file.message_type:
        yield from message(m, prefix)
    for e in file.enum_type:
        yield from enum(e, prefix)
    for service in file.service:
        yield prefix + service.name
        yield from (f"{prefix}{service.name}.{method.name}" for method in service.method)
    yield from (prefix + x.name for x in file.extension)


def _json_name(name: str) -> str:  # protoc's default: `access_token` -> `accessToken`
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _without_default_json_names(file: FileProto) -> FileProto:
    """`file` without protoc's default JSON names, so grpcurl keeps printing `access_token`."""

    def strip(message: descriptor_pb2.DescriptorProto) -> None:
        for field in [*message.field, *message.extension]:
            if field.json_name == _json_name(field.name):
                field.ClearField("json_name")
        for nested in message.nested_type:
            strip(nested)

    copy = FileProto()
    copy.CopyFrom(file)
    for message in copy.message_type:
        strip(message)
    for extension in copy.extension:
        if extension.json_name == _json_name(extension.name):
            extension.ClearField("json_name")
    return copy


def _v1_file() -> FileProto:
    """grpc/reflection/v1/reflection.proto, made from v1alpha's (the same messages, renamed)."""
    proto = FileProto()
    rpb.DESCRIPTOR.CopyToProto(proto)
    old, new = f".{proto.package}.", ".grpc.reflection.v1."
    proto.name, proto.package = "grpc/reflection/v1/reflection.proto", "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            field.type_name = field.type_name.replace(old, new, 1)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new, 1)
            method.output_type = method.output_type.replace(old, new, 1)
    return proto


class Files:
    """The files reflection answers with: ours (with source info) first, the default pool's after."""

    def __init__(self, files: Iterable[FileProto]):
        self._files = {f.name: f for f in files}
        self._symbols: dict[str, str] = {}
        self._extensions: dict[str, dict[int, str]] = {}  # extended message -> number -> file
        for f in self._files.values():
            for symbol in _symbols(f):
                self._symbols.setdefault(symbol, f.name)
            for x in f.extension:
                self._extensions.setdefault(x.extendee.lstrip("."), {})[x.number] = f.name

    @classmethod
    def ours(cls) -> Files:
        """Our contracts as generated, and the v1 reflection file."""
        files = descriptor_pb2.FileDescriptorSet.FromString(FILE_DESCRIPTOR_SET).file
        return cls([*map(_without_default_json_names, files), _v1_file()])

    def file(self, name: str) -> FileProto | None:
        """The file called `name` ("google/protobuf/timestamp.proto"), if this process has it."""
        if name in self._files:
            return self._files[name]
        try:
            found = descriptor_pool.Default().FindFileByName(name)
        except KeyError:
            # an import of ours that no module has loaded yet: its generated module adds it
            try:
                importlib.import_module(name.removesuffix(".proto").replace("/", ".") + "_pb2")
                found = descriptor_pool.Default().FindFileByName(name)
            except (ImportError, KeyError):
                return None
        proto = FileProto()
        found.CopyToProto(proto)
        return proto

    def containing(self, symbol: str) -> str | None:
        """The name of the file that declares `symbol`."""
        if symbol in self._symbols:
            return self._symbols[symbol]
        pool = descriptor_pool.Default()
        try:
            return str(pool.FindFileContainingSymbol(symbol).name)
        except KeyError:
            pass
        service, _, method = symbol.rpartition(".")  # a method: grpc/grpc#34743
        try:
            found = pool.FindServiceByName(service)
        except KeyError:
            return None
        return str(found.file.name) if method in found.methods_by_name else None

    def extensions(self, message: str) -> dict[int, str] | None:
        """Extension number -> file, of the message `message`; None for an unknown message."""
        if message in self._extensions or message in self._symbols:
            return self._extensions.get(message, {})
        pool = descriptor_pool.Default()
        try:
            found = pool.FindMessageTypeByName(message)
        except KeyError:
            return None
        return {x.number: str(x.file.name) for x in pool.FindAllExtensions(found)}  # type: ignore[attr-defined]

    def with_dependencies(self, name: str) -> list[bytes] | None:
        """`name` and every file it imports, transitively, serialized; None if one is unknown."""
        out: list[bytes] = []
        seen: set[str] = set()
        pending = [name]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            proto = self.file(current)
            if proto is None:
                return None
            out.append(proto.SerializeToString())
            pending.extend(proto.dependency)
        return out


class Reflection:
    """The ServerReflectionInfo stream: one answer per request, in order."""

    def __init__(self, files: Files, service_names: Sequence[str]):
        self._files = files
        self._services = sorted(set(service_names))

    def answer(self, request: rpb.ServerReflectionRequest) -> rpb.ServerReflectionResponse:
        """The response to one request (NOT_FOUND for an unknown file, symbol or type)."""
        kind = request.WhichOneof("message_request")
        found: list[bytes] | None = None
        if kind == "list_services":
            services = [rpb.ServiceResponse(name=name) for name in self._services]
            return rpb.ServerReflectionResponse(
                original_request=request, list_services_response=rpb.ListServiceResponse(service=services)
            )
        if kind == "file_by_filename":
            found = self._files.with_dependencies(request.file_by_filename)
        elif kind == "file_containing_symbol":
            name = self._files.containing(request.file_containing_symbol)
            found = self._files.with_dependencies(name) if name else None
        elif kind == "file_containing_extension":
            wanted = request.file_containing_extension
            name = (self._files.extensions(wanted.containing_type) or {}).get(wanted.extension_number)
            found = self._files.with_dependencies(name) if name else None
        elif kind == "all_extension_numbers_of_type":
            numbers = self._files.extensions(request.all_extension_numbers_of_type)
            if numbers is not None:
                return rpb.ServerReflectionResponse(
                    original_request=request,
                    all_extension_numbers_response=rpb.ExtensionNumberResponse(
                        base_type_name=request.all_extension_numbers_of_type, extension_number=sorted(numbers)
                    ),
                )
        else:
            return _error(request, grpc.StatusCode.INVALID_ARGUMENT)
        if found is None:
            return _error(request, grpc.StatusCode.NOT_FOUND)
        return rpb.ServerReflectionResponse(
            original_request=request,
            file_descriptor_response=rpb.FileDescriptorResponse(file_descriptor_proto=found),
        )

    async def info(
        self, requests: AsyncIterator[rpb.ServerReflectionRequest], _context: Any
    ) -> AsyncIterator[rpb.ServerReflectionResponse]:
        """The bidirectional stream of both reflection services."""
        async for request in requests:
            yield self.answer(request)


def _error(request: rpb.ServerReflectionRequest, code: grpc.StatusCode) -> rpb.ServerReflectionResponse:
    number, message = code.value
    return rpb.ServerReflectionResponse(
        original_request=request,
        error_response=rpb.ErrorResponse(error_code=number, error_message=message),
    )


def enable(server: grpc.aio.Server, service_names: Sequence[str]) -> None:
    """Serve reflection v1 and v1alpha on `server`, listing `service_names` and themselves."""
    servicer = Reflection(Files.ours(), [*service_names, *SERVICE_NAMES])
    method = grpc.stream_stream_rpc_method_handler(
        servicer.info,  # an async generator, as grpc.aio allows
        request_deserializer=rpb.ServerReflectionRequest.FromString,
        response_serializer=rpb.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": method})
            for name in SERVICE_NAMES
        ]
    )
