"""Regenerate the etcd v3 protobuf and gRPC modules in this folder from proto/.

Run from anywhere: ``python real/etcdpb/generate.py`` (needs the dev extra:
grpcio-tools, and mypy-protobuf for the typed gRPC stubs). It writes, for
each of proto/kv.proto, auth.proto, rpc.proto and chainfire.proto (our own
services), ``*_pb2.py`` (messages), ``*_pb2.pyi`` (their types, protoc's
``--pyi_out``), and for rpc.proto and chainfire.proto ``*_pb2_grpc.py``
(servicer bases, stubs, ``add_*_to_server``) with ``*_pb2_grpc.pyi``
(mypy-protobuf's ``protoc-gen-mypy_grpc``).

protoc names sibling modules by bare file name (``import kv_pb2``); the
generated files are rewritten to import them from this package instead.
The generated files are committed; ``--check`` regenerates into a
temporary folder and fails if the committed ones differ.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO_DIR = HERE.parent.parent / "proto"
PACKAGE = "real.etcdpb"
PROTOS = ("kv.proto", "auth.proto", "rpc.proto", "chainfire.proto")
MODULES = ("kv_pb2", "auth_pb2", "rpc_pb2", "chainfire_pb2")
_SIBLING = re.compile(rf"^import ({'|'.join(MODULES)})\b", re.MULTILINE)
_SIBLING_FROM = re.compile(rf"^from ({'|'.join(MODULES)}) import", re.MULTILINE)


def _plugin() -> str:
    """protoc-gen-mypy_grpc, next to this interpreter or on PATH."""
    candidate = Path(sys.executable).parent / "protoc-gen-mypy_grpc"
    found = candidate if candidate.exists() else shutil.which("protoc-gen-mypy_grpc")
    if found is None:
        sys.exit("protoc-gen-mypy_grpc not found: pip install mypy-protobuf (the dev extra)")
    return str(found)


def generate(out_dir: Path) -> list[Path]:
    """Run protoc into `out_dir`; return the files written."""
    command = [
        sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={PROTO_DIR}",
        f"--python_out={out_dir}", f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin()}", f"--mypy_grpc_out={out_dir}",
        *(str(PROTO_DIR / name) for name in PROTOS),
    ]
    subprocess.run(command, check=True)
    written = sorted(p for p in out_dir.iterdir() if p.name.endswith((".py", ".pyi"))
                     and p.name.split(".")[0].removesuffix("_grpc") in MODULES)
    for path in written:
        text = _SIBLING.sub(rf"from {PACKAGE} import \1", path.read_text())
        text = _SIBLING_FROM.sub(rf"from {PACKAGE}.\1 import", text)
        path.write_text(text)
    # The gRPC generators write service-less *_pb2_grpc files for kv and auth too.
    for name in ("kv_pb2_grpc.py", "auth_pb2_grpc.py", "kv_pb2_grpc.pyi", "auth_pb2_grpc.pyi"):
        (out_dir / name).unlink(missing_ok=True)
    return [p for p in written if p.exists()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="fail if the committed files differ from fresh output")
    args = parser.parse_args()
    if not args.check:
        for path in generate(HERE):
            print(f"wrote {path.relative_to(HERE.parent.parent)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        stale = [p.name for p in fresh if not filecmp.cmp(p, HERE / p.name, shallow=False)]
    if stale:
        print(f"stale generated files (run real/etcdpb/generate.py): {', '.join(stale)}")
        return 1
    print("generated files are up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
