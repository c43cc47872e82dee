#!/usr/bin/env bash
# Installs the system packages that the tests start or build for real, where they are missing:
# redis-server, kubectl (kustomize), chromium (the console's tests), promtool (the alert rules' tests), and Go
# with Debian's gRPC libraries and protoc plugins (the Go client builds offline).
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
# deploy/eks is rendered with `kubectl kustomize` (offline; no cluster is contacted).
command -v kubectl >/dev/null || missing+=(kubectl)
command -v go >/dev/null || missing+=(golang-go)
# The console's browser tests (tests/test_console.py) drive it headless through Playwright.
command -v chromium >/dev/null || missing+=(chromium)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
# deploy/prometheus/alerts.yaml is checked and unit-tested with promtool (tests/test_alerts.py).
command -v promtool >/dev/null || missing+=(prometheus)
command -v protoc-gen-go >/dev/null || missing+=(protoc-gen-go)
command -v protoc-gen-go-grpc >/dev/null || missing+=(protoc-gen-go-grpc)
for pkg in golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev; do
    # Without the 1.5 package apt pulls in github.com/golang/protobuf 1.3, and Go clients panic at run time.
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
    echo "please install: ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
fi
SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
echo "installing ${missing[*]} with apt-get"
$SUDO apt-get update -qq
# One command: the golang-protobuf 1.5 package must come with the gRPC one (see above).
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" golang-github-golang-protobuf-1-5-dev >/dev/null
