#!/usr/bin/env bash
# The Quickstart command of the README, kept where users know it; the launcher itself is scripts/demo.sh.
exec bash "$(dirname "${BASH_SOURCE[0]}")/../scripts/demo.sh" "$@"
