#!/usr/bin/env bash
# Re-resolve poetry.lock. Poetry's default PyPI repository reads the per-version
# JSON API, which registry mirrors do not always serve; the Simple API always is.
# So we lock against the Simple API under a temporary source, then strip that
# source again so the lock stays a plain PyPI lock that `pip` installs as configured.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s .tools/bin/poetry >/dev/null
poetry=.tools/bin/poetry
url=$(.tools/bin/python -c 'from pip._internal.models.index import PyPI; print(PyPI.simple_url)')
trap '$poetry source remove registry >/dev/null 2>&1 || true' EXIT
$poetry source add --priority=primary registry "$url" >/dev/null
$poetry lock "$@"
$poetry source remove registry >/dev/null
sed -i "/^source = \[\]$/d" pyproject.toml
trap - EXIT
.tools/bin/python scripts/strip_lock_source.py
$poetry check --lock
