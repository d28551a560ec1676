"""Check the clients `buf generate` (buf.gen.yaml) wrote to gen/: every file there, and each compiles.

- Python (gen/python): the three modules of every .proto file, byte for byte the stubs that
  `make proto` commits in payments/ (the same grpcio-tools protoc generates both).
- Go (gen/go): the message and gRPC files of every .proto file, in the directory its
  `go_package` names, vetted (compiled and checked) by `go vet` against Debian's
  google.golang.org/protobuf and google.golang.org/grpc sources, with no module download.
- TypeScript (gen/ts): every file, type-checked by `tsc --noEmit` together with the example
  client clients/typescript/example.ts (Connect-ES on the generated service descriptors).

Run by `make gen-clients`, after `buf generate`.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROTOS, GEN = ROOT / "protos", ROOT / "gen"
GO_MODULE = "github.com/payments-grpc/payments-grpc/gen/go"  # the go_package prefix of every file
GO_SOURCES = Path("/usr/share/gocode")  # Debian's golang-google-grpc-dev and golang-google-protobuf-dev
GO_PACKAGE = re.compile(r'^option go_package = "([^";]+);(\w+)";$', re.M)


def go_package(proto: Path) -> tuple[str, str]:
    """(import path, package name) of a .proto file's go_package option."""
    found = GO_PACKAGE.search(proto.read_text())
    if found is None:
        raise SystemExit(f'{proto.relative_to(ROOT)}: no `option go_package = "{GO_MODULE}/...;name";`')
    return found.group(1), found.group(2)


def expected(protos: list[Path]) -> dict[str, list[Path]]:
    """The files every language must have, from protos/."""
    files: dict[str, list[Path]] = {"python": [], "go": [], "typescript": []}
    for proto in protos:
        relative = proto.relative_to(PROTOS).with_suffix("")
        files["python"] += [
            GEN / "python" / f"{relative}{suffix}" for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
        ]
        files["typescript"].append(GEN / "ts" / f"{relative}_pb.ts")
        import_path, _ = go_package(proto)
        if import_path != f"{GO_MODULE}/{relative.parent.as_posix()}":
            raise SystemExit(
                f"{proto.relative_to(ROOT)}: go_package {import_path} is not {GO_MODULE}/{relative.parent}"
            )
        files["go"] += [
            GEN / "go" / relative.parent / f"{relative.name}{suffix}" for suffix in (".pb.go", "_grpc.pb.go")
        ]
    return files


def run(what: str, args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{what} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def check_python(files: list[Path]) -> str:
    differ = [
        f for f in files if not filecmp.cmp(f, ROOT / "payments" / f.relative_to(GEN / "python" / "payments"))
    ]
    if differ:
        raise SystemExit(
            f"gen/python differs from payments/ in {', '.join(str(f.relative_to(GEN)) for f in differ)}: "
            "run `make proto` (or check the pinned grpcio-tools)"
        )
    return "identical to payments/ (make proto)"


def check_go(files: list[Path]) -> str:
    go = shutil.which("go")
    if go is None or not (GO_SOURCES / "src" / "google.golang.org" / "grpc").is_dir():
        raise SystemExit(
            "go vet needs Go and Debian's gRPC and protobuf sources: apt-get install "
            "golang-go golang-google-grpc-dev golang-google-protobuf-dev (make gen-clients does, as root)"
        )
    packages = sorted({f.parent for f in files})
    for directory in packages:
        names = set(
            re.findall(r"^package (\w+)$", "\n".join(f.read_text() for f in directory.glob("*.go")), re.M)
        )
        if len(names) != 1:
            raise SystemExit(f"{directory.relative_to(ROOT)}: Go package names {names}")
    with tempfile.TemporaryDirectory() as gopath:
        module = Path(gopath) / "src" / GO_MODULE
        shutil.copytree(GEN / "go", module)
        env = {
            **os.environ,
            "GO111MODULE": "off",  # GOPATH mode: imports resolve in Debian's sources, nothing is downloaded
            "GOPATH": f"{gopath}{os.pathsep}{GO_SOURCES}",
            "GOCACHE": str(GEN / ".go-cache"),
            "GOFLAGS": "",
            "GOPROXY": "off",
        }
        run("go vet", [go, "vet", "./..."], cwd=module, env=env)
        version = run("go version", [go, "version"]).split()[2]
    return f"go vet ok ({version}, {len(packages)} packages)"


def check_typescript(files: list[Path]) -> str:
    tsc = ROOT / "node_modules" / ".bin" / "tsc"
    run("tsc", [str(tsc), "--noEmit", "-p", str(ROOT / "clients" / "typescript")])
    version = run("tsc", [str(tsc), "--version"]).split()[-1]
    return f"tsc --noEmit ok (TypeScript {version}, with clients/typescript)"


def local_plugins_only() -> None:
    """buf.gen.yaml names no remote plugin: generation must not need the network."""
    template = yaml.safe_load((ROOT / "buf.gen.yaml").read_text())
    remote = [plugin["remote"] for plugin in template["plugins"] if "remote" in plugin]
    if remote:
        raise SystemExit(f"buf.gen.yaml: remote plugins {remote}: use local ones (no network here)")


def main() -> int:
    local_plugins_only()
    files = expected(sorted(PROTOS.rglob("*.proto")))
    missing = [str(f.relative_to(ROOT)) for group in files.values() for f in group if not f.is_file()]
    if missing:
        raise SystemExit(f"buf generate wrote no {', '.join(missing)}")
    checks = {"python": check_python, "go": check_go, "typescript": check_typescript}
    for language, check in checks.items():
        print(f"{language}: {len(files[language])} files in gen/, {check(files[language])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
