#!/usr/bin/env bash
# Publish one progresscast event from a shell, with redis-cli and the shipped
# append script (lua/append.lua): EVALSHA first, EVAL when Redis answers NOSCRIPT.
#
#   publish.sh [-u redis://127.0.0.1:6379/0] [-P pc] [--ttl 86400] [--terminal-ttl 3600]
#              [--max-len 1000] [--allow-backwards] [--allow-after-terminal] [--scope S]
#              [--restart] OP [status=running] [progress=42.5] [current=420] [total=1000]
#              [message=text] [type=progress] [cid=id] [data='{"k":1}'] [eta=12]
#
# --restart starts a new attempt of the operation (a retried job): the
# previous attempt's history and snapshot are replaced by this event.
# Prints "published <entry-id> <seq> attempt <n>" (plus " cancelled <reason>"
# when the operation was asked to stop), or "refused <backwards|terminal> <seq>
# attempt <n>"; <n> is the operation's attempt, 1 unless restarted.
# Exits 2 on bad input (naming the field), 1 when Redis fails.
# The wire format is described in docs/wire-format.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
script="${PROGRESSCAST_LUA:-$here/../../lua/append.lua}"
[ -f "$script" ] || script="$here/../../node_modules/progresscast/lua/append.lua"

url="${REDIS_URL:-redis://127.0.0.1:6379/0}"
prefix="pc"
ttl=86400
terminal_ttl=3600
max_len=1000
flags=0
scope=""

invalid() {
  echo "Invalid $1: $2 (got '${3:-}')" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    -u) url="$2"; shift 2 ;;
    -P) prefix="$2"; shift 2 ;;
    --ttl) ttl="$2"; shift 2 ;;
    --terminal-ttl) terminal_ttl="$2"; shift 2 ;;
    --max-len) max_len="$2"; shift 2 ;;
    --allow-backwards) flags=$((flags | 1)); shift ;;
    --allow-after-terminal) flags=$((flags | 2)); shift ;;
    --scope) scope="$2"; shift 2 ;;
    --restart) flags=$((flags | 16)); shift ;;
    --) shift; break ;;
    -*) echo "Unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { sed -n '2,16p' "$0" >&2; exit 2; }

id_re='^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$'
int_re='^(0|[1-9][0-9]*)$'
num_re='^(0|[1-9][0-9]*)(\.[0-9]+)?$'
op="$1"; shift
[[ "$op" =~ $id_re ]] || invalid op "must be 1 to 128 letters, digits or _ . : @ / - and start with a letter or digit" "$op"
[[ -z "$scope" || "$scope" =~ $id_re ]] || invalid scope "must be 1 to 128 letters, digits or _ . : @ / -" "$scope"
[[ "$prefix" =~ ^[A-Za-z0-9_.:-]{1,64}$ ]] || invalid prefix "must be 1 to 64 of A-Z a-z 0-9 _ . : -" "$prefix"
for n in "$ttl" "$terminal_ttl" "$max_len"; do [[ "$n" =~ ^[1-9][0-9]*$ ]] || invalid option "ttl, terminal-ttl and max-len must be positive integers" "$n"; done
[ "$terminal_ttl" -le "$ttl" ] || terminal_ttl="$ttl"

status=running type=progress progress="" current="" total="" message="" cid="" data="" eta=""
has_message=0
for pair in "$@"; do
  key="${pair%%=*}"
  value="${pair#*=}"
  [ "$key" != "$pair" ] || invalid argument "must be field=value" "$pair"
  case "$key" in
    status) [[ "$value" =~ ^(queued|running|completed|failed|cancelled)$ ]] ||
      invalid status "must be one of queued, running, completed, failed, cancelled" "$value"; status="$value" ;;
    progress) [[ "$value" =~ $num_re ]] && awk -v p="$value" 'BEGIN { exit !(p <= 100) }' ||
      invalid progress "must be a finite number from 0 to 100" "$value"; progress="$value" ;;
    current) [[ "$value" =~ $int_re ]] || invalid current "must be a non-negative integer" "$value"; current="$value" ;;
    total) [[ "$value" =~ $int_re ]] || invalid total "must be a non-negative integer" "$value"; total="$value" ;;
    message) [ "${#value}" -le 2048 ] || invalid message "must be a string of at most 2048 characters" "$value"
      message="$value"; has_message=1 ;;
    type) [[ "$value" =~ ^[A-Za-z][A-Za-z0-9_.:-]{0,63}$ ]] ||
      invalid type "letters, digits and _ . : - (starting with a letter), at most 64" "$value"; type="$value" ;;
    cid) [[ "$value" =~ ^[!-~]{1,128}$ ]] || invalid cid "must be printable ASCII without spaces, 1 to 128 characters" "$value"
      cid="$value" ;;
    data) [[ "$value" =~ ^\{.*\}$ ]] || invalid data "must be a plain JSON object" "$value"
      [ "$(printf %s "$value" | wc -c)" -le 16384 ] || invalid data "must be at most 16384 bytes of JSON" "$value"
      data="$value" ;;
    eta) [[ "$value" =~ $num_re ]] || invalid eta "must be a non-negative finite number of seconds" "$value"; eta="$value" ;;
    *) invalid field "must be one of status progress current total message type cid data eta" "$key" ;;
  esac
