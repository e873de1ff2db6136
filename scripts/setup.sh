#!/usr/bin/env bash
# Finds or installs the system tools the tests and benches use: nats-server (Debian package
# nats-server) for cluster tests, strace for the storage durability test. Safe to run repeatedly; prints where each tool is.
set -euo pipefail

need_install=()
command -v nats-server >/dev/null 2>&1 || need_install+=(nats-server)
# strace: the storage test proves every acknowledged write was fsync'd before it was acknowledged.
command -v strace >/dev/null 2>&1 || need_install+=(strace)
# openssl: the TLS tests make throwaway certificates (a server's, client CAs and client certificates).
command -v openssl >/dev/null 2>&1 || need_install+=(openssl)
# ss (iproute2): the keepalive tests read the kernel's keepalive timer of a socket.
command -v ss >/dev/null 2>&1 || need_install+=(iproute2)

if [ ${#need_install[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "setup: missing ${need_install[*]}; install it as root: apt-get install -y ${need_install[*]}" >&2
    exit 1
  fi
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
  echo "setup: installing ${need_install[*]} from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q "${need_install[@]}" >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q "${need_install[@]}" >/dev/null
  }
fi
echo "setup: nats-server $(nats-server --version 2>/dev/null | head -n1) at $(command -v nats-server); $(strace -V | head -n1)"
