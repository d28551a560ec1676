"""A protoc plugin that runs one of grpcio-tools' built-in generators, for buf.gen.yaml.

grpcio-tools ships protoc (the pinned version that generates payments/) as a Python
extension with the `python`, `pyi` and `grpc_python` generators compiled in, but no
`protoc-gen-*` executable, so buf cannot call them as plugins. This script is one: it
reads buf's CodeGeneratorRequest on stdin, hands the descriptors to that protoc
(`--descriptor_set_in`) with `--<generator>_out`, and answers with the files it wrote.
buf fills in every field's default `json_name`, which protoc leaves unset when it parses the
source; dropping those makes the output byte for byte what `make proto` generates.

    local: [.venv/bin/python, scripts/protoc_gen_grpc_tools.py, grpc_python]
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

GENERATORS = ("python", "pyi", "grpc_python")


def default_json_name(field: str) -> str:
    """protoc's JSON name of a field: underscores dropped, the letter after each one upper-cased."""
    return re.sub(r"_(.?)", lambda m: m.group(1).upper(), field)


def drop_default_json_names(
    fields: Iterable[descriptor_pb2.FieldDescriptorProto], messages: Iterable[descriptor_pb2.DescriptorProto]
) -> None:
    """Clear `json_name` wherever it is the default, as in a descriptor protoc parsed itself."""
    for field in fields:
        if field.json_name == default_json_name(field.name):
            field.ClearField("json_name")
    for message in messages:
        drop_default_json_names([*message.field, *message.extension], message.nested_type)


def generate(generator: str, request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    """Run grpcio-tools' protoc with `generator` over the request's files."""
    from grpc_tools import protoc  # imported late: a clear error below when it is missing

    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    with tempfile.TemporaryDirectory() as tmp:
        descriptors, out = Path(tmp) / "request.binpb", Path(tmp) / "out"
        out.mkdir()
        files = descriptor_pb2.FileDescriptorSet(file=request.proto_file)
        for file in files.file:
            drop_default_json_names(file.extension, file.message_type)
        descriptors.write_bytes(files.SerializeToString())
        parameter = f"{request.parameter}:" if request.parameter else ""
        args = ["protoc", f"--descriptor_set_in={descriptors}", f"--{generator}_out={parameter}{out}"]
        if protoc.main([*args, *request.file_to_generate]) != 0:
            response.error = f"grpc_tools.protoc --{generator}_out failed (its error is above)"
            return response
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            response.file.add(name=path.relative_to(out).as_posix(), content=path.read_text())
    return response


def main() -> int:
    """Answer one CodeGeneratorRequest from stdin on stdout."""
    if len(sys.argv) != 2 or sys.argv[1] not in GENERATORS:
        print(f"usage: {sys.argv[0]} {{{','.join(GENERATORS)}}} < CodeGeneratorRequest", file=sys.stderr)
        return 2
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        print("grpcio-tools is not installed here: run `make setup` (it fills .venv)", file=sys.stderr)
        return 1
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(sys.argv[1], request).SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