done
if [ -n "$current" ] && [ -n "$total" ] && [ "$current" -gt "$total" ]; then
  invalid current "must not exceed total ($total)" "$current"
fi

# At most 2 decimals, half up, no trailing zeros: the wire's one way to write a number.
decimal() { awk -v x="$1" 'BEGIN { r = int(x * 100 + 0.5) / 100; s = sprintf("%.2f", r); sub(/\.?0+$/, "", s); if (s == "") s = "0"; print s }'; }

if [ -z "$progress" ] && [ -n "$current" ] && [ -n "$total" ]; then
  if [ "$total" -eq 0 ]; then progress=100; else progress=$(awk -v c="$current" -v t="$total" 'BEGIN { print c / t * 100 }'); fi
fi
[ -n "$progress" ] || [ "$status" != completed ] || progress=100
terminal=0
case "$status" in completed|failed|cancelled) terminal=1; flags=$((flags | 8)); [ -n "$eta" ] || eta=0 ;; esac

fields=(v 1 op "$op" seq 0 type "$type" status "$status")
[ -z "$progress" ] || { progress=$(decimal "$progress"); fields+=(progress "$progress"); }
[ -z "$current" ] || fields+=(current "$current")
[ -z "$total" ] || fields+=(total "$total")
[ "$has_message" -eq 0 ] || fields+=(message "$message")
[ -z "$cid" ] || fields+=(cid "$cid")
fields+=(ts "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)")
[ -z "$data" ] || fields+=(data "$data")
[ -z "$eta" ] || fields+=(eta "$(decimal "$eta")")
fields+=(attempt 1) # always last: the script writes the operation's attempt into it

events="$prefix:{$op}:events"
state="$prefix:{$op}:state"
scope_key="$events"
if [ -n "$scope" ]; then scope_key="$prefix:scope:{$scope}:events"; flags=$((flags | 4)); fi
args=("$ttl" "$max_len" "$terminal_ttl" 1 "$flags" "$progress" "${#fields[@]}" "${fields[@]}")

sha=$(awk -F'"' '/"append"/ { getline; print $4 }' "$(dirname "$script")/scripts.json" 2>/dev/null || true)
[ -n "$sha" ] || sha=$(sha1sum "$script" | cut -d' ' -f1)
run() { redis-cli -u "$url" --no-raw "$@" 2>&1; }
reply=$(run EVALSHA "$sha" 3 "$events" "$state" "$scope_key" "${args[@]}")
if [[ "$reply" == *NOSCRIPT* ]]; then
  reply=$(run EVAL "$(cat "$script")" 3 "$events" "$state" "$scope_key" "${args[@]}")
fi
# --no-raw prints: 1) 1) "ok"  2) "<id>"  3) (integer) <seq>  4) (nil) | "<reason>"  5) (integer) <attempt>
mapfile -t parts < <(printf '%s\n' "$reply" | sed -E 's/^ *([0-9]+\) )+//; s/^\(integer\) //; s/^"(.*)"$/\1/')
case "${parts[0]:-}" in
  ok)
    line="published ${parts[1]} ${parts[2]} attempt ${parts[4]}"
    [ "${parts[3]:-(nil)}" = "(nil)" ] || line="$line cancelled ${parts[3]}"
    echo "$line" ;;
  backwards|terminal) echo "refused ${parts[0]} ${parts[2]} attempt ${parts[4]}" ;;
  *) echo "Redis failed: $reply" >&2; exit 1 ;;
esac
