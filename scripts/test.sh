#!/usr/bin/env bash
# Install everything the tests need, then run them. Used by .ci/run and by developers.
# Safe to run again: installs are skipped when already present.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}

# Debian packages used by the tests: real InfluxDB 1.6.7 and VictoriaMetrics servers, started
# by the tests on free loopback ports (the packaged services are not used); headless Chromium,
# which renders the reports (HTML checked in a real browser, PDF printed by it), poppler-utils'
# pdftotext, which reads the PDFs back, and the DejaVu fonts the pages are set in.
DEBIAN_PACKAGES=(influxdb victoria-metrics chromium poppler-utils fonts-dejavu-core)
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
fi

# A system Python that refuses pip outside a virtual environment (PEP 668, Debian and Ubuntu):
# the tests run in .venv, made here once.
if "$PYTHON" - <<'PY'
import os, sys, sysconfig
in_venv = sys.prefix != sys.base_prefix
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(0 if managed and not in_venv else 1)
PY
then
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    PYTHON=.venv/bin/python
fi

"$PYTHON" -m pip install --quiet --disable-pip-version-check -e '.[test]'
exec "$PYTHON" -m pytest -q -p no:cacheprovider "$@"
