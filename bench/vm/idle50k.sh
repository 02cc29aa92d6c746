#!/usr/bin/env bash
# The idle50k benchmark in a KVM guest whose kernel lets root raise the open-files limit
# (where the host caps it, e.g. a sandbox's hard `nofile` of 20,000):
#
#     bench/vm/idle50k.sh [BENCH_ARGS...]   # default: --servers ours,node --scenarios idle50k
#
# The guest is Debian's kernel with a busybox initramfs (built once, cached); it runs this
# machine's own root filesystem, shared read-only over 9p, so the benchmark uses the same
# interpreter, venv, Redis and Node.js as on the host. The result JSON lands in
# bench/results/ as with a run on the host. Needs a KVM that runs stock kernels (hardware
# virtualization: a paravirtual nested one such as kvm_pvm does not); takes both cores (run
# it under the benchmark lock where others share the machine).
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
here="$ROOT/bench/vm"
apt_install qemu-system-x86

# Guest size: the host's cores; memory for 50,000 sockets at both ends, well within 24 GiB.
VM_CPUS=${VM_CPUS:-2}
VM_MEMORY=${VM_MEMORY:-6G}
# VM_ACCEL=tcg: qemu's emulator instead of KVM, many times slower (its CPU times mean
# nothing), to check this script's plumbing with a small --idle50k-clients.
case "${VM_ACCEL:-kvm}" in
    kvm) [ -w /dev/kvm ] || { log "no usable /dev/kvm"; exit 1; }; accel=(-accel kvm -cpu host) ;;
    tcg) accel=(-accel tcg,thread=multi -cpu max) ;;
    *) log "VM_ACCEL is kvm or tcg"; exit 2 ;;
esac
# Debian's kernel has these as modules: the PCI transport and 9p over it (with what they
# depend on, found in each module's .modinfo).
MODULES="virtio_pci 9pnet_virtio 9p"

key=$(cat "$0" "$here/guest-init.sh" | sha256sum | cut -c1-16)
boot="$CACHE_DIR/vm/boot-$key"
if [ ! -f "$boot/.complete" ]; then
    log "building the guest's kernel and initramfs (once)"
    rm -rf "$CACHE_DIR/vm"/boot-*
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    kernel_package=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    (cd "$work" && apt-get download -qq "$kernel_package" busybox-static 2>/dev/null)
    for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/tree"; done
    version=${kernel_package#linux-image-}
    initramfs="$work/initramfs"
    mkdir -p "$initramfs"/{bin,dev,proc,sys,modules}
    cp "$work/tree/bin/busybox" "$initramfs/bin/busybox"
    load_order=""
    add_module() {  # MODULE: copies it after the modules it depends on
        local module=$1 file depends
        [[ " $load_order " == *" $module "* ]] && return 0
        file=$(find "$work/tree/lib/modules/$version" -name "$module.ko" | head -1)
        [ -n "$file" ] || { log "module $module not found"; exit 1; }
        depends=$(grep -a -o -m1 'depends=[^[:cntrl:]]*' "$file" | cut -d= -f2 | tr , ' ')
        for dependency in $depends; do add_module "$dependency"; done
        cp "$file" "$initramfs/modules/"
        load_order+=" $module"
    }
    for module in $MODULES; do add_module "$module"; done
    echo "$load_order" >"$initramfs/modules.load"
    install -m 755 "$here/guest-init.sh" "$initramfs/init"
    building="$boot.building"
    rm -rf "$building" && mkdir -p "$building"
    cp "$work/tree/boot/vmlinuz-$version" "$building/vmlinuz"
    (cd "$initramfs" && find . | "$work/tree/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) >"$building/initrd.img"
    touch "$building/.complete"
    mv "$building" "$boot"
    rm -rf "$work"
fi

out=$(mktemp -d "$CACHE_DIR/vm/run-XXXXXX")
trap 'rm -rf "$out"' EXIT
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--servers ours,node --scenarios idle50k)
printf 'exec bash %q %q %q' "$here/guest-job.sh" "$out" "$ROOT" >"$out/job.sh"
printf ' %q' "${args[@]}" >>"$out/job.sh"
echo >>"$out/job.sh"

log "booting the guest: $VM_CPUS CPUs, $VM_MEMORY, ${accel[*]}"
qemu-system-x86_64 "${accel[@]}" -smp "$VM_CPUS" -m "$VM_MEMORY" \
    -kernel "$boot/vmlinuz" -initrd "$boot/initrd.img" \
    -append "console=ttyS0 quiet panic=-1 zou_events_vm.out=$out" \
    -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$out",mount_tag=out,security_model=none \
    -nic none -nographic -no-reboot </dev/null

[ -s "$out/result.json" ] || { log "the guest wrote no result"; exit 1; }
mkdir -p "$ROOT/bench/results"
result="$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)-vm.json"
cp "$out/result.json" "$result"
echo "results: ${result#"$ROOT"/}"
