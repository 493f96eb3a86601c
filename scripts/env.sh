# Sourced by the scripts: a PATH with Go and the tools Volt installs.
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
