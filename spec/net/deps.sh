#!/usr/bin/env bash
# Installs what spec/net/firewall.test.ts and spec/net/transports.test.ts need, when missing:
# `ip` (iproute2), `nft` (nftables), openssl, tinyproxy, dante-server and nginx-light.
# Idempotent and quiet: prints nothing when all are there. Debian only; on a machine without
# apt-get, or when not root, it says so and exits 0 (the tests then skip and say why).
# `apt-get update` runs only when a plain install fails (stale or empty lists).
# Installs what spec/net/firewall.test.ts needs, when missing: `ip` (iproute2) and `nft`
# (nftables); and what spec/net/ssh.test.ts needs: openssh-server and openssh-client.
# Idempotent and quiet: prints nothing when all are there. Debian only; on a
# machine without apt-get, or when not root, it says so and exits 0 (the test then skips and
# says why). `apt-get update` runs only when a plain install fails (stale or empty lists).
set -uo pipefail

# root's tools live in sbin, which a CI PATH may lack; the test looks there too.
have() {
  command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/sbin/$1" ]]
}
missing=()
have ip || missing+=(iproute2)
have nft || missing+=(nftables)
# spec/net/transports.test.ts: certificates, an HTTP proxy, a SOCKS5 proxy, a TLS reverse proxy.
have openssl || missing+=(openssl)
have tinyproxy || missing+=(tinyproxy)
have danted || missing+=(dante-server)
have nginx || missing+=(nginx-light)
# spec/deploy/install.test.ts: systemd-analyze verify of the unit, strace to check its
# SystemCallFilter, setpriv and unshare (util-linux) to run ExecStart as systemd would.
have systemd-analyze || missing+=(systemd)
have strace || missing+=(strace)
have setpriv || missing+=(util-linux)
# spec/contrib/wireshark.test.ts: tshark reads a capture with contrib/wireshark/postern.lua
# (wireshark-common asks a debconf question; DEBIAN_FRONTEND=noninteractive below answers it)
have tshark || missing+=(tshark)
# spec/net/ssh.test.ts: sshd, ssh and ssh-keygen.
have sshd || missing+=(openssh-server)
have ssh || missing+=(openssh-client)
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ "$(id -u)" -ne 0 ]]; then
  echo "spec/net/deps.sh: not root, cannot install ${missing[*]}" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "spec/net/deps.sh: no apt-get, cannot install ${missing[*]}" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp -t postern-net-deps.XXXXXX)"
install() {
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1
}
if ! install; then
  apt-get update -qq >>"$log" 2>&1
  if ! install; then
    echo "spec/net/deps.sh: could not install ${missing[*]} (see $log)" >&2
    exit 0
  fi
fi
rm -f "$log"
