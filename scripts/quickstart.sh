#!/usr/bin/env bash
# Installs what is missing, builds Carillon and starts it: `scripts/quickstart.sh [serve options]`.
# With no CARILLON_DATABASE_URL, Carillon runs its own PostgreSQL under its data directory.
# It prints its endpoint and root credentials itself.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "$(nproc 2>/dev/null || echo 2)"
exec build/carillon serve "$@"
