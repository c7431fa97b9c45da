#!/usr/bin/env bash
# Make sure wgpu finds a GPU device on both backends the tests use:
#   - Vulkan: on a machine without a GPU driver, Mesa's software Vulkan driver (llvmpipe, Debian package
#     mesa-vulkan-drivers, about 10 s);
#   - GL (`WGPU_BACKEND=gl`): Mesa's EGL and GLES libraries with its software GL driver (libegl-mesa0, libgles2,
#     libgl1-mesa-dri), usually present already.
# Needs root or sudo for apt-get, and only when something is missing.
set -euo pipefail

have_vulkan_device() {
    command -v vulkaninfo >/dev/null 2>&1 && vulkaninfo --summary 2>/dev/null | grep -q "deviceName"
}
have_egl() {
    ldconfig -p | grep -q 'libEGL_mesa\.so\.0' && ldconfig -p | grep -q 'libGLESv2\.so\.2'
}

packages=()
have_vulkan_device || packages+=(mesa-vulkan-drivers vulkan-tools)
have_egl || packages+=(libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri)
if [ ${#packages[@]} -eq 0 ]; then
    echo "setup: a Vulkan device and Mesa's EGL are present" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: missing ${packages[*]} and no apt-get; install a Vulkan driver for your GPU (or Mesa's lavapipe)" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${packages[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
have_vulkan_device || { echo "setup: still no Vulkan device after installing Mesa" >&2; exit 1; }
have_egl || { echo "setup: still no EGL after installing Mesa's" >&2; exit 1; }
