#!/usr/bin/env bash
# The run step of the repository's action (action.yml): `harness run` with the action's inputs (the
# INPUT_* variables), report.md appended to $GITHUB_STEP_SUMMARY, and the step's outputs written to
# $GITHUB_OUTPUT: folder, exit-code, verdict and status (the code the action's last step exits with:
# the harness's, or 0 for exit 6 when accept-nothing-executed is true). It exits 0 itself, so the run
# folder is uploaded before the last step fails the job. tests/test_action.py runs it locally.
set -uo pipefail

output() { [[ -n "${GITHUB_OUTPUT:-}" ]] && printf '%s=%s\n' "$1" "$2" >> "$GITHUB_OUTPUT"; return 0; }
summary() { [[ -n "${GITHUB_STEP_SUMMARY:-}" ]] && cat >> "$GITHUB_STEP_SUMMARY"; return 0; }
give_up() {   # a wrong input: exit code 2, as the harness gives for a wrong flag
  echo "::error title=mm-embed-harness::$1"
  output exit-code 2; output status 2; output folder ""; output verdict ""
  exit 0
}
flag() {      # flag VAR NAME VALUE: VAR=true|false from a boolean input (YAML's spellings), else give up
  case "${3,,}" in
    true | yes | on | 1) printf -v "$1" true ;;
    false | no | off | 0 | "") printf -v "$1" false ;;
    *) give_up "input $2 is '$3': give true or false" ;;
  esac
}

spec=${INPUT_SPEC:-}
[[ -n "$spec" ]] || give_up "input spec is empty: give the path of a spec, e.g. specs/cat-retrieval.yaml"
[[ -f "$spec" ]] || give_up "input spec: no such file: $spec (paths are relative to the workspace)"
out=${INPUT_OUTPUT:-output}
flag execute execute "${INPUT_EXECUTE:-true}"
flag require require-executed "${INPUT_REQUIRE_EXECUTED:-false}"
flag accept accept-nothing-executed "${INPUT_ACCEPT_NOTHING_EXECUTED:-false}"

args=(run "$spec" --output "$out")
[[ $execute == true ]] && args+=(--execute)
[[ $require == true ]] && args+=(--require-executed)
[[ -n "${INPUT_MAX_COST:-}" ]] && args+=(--max-cost "$INPUT_MAX_COST")
allow=${INPUT_ALLOW_HOST:-}
for host in ${allow//,/ }; do     # one per line or comma-separated
  args+=(--allow-host "$host")
done

# The run folder is <output>/<spec name>: the one whose manifest.json this run writes.
marker=$(mktemp)
trap 'rm -f "$marker"' EXIT
echo "harness ${args[*]}"
harness "${args[@]}"
code=$?
folder=""
for manifest in "$out"/*/manifest.json; do
  if [[ -f "$manifest" && "$manifest" -nt "$marker" ]]; then
    folder=$(dirname "$manifest")
  fi
done

verdict=""
if [[ -n "$folder" && -f "$folder/validate.txt" ]]; then
  verdict=$(tail -n 1 "$folder/validate.txt")
fi
if [[ -n "$folder" && -f "$folder/report.md" ]]; then
  summary < "$folder/report.md"
else
  printf '### mm-embed-harness\n\n`harness run %s` exited %s before writing a run folder; the step log says why.\n' \
    "$spec" "$code" | summary
fi

status=$code
if [[ $code -eq 6 && $accept == true ]]; then
  status=0
  echo "::notice title=mm-embed-harness::nothing was executed (exit 6: no cell could run here, e.g. no API key in a pull request from a fork); accepted by accept-nothing-executed: the offline checks and any cell that ran still count"
elif [[ $code -ne 0 ]]; then
  echo "::error title=mm-embed-harness::harness run exited $code (docs/ci.md: exit codes)${folder:+; evidence in $folder}"
fi
output folder "$folder"
output exit-code "$code"
output verdict "$verdict"
output status "$status"
exit 0
