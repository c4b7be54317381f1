"""--sync-interval: queued lines are on the disk itself, not only in the page cache, within the
interval. Checked by reading the queue file's blocks straight from the block device (O_DIRECT, past
every cache: what a machine that lost power would find) where the test may open the device, else by
the kernel's own count of the file's dirty pages (cachestat(2), Linux 6.5): none dirty means every
byte in the page cache is also on the disk."""
import ctypes
import errno
import mmap
import os
import re
import shutil
import subprocess
import unittest
import uuid

from harness import RelayTestCase, send_lines, wait_until


def block_device_of(path):
    st = os.stat(path)
    try:
        with open("/sys/dev/block/%d:%d/uevent" % (os.major(st.st_dev), os.minor(st.st_dev))) as f:
            name = re.search(r"^DEVNAME=(\S+)$", f.read(), re.M).group(1)
    except (OSError, AttributeError):
        return None
    return "/dev/" + name


def on_disk(path, device, length):
    """The first `length` bytes of file `path` as the block device holds them (no page cache)."""
    out = subprocess.run(["filefrag", "-v", "-b4096", path], capture_output=True, text=True, check=True).stdout
    data = bytearray(length)
    fd = os.open(device, os.O_RDONLY | os.O_DIRECT)
    try:
        for m in re.finditer(r"^\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+(\d+)\.\.\s*(\d+):", out, re.M):
            logical, logical_end, physical = int(m.group(1)), int(m.group(2)), int(m.group(3))
            for block in range(logical, min(logical_end + 1, length // 4096)):
                buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT wants
                os.preadv(fd, [buf], (physical + block - logical) * 4096)
                data[block * 4096:(block + 1) * 4096] = buf[:]
                buf.close()
    finally:
        os.close(fd)
    return bytes(data)


class _Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _CacheStat(ctypes.Structure):
    _fields_ = [("cache", ctypes.c_uint64), ("dirty", ctypes.c_uint64), ("writeback", ctypes.c_uint64),
                ("evicted", ctypes.c_uint64), ("recently_evicted", ctypes.c_uint64)]


def dirty_pages(path):
    """Pages of `path` in the page cache not yet written to disk (None: no cachestat here)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        stat = _CacheStat()
        if libc.syscall(451, fd, ctypes.byref(_Range(0, 0)), ctypes.byref(stat), 0) != 0:  # cachestat, x86_64
            return None
        return stat.dirty + stat.writeback
    finally:
        os.close(fd)


def can_read_device(device):
    try:
        os.close(os.open(device, os.O_RDONLY | os.O_DIRECT))
        return True
    except OSError as e:
        if e.errno in (errno.EPERM, errno.EACCES, errno.ENOENT, errno.EINVAL):
            return False
        raise


class SyncIntervalTest(RelayTestCase):
    def test_queued_lines_reach_the_disk_within_the_interval(self):
        relay = self.relay("--sync-interval=1", "--queue-bytes=4194304", workers=1,
                           destinations=["127.0.0.1:%d" % self.refused_port()], start=False)
        os.makedirs(relay.state_dir)
        fs_type = subprocess.run(["stat", "-f", "-c", "%T", relay.state_dir], capture_output=True, text=True).stdout.strip()
        if fs_type in ("tmpfs", "ramfs"):
            self.skipTest("the state directory is in memory (%s): there is no disk to sync to" % fs_type)
        device = block_device_of(relay.state_dir)
        raw = bool(device) and shutil.which("filefrag") and can_read_device(device)
        relay.start()
        queue = next(os.path.join(relay.state_dir, f) for f in os.listdir(relay.state_dir) if f.endswith(".queue"))
        if not raw and dirty_pages(queue) is None:
            self.skipTest("neither the block device nor cachestat(2) can show what is on the disk here")
        marker = "sync%s" % uuid.uuid4().hex
        lines = ["%s.%d %d 1700000000" % (marker, i, i) for i in range(2000)]
        send_lines(relay.port, lines)
        wait_until(lambda: sum(d["queued"] for d in relay.stats()["destinations"].values()) == 2000, 10)
        wanted = [("%s\n" % line).encode() for line in lines]

        def all_on_disk():
            if raw:
                data = on_disk(queue, device, 1 << 20)
                return all(w in data for w in wanted)
            return dirty_pages(queue) == 0
        # The kernel on its own writes dirty pages back after 30 s (vm.dirty_expire_centisecs).
        wait_until(all_on_disk, 5, interval=0.2, message="every queued line on the disk (%s)" %
                   ("block device" if raw else "cachestat: no dirty page"))
        with open(queue, "rb") as f:
            content = f.read()
        self.assertTrue(all(w in content for w in wanted))
        self.assertNotIn("cannot sync", relay.log())


if __name__ == "__main__":
    unittest.main()
