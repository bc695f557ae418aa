"""Generate the Python modules in protogen/ from protos/protogen/*.proto.

Usage: python scripts/gen_protos.py [OUTPUT_DIR]   (default: the project root)

The .proto files live under protos/protogen/ and import each other as
"protogen/<file>.proto", so protoc writes `from protogen import x_pb2` and the
generated modules import cleanly as a package, with no sys.path tricks.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"


def generate(out_dir: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "protogen").glob("*.proto"))
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out_dir / "protogen" / "__init__.py").write_text(
        '"""Generated Tyk coprocess protocol modules. Do not edit: run `make build`."""\n'
    )


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
