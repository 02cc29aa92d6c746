#!/bin/busybox sh
# /init of the guest's initramfs: the guest kernel's own user space is this busybox only.
# It mounts the host's root filesystem (9p, read-only) and the run's output folder (9p,
# writable, at the same path as on the host), chroots into the host's tree so the benchmark
# runs the very interpreter, venv, Redis and Node.js the host has, then powers off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for module in $(cat /modules.load); do insmod "/modules/$module.ko"; done
ip link set lo up

out=$(sed -n 's/.*zou_events_vm.out=\([^ ]*\).*/\1/p' /proc/cmdline)
root=/host
mkdir -p "$root"
# cache=loose: the host tree is read-only here, and Python's imports read many small files.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 host "$root"
mount -t 9p -o trans=virtio,version=9p2000.L,rw,msize=262144 out "$root$out"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount -t devtmpfs dev "$root/dev"
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts devpts "$root/dev/pts"
for dir in /dev/shm /tmp /run /var/tmp; do mount -t tmpfs tmpfs "$root$dir"; done

chroot "$root" /bin/bash "$out/job.sh" </dev/console >/dev/console 2>&1
echo "job exited $?" >/dev/console
sync
poweroff -f
