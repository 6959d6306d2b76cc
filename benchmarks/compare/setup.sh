#!/usr/bin/env bash
# Create the comparison environment (Splink 5 + DuckDB + recordlinkage) in
# benchmarks/compare/.venv. Idempotent: re-running only installs what is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
"$venv/bin/python" - <<'PY'
import duckdb, recordlinkage, splink
print(f"compare venv ready: splink {splink.__version__}, duckdb {duckdb.__version__}, "
      f"recordlinkage {recordlinkage.__version__}")
PY
