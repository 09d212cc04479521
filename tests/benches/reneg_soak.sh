#!/usr/bin/env bash
# reneg_soak.sh: renegotiation under load, the long version of the fault suite's
# `renegotiation_every_5s_keeps_the_stream` (tests/faults.rs). Not run in CI.
#
# Usage (as root, from anywhere):
#   sudo -E tests/benches/reneg_soak.sh [MINUTES]      (default 10)
#
# What it does: runs the ignored test `reneg_soak` of tests/faults.rs twice over in network
# namespaces (tests/support/netns.rs): against the OpenVPN 2.6 server, the ferrovpn client
# (FERROVPN_INTEROP_CLIENT=openvpn for the reference client) carries a steady stream of 200
# numbered 1200-byte UDP datagrams a second, echoed back by the server side
# (tests/support/udpseq.py), for MINUTES minutes: first without renegotiation, then with
# `reneg-sec 10` and `tran-window 3` on the server. Prints the loss of both runs (datagrams,
# percent, longest gap) and the number of renegotiations, and fails if renegotiation lost more
# than 0.5 % of the stream beyond the run without it. Total time: about 2 x MINUTES plus the build.
set -euo pipefail

minutes="${1:-10}"
case "$minutes" in
  '' | *[!0-9]*) echo "usage: $0 [MINUTES]" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
  echo "reneg_soak.sh: needs root (network namespaces and TUN devices); run with sudo -E" >&2
  exit 2
fi
cd "$(dirname "$0")/../.."
export FERROVPN_SOAK_MINUTES="$minutes" FERROVPN_REQUIRE_INTEROP=1
# The test prints its figures to stderr; --nocapture shows them as they come.
exec cargo test --test faults reneg_soak -- --ignored --exact --nocapture
