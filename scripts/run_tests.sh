#!/usr/bin/env bash
# The test command (`make test`): the whole suite in the bootstrapped venv, with ROS 2 kept on this host.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LIGHTLIP_VENV:-$ROOT/.venv}"
cd "$ROOT"
# DDS discovery stays on the loopback interface; each test picks its own ROS_DOMAIN_ID (test/conftest.py).
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_LOG_DIR="${ROS_LOG_DIR:-$ROOT/build/ros_log}"
exec "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
