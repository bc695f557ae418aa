"""Generate the Python modules in protogen/ from protos/*.proto.

Usage: python scripts/gen_protos.py [OUTPUT_DIR]   (default: the project root)

The .proto files are Tyk's own layout: bare file names that import each other as
"coprocess_common.proto", so the descriptors registered (and listed by gRPC reflection) are
named as in Tyk's repository. protoc then writes top-level imports (`import
coprocess_common_pb2`); they are rewritten to `from protogen import coprocess_common_pb2`
so the generated modules import cleanly as a package, with no sys.path tricks.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE = "protogen"


def generate(out_dir: Path) -> None:
    protos = sorted(p.name for p in PROTO_ROOT.glob("*.proto"))
    modules = "|".join(re.escape(Path(p).stem + "_pb2") for p in protos)
    # `import coprocess_common_pb2 as x` -> `from protogen import coprocess_common_pb2 as x`
    top_level_import = re.compile(rf"^import ({modules})( as \w+)?$", re.MULTILINE)
    package = out_dir / PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        for generated in sorted(Path(tmp).iterdir()):
            text = top_level_import.sub(rf"from {PACKAGE} import \1\2", generated.read_text())
            (package / generated.name).write_text(text)
    (package / "__init__.py").write_text(
        '"""Generated Tyk coprocess protocol modules. Do not edit: run `make build`."""\n'
    )


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
