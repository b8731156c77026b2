#!/usr/bin/env bash
# kcat (librdkafka's command-line client) from Debian's packages: the tests produce with it what
# kafka-python cannot (header keys that are not UTF-8). Idempotent; without apt or root it says
# so and leaves the kcat tests to skip.
set -uo pipefail
command -v kcat >/dev/null && exit 0
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "install-kcat.sh: kcat missing and apt-get unavailable (not root?): the kcat tests will skip" >&2
    exit 0
fi
echo "install-kcat.sh: installing kcat from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do  # another apt may hold the lock for a moment
    apt-get update -qq >/dev/null && apt-get install -y -qq kcat >/dev/null && exit 0
    sleep $((attempt * 5))
done
echo "install-kcat.sh: could not install kcat: the kcat tests will skip" >&2
exit 0
