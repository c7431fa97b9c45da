#!/usr/bin/env bash
# Make sure wgpu finds a Vulkan device: on a machine without a GPU driver, install Mesa's software Vulkan
# driver (llvmpipe, Debian package mesa-vulkan-drivers, about 10 s). Needs root or sudo for apt-get.
set -euo pipefail

have_vulkan_device() {
    command -v vulkaninfo >/dev/null 2>&1 && vulkaninfo --summary 2>/dev/null | grep -q "deviceName"
}

if have_vulkan_device; then
    echo "setup: a Vulkan device is present" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: no Vulkan device and no apt-get; install a Vulkan driver for your GPU (or Mesa's lavapipe)" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing Mesa's software Vulkan driver (mesa-vulkan-drivers)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq mesa-vulkan-drivers vulkan-tools >/dev/null
have_vulkan_device || { echo "setup: still no Vulkan device after installing Mesa" >&2; exit 1; }
