#!/usr/bin/env bash
# Command-line tools some tests drive, from Debian's packages: kcat (librdkafka's client: it
# produces what kafka-python cannot, header keys that are not UTF-8) and rsync (what `ray up`
# copies is checked with rsync and Ray's own filter). Idempotent; without apt or root it says
# which are missing and leaves their tests to skip.
set -uo pipefail
missing=()
for tool in kcat rsync; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
(( ${#missing[@]} == 0 )) && exit 0
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "install-test-tools.sh: ${missing[*]} missing and apt-get unavailable (not root?): their tests will skip" >&2
    exit 0
fi
echo "install-test-tools.sh: installing ${missing[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do  # another apt may hold the lock for a moment
    apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null && exit 0
    sleep $((attempt * 5))
done
echo "install-test-tools.sh: could not install ${missing[*]}: their tests will skip" >&2
exit 0
