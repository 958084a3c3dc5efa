#!/bin/sh
# Installs what the build and the tests need, from Debian packages only.
# As root it runs apt-get (with one `apt-get update` first); otherwise it
# prints the exact command and stops.
need=""
command -v lua5.4 >/dev/null 2>&1 || need="$need lua5.4"
[ -f /usr/include/lua5.4/lua.h ] || need="$need liblua5.4-dev"
[ -f /usr/bin/busted ] || need="$need lua-busted"
command -v cc >/dev/null 2>&1 || need="$need gcc"
command -v make >/dev/null 2>&1 || need="$need make"
for extra in $EXTRA_DEPS; do
    dpkg -s "$extra" >/dev/null 2>&1 || need="$need $extra"
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $need >/dev/null || exit 1
else
    echo "deps: missing$need. Run:"
    echo "    sudo apt-get update && sudo apt-get install -y$need"
    exit 1
fi
