#!/usr/bin/env bash
# Prints the CHANGELOG section of a version, the release's notes: the lines under
# its Prometheus-style heading `## VERSION / YYYY-MM-DD`, up to the next `## `.
# Fails, naming the version, when there is no such section or it is empty.
# Usage: release-notes.sh VERSION [CHANGELOG]
set -euo pipefail
version=${1:?usage: release-notes.sh VERSION [CHANGELOG]}
changelog=${2:-"$(cd "$(dirname "$0")/.." && pwd)/CHANGELOG.md"}
[ -r "$changelog" ] || { echo "release-notes.sh: cannot read $changelog" >&2; exit 1; }

# index() compares text, so the dots of a version are not regex wildcards; the
# trailing " / " keeps 0.1.0 from matching 0.1.0-rc.1. Blank lines around the
# section are dropped.
notes=$(awk -v heading="## $version / " '
  /^## / { if (found) exit; if (index($0, heading) == 1) { found = 1; next } }
  found && (started || NF) { started = 1; print }
  END { exit !found }
' "$changelog") || {
  echo "release-notes.sh: $changelog has no section for $version (a heading '## $version / YYYY-MM-DD')" >&2
  exit 1
}
if [ -z "${notes//[[:space:]]/}" ]; then
  echo "release-notes.sh: the section for $version in $changelog is empty" >&2
  exit 1
fi
printf '%s\n' "$notes"
