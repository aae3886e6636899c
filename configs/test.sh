#!/usr/bin/env bash
# The Quickstart command of the README, kept where users know it; the launcher itself is scripts/test.sh.
exec bash "$(dirname "${BASH_SOURCE[0]}")/../scripts/test.sh" "$@"
